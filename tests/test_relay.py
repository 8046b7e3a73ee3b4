"""bench/relay.py: a first stage carried between GPU leases in parts, finished (without its optimizer) or not."""

import os
import shutil
import tarfile

import numpy as np
import pytest

import common
import training
from bench import relay
from models.first_stage import build_first_stage

PART = 2 ** 20  # small parts, so that even this small model travels in several


@pytest.fixture(scope="module")
def trained_stage1(tmp_path_factory):
    """A small first stage after one epoch (its files hold Adam's moments): checkpoint, final model, small files."""
    stage_dir = tmp_path_factory.mktemp("run") / "stage1"
    model = build_first_stage((32, 32, 3), base_filters=8)
    model.compile(optimizer=training.make_optimizer(1e-4))
    model.fit(np.random.default_rng(0).random((200, 32, 32, 3), dtype=np.float32), epochs=1, batch_size=100,
              verbose=0)
    common.save_model(model, stage_dir / training.CHECKPOINT)
    common.save_model(model, stage_dir / common.STAGE1_MODEL)
    common.save_json(stage_dir / common.CHECKPOINT_STATE, {"dataset": "cifar10", "epoch": 1})
    common.save_json(stage_dir / "config.json", {"epochs": 1})
    (stage_dir / "log.csv").write_text("epoch,loss\n1,2.5\n")
    return stage_dir, common.weights_digest(model)


def relayed(stage_dir, tmp_path):
    """pack here, keep in a carry folder, unpack into a new run: the destination stage folder."""
    out, carry, unpacked = tmp_path / "out", tmp_path / "carry", tmp_path / "next" / "stage1"
    manifest = relay.pack(str(stage_dir), str(out), part_bytes=PART)
    assert all(os.path.getsize(out / part["name"]) <= PART for part in manifest["parts"])
    relay.keep(str(out), str(carry))
    relay.unpack(str(carry), str(unpacked))
    return manifest, unpacked


def test_a_finished_stage_travels_as_its_weights_without_the_optimizer(trained_stage1, tmp_path):
    stage_dir, digest = trained_stage1
    manifest, unpacked = relayed(stage_dir, tmp_path)
    assert manifest["kind"] == "final" and manifest["epochs"] == 1 and len(manifest["parts"]) >= 2
    model = training.load_model(str(unpacked / common.STAGE1_MODEL))
    assert common.weights_digest(model) == manifest["weights_digest"] == digest
    assert getattr(model, "optimizer", None) is None  # Adam's moments stayed behind: a third of the size
    assert os.path.getsize(unpacked / common.STAGE1_MODEL) < os.path.getsize(stage_dir / common.STAGE1_MODEL) / 2
    assert not (unpacked / training.CHECKPOINT).exists()
    for name in relay.KEPT_FILES:
        assert (unpacked / name).read_bytes() == (stage_dir / name).read_bytes()


def test_an_unfinished_stage_travels_as_its_checkpoint_byte_for_byte(trained_stage1, tmp_path):
    """The checkpoint with its optimizer state, unchanged: the next lease resumes exactly where this one stopped."""
    stage_dir, digest = trained_stage1
    unfinished = tmp_path / "unfinished" / "stage1"
    shutil.copytree(stage_dir, unfinished)
    (unfinished / common.STAGE1_MODEL).unlink()
    manifest, unpacked = relayed(unfinished, tmp_path)
    assert manifest["kind"] == "checkpoint" and manifest["weights_digest"] == digest
    assert (unpacked / training.CHECKPOINT).read_bytes() == (stage_dir / training.CHECKPOINT).read_bytes()
    assert not (unpacked / common.STAGE1_MODEL).exists()
    assert training.load_model(str(unpacked / training.CHECKPOINT)).optimizer.iterations.numpy() == 2


def test_a_damaged_missing_or_foreign_file_is_an_error(trained_stage1, tmp_path):
    stage_dir, _ = trained_stage1
    out = tmp_path / "out"
    manifest = relay.pack(str(stage_dir), str(out), part_bytes=PART)
    first = out / manifest["parts"][0]["name"]
    intact = first.read_bytes()
    first.write_bytes(intact[:-1] + bytes([intact[-1] ^ 1]))
    with pytest.raises(common.VaevarError, match="does not match its SHA-256"):
        relay.keep(str(out), str(tmp_path / "carry"))
    first.unlink()
    with pytest.raises(common.VaevarError, match="is missing"):
        relay.unpack(str(out), str(tmp_path / "stage1"))
    assert not (tmp_path / "stage1" / common.STAGE1_MODEL).exists()
    first.write_bytes(intact)
    with tarfile.open(out / relay.SMALL_FILES, "a") as tar:  # a member that would land outside the folder
        tar.add(stage_dir / "log.csv", arcname="../escaped.csv")
    manifest["small_files"]["sha256"] = relay.sha256(out / relay.SMALL_FILES)
    common.save_json(out / relay.MANIFEST, manifest)
    with pytest.raises(common.VaevarError, match="unexpected '../escaped.csv'"):
        relay.unpack(str(out), str(tmp_path / "stage1"))
    assert not (tmp_path / "escaped.csv").exists()
