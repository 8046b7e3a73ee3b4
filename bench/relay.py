"""Carry a first stage from one GPU lease to the next.

A device command returns at most 8 files of 16 MiB and takes at most 64 MiB
with it (the tracked files included), so a CIFAR-10 run longer than one
lease travels between leases in parts of 15 MiB:

- a finished first stage as its final model without the optimizer state
  (21 MB instead of 63 MB: the second stage, generation and scoring never
  use it), two parts;
- an unfinished one as its last checkpoint, optimizer state included, so
  that the next lease resumes it exactly (63 MB, four parts: they reach the
  next machine over two commands, three parts with the wheels, then the
  fourth).

    python -m bench.relay pack RUN/stage1 OUT                    # on the GPU machine
    python -m bench.relay keep FILES_AT .device_carry/stage1     # here, from the returned files
    python -m bench.relay unpack .device_carry/stage1 RUN/stage1 # on the next GPU machine

A manifest holds every file's SHA-256, and each step checks them, so a part
lost or damaged on the way is an error, never a different first stage.
"""

import argparse
import glob
import hashlib
import os
import shutil
import tarfile
import tempfile

import common
import training
from fid.weights import sha256
from training import CHECKPOINT

MANIFEST = "stage1_manifest.json"
SMALL_FILES = "stage1_files.tar"
KEPT_FILES = ("log.csv", "config.json", common.CHECKPOINT_STATE)  # those that exist
PART_BYTES = 15 * 2 ** 20  # under the 16 MiB a returned file may have


def _write_parts(path, out_dir, part_bytes):
    parts = []
    with open(path, "rb") as handle:
        for index, block in enumerate(iter(lambda: handle.read(part_bytes), b"")):
            name = f"stage1_model.part{index}"
            with common.atomic_path(os.path.join(out_dir, name)) as tmp, open(tmp, "wb") as part:
                part.write(block)
            parts.append({"name": name, "sha256": hashlib.sha256(block).hexdigest()})
    return parts


def pack(stage_dir, out_dir, part_bytes=PART_BYTES):
    """The finished model without optimizer, or else the last checkpoint, in parts; the small files; a manifest."""
    import keras

    final_path = os.path.join(stage_dir, common.STAGE1_MODEL)
    finished = os.path.exists(final_path)
    source = final_path if finished else os.path.join(stage_dir, CHECKPOINT)
    model = training.load_model(source, "first-stage model or checkpoint", "train the first stage first",
                                 compile=False)
    os.makedirs(out_dir, exist_ok=True)
    for old in glob.glob(os.path.join(out_dir, "stage1_model.part*")):
        os.remove(old)
    with tempfile.TemporaryDirectory() as scratch:
        carried = source
        if finished:  # saved again without its optimizer state: the later steps never use it
            carried = os.path.join(scratch, common.STAGE1_MODEL)
            keras.saving.save_model(model, carried)
        parts = _write_parts(carried, out_dir, part_bytes)
        model_sha256 = sha256(carried)
    with common.atomic_path(os.path.join(out_dir, SMALL_FILES)) as tmp, tarfile.open(tmp, "w") as tar:
        for name in KEPT_FILES:
            if os.path.exists(os.path.join(stage_dir, name)):
                tar.add(os.path.join(stage_dir, name), arcname=name)
    manifest = {"kind": "final" if finished else "checkpoint",
                "file": common.STAGE1_MODEL if finished else CHECKPOINT,
                "epochs": common.load_json(os.path.join(stage_dir, common.CHECKPOINT_STATE)).get("epoch"),
                "weights_digest": common.weights_digest(model), "model_sha256": model_sha256,
                "source_sha256": sha256(source), "parts": parts,
                "small_files": {"name": SMALL_FILES, "sha256": sha256(os.path.join(out_dir, SMALL_FILES))}}
    common.save_json(os.path.join(out_dir, MANIFEST), manifest)
    return manifest


def _checked(directory):
    """The manifest of DIRECTORY, after checking every file it names."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        raise common.VaevarError(f"no {MANIFEST} in {directory}: pack the first stage there first")
    manifest = common.load_json(path)
    for entry in manifest["parts"] + [manifest["small_files"]]:
        file = os.path.join(directory, entry["name"])
        if not os.path.exists(file):
            raise common.VaevarError(f"{file} is missing: carry every file the pack step returned")
        if sha256(file) != entry["sha256"]:
            raise common.VaevarError(f"{file} does not match its SHA-256 in {MANIFEST}: copy it again")
    return manifest


def keep(files_at, carry_dir):
    """Copy the returned relay files into CARRY_DIR (an ignored folder that later commands carry)."""
    manifest = _checked(files_at)
    os.makedirs(carry_dir, exist_ok=True)
    for old in glob.glob(os.path.join(carry_dir, "stage1_*")):
        os.remove(old)
    for entry in manifest["parts"] + [manifest["small_files"], {"name": MANIFEST}]:
        shutil.copyfile(os.path.join(files_at, entry["name"]), os.path.join(carry_dir, entry["name"]))
    _checked(carry_dir)
    return manifest


def unpack(carry_dir, stage_dir):
    """Rebuild the first stage's folder: the joined model or checkpoint (its hash checked) and its small files."""
    manifest = _checked(carry_dir)
    os.makedirs(stage_dir, exist_ok=True)
    with common.atomic_path(os.path.join(stage_dir, manifest["file"])) as tmp:
        with open(tmp, "wb") as joined:
            for entry in manifest["parts"]:
                with open(os.path.join(carry_dir, entry["name"]), "rb") as part:
                    shutil.copyfileobj(part, joined)
        if sha256(tmp) != manifest["model_sha256"]:
            raise common.VaevarError(f"the joined {manifest['file']} does not match {MANIFEST}: pack it again")
    with tarfile.open(os.path.join(carry_dir, SMALL_FILES)) as tar:
        for member in tar.getmembers():
            if member.name not in KEPT_FILES or not member.isfile():
                raise common.VaevarError(f"unexpected {member.name!r} in {SMALL_FILES}: pack it again")
            with common.atomic_path(os.path.join(stage_dir, member.name)) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(tar.extractfile(member), out)
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("pack", "keep", "unpack"))
    parser.add_argument("source", help="pack: RUN/stage1; keep: the returned files; unpack: the carried folder")
    parser.add_argument("destination", help="pack: the device's $OUT; keep: the carry folder; unpack: RUN/stage1")
    args = parser.parse_args(argv)
    manifest = {"pack": pack, "keep": keep, "unpack": unpack}[args.action](args.source, args.destination)
    print(f"{args.action}: first stage's {manifest['kind']} after {manifest['epochs']} epochs, weights "
          f"{manifest['weights_digest']}, {len(manifest['parts'])} parts -> {args.destination}")


if __name__ == "__main__":
    common.run_main(main)
