"""generate.py: a run without a second stage."""

import os

import generate


def test_generate_without_stage2_skips_gen2(stage1_only, mnist_npz, capsys):
    generate.main(
        ["--dataset", "mnist", "--data-path", mnist_npz, "--run-dir", stage1_only, "--num-samples", "64"]
    )
    assert "GEN-2 skipped" in capsys.readouterr().out
    samples = os.path.join(stage1_only, "samples")
    assert os.path.exists(os.path.join(samples, "rec.npz")) and os.path.exists(
        os.path.join(samples, "gen1_renorm.npz")
    )
    assert not os.path.exists(os.path.join(samples, "gen2.npz"))
