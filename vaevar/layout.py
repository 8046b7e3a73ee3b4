"""The run folder's names: RUN_DIR/stage1, stage2, samples, variance_analysis and the files in them."""

from __future__ import annotations

import os

from vaevar.errors import VaevarError
from vaevar.files import load_json

# Run-directory layout, shared by every script (not flags).
RUNS_DIR = "runs"  # RUN_DIR defaults to runs/<dataset>
STAGE1_DIR, STAGE1_MODEL = "stage1", "first_stage.keras"
STAGE2_DIR, STAGE2_MODEL = "stage2", "second_stage.keras"
LATENTS_FILE, STATS_FILE = "latents.npz", "latent_stats.json"
CHECKPOINT_STATE = "checkpoint.json"  # per stage: last completed epoch and the run's settings
STAGE_CONFIG = "config.json"  # written when a stage completes: its settings and the weights' digest
SAMPLES_DIR = "samples"
KEPT_DIR = "kept"  # stage2/kept/epoch_<E>.keras: train_second_stage.py --keep-models-at
ANALYSIS_DIR = "variance_analysis"  # variance_analysis.py's figures, variance_loss.json and report.md
KINDS = ("rec", "gen1", "gen2")  # reconstructions, decoded N(0, I), decoded second-stage samples
# samples/<name>.npz that generate.py writes, in scoring order.
SAMPLE_SETS = tuple(name for kind in KINDS for name in (kind, f"{kind}_renorm"))
EXTRA_SAMPLERS = ("gauss", "gmm10", "gen2_perdim")  # generate.py --samplers: ex-post densities (samplers.py)


def kept_model_path(run_dir: str, epoch: int) -> str:
    """The second stage as it was after `epoch` (train_second_stage.py --keep-models-at)."""
    return os.path.join(run_dir, STAGE2_DIR, KEPT_DIR, f"epoch_{epoch}.keras")


def samples_dir(run_dir: str, stage2_epoch: int = 0) -> str:
    """generate.py's output folder: samples/ for the final second stage, samples_stage2_epoch_<E>/ for a kept one
    (compute_fid.py writes its fid.json and fid_table.md beside the samples of a kept one, in that folder)."""
    return os.path.join(
        run_dir, f"{SAMPLES_DIR}_stage2_epoch_{stage2_epoch}" if stage2_epoch else SAMPLES_DIR
    )


def run_dir_of(dataset: str, run_dir: str | None = None) -> str:
    """RUN_DIR as given, else its default runs/<dataset>."""
    return run_dir or os.path.join(RUNS_DIR, dataset)


def check_dataset(run_dir: str, dataset: str) -> None:
    """Refuse to mix data sets: the run's first stage records the one it was trained on."""
    state = os.path.join(run_dir, STAGE1_DIR, CHECKPOINT_STATE)
    if os.path.exists(state):
        trained_on = load_json(state).get("dataset")
        if trained_on != dataset:
            raise VaevarError(
                f"{run_dir} was trained on {trained_on}, not {dataset}: "
                f"pass --dataset {trained_on} or another --run-dir"
            )
