"""vaevar/layout.py: the paths of a run folder."""

import os

import pytest

from vaevar import files, layout
from vaevar.errors import VaevarError


def test_a_run_folder_defaults_to_runs_dataset():
    assert layout.RunPaths.of("mnist").root == os.path.join("runs", "mnist")
    assert layout.RunPaths.of("mnist", "elsewhere").root == "elsewhere"
    assert layout.RunPaths.of("mnist", None, 5) == layout.RunPaths(os.path.join("runs", "mnist"), 5)


def test_the_stages_and_what_they_write():
    paths = layout.RunPaths("r")
    assert paths.stage1.model == os.path.join("r", "stage1", "first_stage.keras")
    assert paths.stage2.model == os.path.join("r", "stage2", "second_stage.keras")
    stage = paths.stage1
    named = (stage.checkpoint, stage.state, stage.config, stage.log, stage.curves)
    assert [os.path.basename(p) for p in named] == [
        "checkpoint.keras",
        "checkpoint.json",
        "config.json",
        "log.csv",
        "curves.png",
    ]
    assert {os.path.dirname(p) for p in named} == {os.path.join("r", "stage1")}
    assert paths.latents == os.path.join("r", "stage2", "latents.npz")
    assert paths.latent_stats == os.path.join("r", "stage2", "latent_stats.json")


def test_a_kept_second_stage_has_its_own_samples_and_fids():
    final, kept = layout.RunPaths("r"), layout.RunPaths("r", stage2_epoch=7)
    assert final.second_stage_model == final.stage2.model
    assert kept.second_stage_model == os.path.join("r", "stage2", "kept", "epoch_7.keras")
    assert final.samples == os.path.join("r", "samples")
    assert kept.samples == os.path.join("r", "samples_stage2_epoch_7")
    assert final.fid_results == os.path.join("r", "fid.json")
    assert kept.fid_results == os.path.join(kept.samples, "fid.json")
    assert kept.fid_table == os.path.join(kept.samples, "fid_table.md")
    assert kept.sample("gen2_renorm") == os.path.join(kept.samples, "gen2_renorm.npz")
    assert kept.sample("gen2", "png") == os.path.join(kept.samples, "gen2.png")
    assert kept.analysis == os.path.join("r", "variance_analysis_stage2_epoch_7")  # variance_analysis.py's
    assert final.analysis == os.path.join("r", "variance_analysis")
    # what stays the run's: its stages
    assert (kept.stage1, kept.stage2) == (final.stage1, final.stage2)


def test_a_kept_first_stage_has_its_own_second_stage_samples_and_fids():
    final, early = layout.RunPaths("r"), layout.RunPaths("r", stage1_epoch=10)
    both = layout.RunPaths("r", stage2_epoch=5, stage1_epoch=10)
    assert final.first_stage_model == final.stage1.model
    assert early.first_stage_model == os.path.join("r", "stage1", "kept", "epoch_10.keras")
    assert early.stage1 == final.stage1  # one first stage's folder: its log, checkpoint and copies
    # the second stage of the copy: its own folder, codes and kept copies, never the final first stage's
    assert early.stage2.dir == os.path.join("r", "stage2_stage1_epoch_10")
    assert early.latent_stats == os.path.join("r", "stage2_stage1_epoch_10", "latent_stats.json")
    assert both.second_stage_model == os.path.join("r", "stage2_stage1_epoch_10", "kept", "epoch_5.keras")
    assert early.samples == os.path.join("r", "samples_stage1_epoch_10")
    assert both.samples == os.path.join("r", "samples_stage1_epoch_10_stage2_epoch_5")
    assert early.fid_results == os.path.join(early.samples, "fid.json")
    assert both.scale_sweep == os.path.join("r", "scale_sweep_stage1_epoch_10_stage2_epoch_5")
    assert len({final.samples, early.samples, both.samples, layout.RunPaths("r", 5).samples}) == 4


def test_the_recorded_dataset_is_checked(tmp_path):
    paths = layout.RunPaths(str(tmp_path))
    assert paths.trained_dataset() is None
    paths.check_dataset("mnist")  # nothing trained yet: any data set
    files.save_json(paths.stage1.state, {"dataset": "mnist", "epoch": 1})
    assert paths.trained_dataset() == "mnist"
    paths.check_dataset("mnist")
    with pytest.raises(VaevarError, match="trained on mnist, not cifar10: pass --dataset mnist"):
        paths.check_dataset("cifar10")


def test_the_sample_sets_are_each_kind_plain_then_renormalized():
    assert layout.SAMPLE_SETS == ("rec", "rec_renorm", "gen1", "gen1_renorm", "gen2", "gen2_renorm")
    assert not set(layout.SAMPLE_SETS) & set(layout.EXTRA_SAMPLERS)
