"""The training contract both trainers keep (training.fit and fast_training.fit_fast): the run folder's
files, resume, the checkpoint writer, the log, and the stops (NaN, SIGTERM / SIGINT, the time budget) with
their messages. Each trainer keeps only its loop.

A stage's folder: log.csv (a row per completed epoch, flushed and fsynced), checkpoint.keras (model,
optimizer, gamma, sampler RNG) with checkpoint.json (the last checkpointed epoch, its optimizer step and the
run's settings), written atomically in that order; the final model and config.json when the stage completes
(layout.StagePaths). On restart, log rows after the checkpoint's epoch are dropped, so the log has no duplicated
or missing epochs; a hard stop's leftovers (a cut write, a checkpoint newer than its record) are resolved first.
"""

import csv
import dataclasses
import os
import signal
import time
from collections.abc import Callable, Mapping

import keras
import numpy as np

import models.batch_norm  # noqa: F401  registers the custom classes for loading .keras files
import models.vae  # noqa: F401
from models.transposed_conv import adopt_transposed_convs
from vaevar.errors import VaevarError
from vaevar.files import atomic_path, copy_file, is_cut_write, load_json, save_json, save_model
from vaevar.layout import RunPaths, StagePaths

LOG_FIELDS = ["epoch", "loss", "mse", "gamma", "kl", "learning_rate", "seconds"]


# ------------------------------------------------------------- models on disk


def load_model(
    path: str,
    what: str = "model",
    hint: str = "",
    compile: bool = True,
    corrupt_hint: str = "retrain it or point to a valid .keras file",
) -> keras.Model:
    """compile=False: the model without its optimizer state (enough to encode and decode).
    hint: what to do when the file is missing; corrupt_hint: when it cannot be read."""
    if not os.path.exists(path):
        raise VaevarError(f"{what} not found at {path}{': ' + hint if hint else ''}")
    try:
        model = keras.saving.load_model(path, compile=compile)
    except Exception as error:  # corrupt or foreign file
        reason = str(error).splitlines()[0][:200] if str(error) else ""
        raise VaevarError(
            f"cannot load {what} from {path} ({type(error).__name__}: {reason}); {corrupt_hint}"
        ) from error
    adopt_transposed_convs(model)  # an older first stage trains as fast as a new one on a GPU
    return model


def check_second_stage_matches(stage2_dir: str, stage1_digest: str) -> None:
    """A second stage is only valid for the first stage whose latents it learned."""
    state_path = StagePaths(stage2_dir).state
    if not os.path.exists(state_path):
        return
    trained_on = load_json(state_path).get("stage1_weights")
    if trained_on is not None and trained_on != stage1_digest:
        raise VaevarError(
            f"the second stage in {stage2_dir} was trained on another first stage (weights changed "
            f"since): move {stage2_dir} away and rerun train_second_stage.py"
        )


def check_second_stage_fits(second: keras.Model, first: keras.Model, path: str) -> None:
    """A second stage learns the first stage's codes: its latent size is theirs (also without checkpoint.json)."""
    if second.latent_dim != first.latent_dim:
        raise VaevarError(
            f"the second stage at {path} has {second.latent_dim} latent dimensions, the first "
            f"stage {first.latent_dim}: it belongs to another first stage; move it away and rerun "
            f"train_second_stage.py"
        )


def check_image_shape(model: keras.Model, images: np.ndarray, dataset: str) -> None:
    """Refuse images of another shape than the first stage was trained on, in one line."""
    expected = tuple(model.encoder.inputs[0].shape[1:])
    if tuple(images.shape[1:]) != expected:
        raise VaevarError(
            f"{dataset} images are {images.shape[1:]} but the model expects {expected}: "
            f"use the data set the model was trained on"
        )


# ------------------------------------------------------------------------ the log


@dataclasses.dataclass(frozen=True)
class EpochMeasure:
    """What a stage does after some epochs, on the model as it is then: measure(model, epoch) -> {field: value}
    for the log's extra `fields` (train_second_stage.py --latent-fd-every: the latent mismatch over training;
    --keep-models-at: a copy of the model). Due every `every` epochs (0: never) and at the epochs `at`."""

    fields: tuple[str, ...]
    every: int
    measure: Callable[[keras.Model, int], Mapping[str, float]]
    at: tuple[int, ...] = ()

    def due(self, epoch: int) -> bool:
        return (self.every > 0 and epoch % self.every == 0) or epoch in self.at


def write_log_row(
    path: str,
    epoch: int,
    logs: dict,
    learning_rate: float,
    seconds: float,
    measured: Mapping[str, float] | None = None,
    measure_fields: tuple[str, ...] = (),
) -> None:
    """Append one epoch's row to log.csv (header first), flushed and fsynced; with measure_fields, their
    columns too (empty on the epochs not measured). A log begun with other columns is rewritten with both."""
    fields = log_fields(path)
    if any(f not in fields for f in measure_fields):
        fields = fields + [f for f in measure_fields if f not in fields]
        rewrite_log(path, read_log(path), fields)
    new = not os.path.exists(path)
    row = {"epoch": epoch, "learning_rate": f"{learning_rate:.6g}", "seconds": f"{seconds:.2f}"}
    row.update({k: f"{float(logs.get(k, float('nan'))):.6g}" for k in ("loss", "mse", "gamma", "kl")})
    row.update({k: f"{float(v):.6g}" for k, v in (measured or {}).items()})
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fields, restval="")
        if new:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def log_fields(path: str) -> list[str]:
    """The log's columns: its header, or LOG_FIELDS for a log not begun."""
    if not os.path.exists(path):
        return list(LOG_FIELDS)
    with open(path, newline="") as f:
        header = next(csv.reader(f), None)
    return header or list(LOG_FIELDS)


def read_log(path: str) -> list[dict]:
    """log.csv's rows as dicts of strings ([] without a log)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def rewrite_log(path: str, rows: list[dict], fields: list[str]) -> None:
    """log.csv with these rows and columns, written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fields, restval="")
            writer.writeheader()
            writer.writerows(rows)


def truncate_log(path: str, completed_epochs: int) -> None:
    """Keep only rows of epochs 1..completed_epochs (atomic rewrite), and every column; a row cut short by a
    hard stop (fields missing) goes too."""
    rows = [r for r in read_log(path) if None not in r.values() and int(r["epoch"]) <= completed_epochs]
    rewrite_log(path, rows, log_fields(path))


# ------------------------------------------------------------ checkpoints, resume


CURVES_EVERY_SECONDS = 60  # curves.png is redrawn at a checkpoint at most this often, and at the last one
_curves_clock: dict[str, float] = {}  # stage folder -> when this process last drew its curves (or began)


def save_checkpoint(
    model: keras.Model, stage_dir: str, metadata: dict, epoch: int, last: bool = False
) -> None:
    """checkpoint.keras, then checkpoint.json naming its epoch and optimizer step; then curves.png, redrawn
    from log.csv at the trainer's last checkpoint (`last`) and otherwise every CURVES_EVERY_SECONDS (a drawing
    takes about a second: short epochs would spend more time on it than on training). A hard stop between the
    two writes leaves a checkpoint newer than its record: resume_or_build tells so from the model's step count."""
    stage = StagePaths(stage_dir)
    save_model(model, stage.checkpoint)
    save_json(stage.state, dict(metadata, epoch=epoch, steps=optimizer_steps(model)))
    key, now = os.path.abspath(stage_dir), time.time()
    if not last and now - _curves_clock.setdefault(key, now) < CURVES_EVERY_SECONDS:
        return
    _curves_clock[key] = now
    try:
        draw_curves(stage_dir)
    except Exception as error:  # a picture never stops a training whose checkpoint is safe
        print(f"note: {stage.curves} not drawn ({type(error).__name__}: {error})")


CURVE_PANELS = (
    ("loss", "linear"),
    ("mse", "log"),
    ("gamma", "log"),
    ("kl", "linear"),
    ("learning_rate", "log"),
)


def draw_curves(stage_dir: str) -> str | None:
    """curves.png beside log.csv: loss, MSE, gamma, KL and the learning rate over epochs (and the log's extra
    columns, e.g. --latent-fd-every's, where measured). Written atomically; None without a log."""
    stage = StagePaths(stage_dir)
    rows = read_log(stage.log)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(field):
        points = [(int(r["epoch"]), float(r[field])) for r in rows if r.get(field) not in (None, "")]
        return [p for p in points if np.isfinite(p[1])]

    extra = [(f, "linear") for f in log_fields(stage.log) if f not in LOG_FIELDS]
    panels = [(f, scale, series(f)) for f, scale in CURVE_PANELS + tuple(extra)]
    panels = [panel for panel in panels if panel[2]]
    width, height = 3.2 * len(panels), 2.8
    figure, axes = plt.subplots(1, len(panels), figsize=(width, height), squeeze=False)
    for axis, (field, scale, points) in zip(axes[0], panels):
        epochs, values = zip(*points)
        axis.plot(epochs, values, marker="." if len(epochs) < 30 else None)
        if scale == "log" and min(values) > 0:
            axis.set_yscale("log")
        axis.set_title(field)
        axis.set_xlabel("epoch")
    figure.suptitle(f"{os.path.basename(os.path.normpath(stage_dir))}: {len(rows)} epochs", fontsize=10)
    # margins in inches, not tight_layout: its extra layout pass tripled the drawing's time (one at every
    # stage's end, and every minute while it trains); wspace is the gap over a panel's width
    left, right, gap = 0.95, 0.15, 1.0
    panel_width = (width - left - right - gap * (len(panels) - 1)) / len(panels)
    figure.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=0.5 / height,
        top=1 - 0.6 / height,
        wspace=gap / panel_width,
    )
    with atomic_path(stage.curves) as tmp:
        figure.savefig(tmp, dpi=90)
    plt.close(figure)
    return stage.curves


def check_same_settings(stage_dir: str, metadata: dict) -> dict:
    """The checkpoint state of stage_dir ({} without one), refusing a run made with other settings (metadata);
    callable before loading the data, so that a resume with other settings fails at once."""
    state_path = StagePaths(stage_dir).state
    state = load_json(state_path) if os.path.exists(state_path) else {}
    for key, value in metadata.items():
        if key in state and state[key] != value:
            raise VaevarError(
                f"{stage_dir} holds a run with {key}={state[key]!r}, not {value!r}: "
                f"use another --run-dir or the original settings"
                + (f" (--trainer {state[key]})" if key == "trainer" else "")
            )
    return state


def resume_or_build(
    stage_dir: str, build: Callable[[], keras.Model], metadata: dict
) -> tuple[keras.Model, int]:
    """Load the last checkpoint of stage_dir, or build a fresh compiled model.

    Returns (model, completed_epochs). Refuses a stage folder made for another data set or configuration.
    """
    stage = StagePaths(stage_dir)
    remove_cut_writes(stage_dir)
    if not os.path.exists(stage.state):
        return build(), 0
    state = check_same_settings(stage_dir, metadata)
    start_over = f"restore it, or delete {stage.state} to start this stage over"
    model = load_model(stage.checkpoint, "checkpoint", start_over, corrupt_hint=start_over)
    return model, checkpointed_epoch(model, state, stage)


def optimizer_steps(model: keras.Model) -> int:
    """The optimizer's step count, saved inside checkpoint.keras: which epoch the file holds."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def checkpointed_epoch(model: keras.Model, state: dict, stage: StagePaths) -> int:
    """The epoch checkpoint.keras holds. checkpoint.json's, unless a hard stop fell between the two writes:
    then the model is ahead of its record by whole epochs of the record's steps per epoch."""
    epoch, steps = int(state["epoch"]), state.get("steps")  # records before 2026-12 have no steps
    held = optimizer_steps(model)
    if steps is None or held == steps:
        return epoch
    per_epoch, ahead = steps // max(epoch, 1), held - steps
    if per_epoch and per_epoch * epoch == steps and ahead > 0 and ahead % per_epoch == 0:
        newer = epoch + ahead // per_epoch
        print(
            f"{stage.checkpoint} holds epoch {newer}; {stage.state} named {epoch} (a stop between the writes)"
        )
        return newer
    raise VaevarError(
        f"{stage.checkpoint} holds {held} optimizer steps, {stage.state} names {steps} (epoch {epoch}): "
        f"they are from different runs; restore both, or delete {stage.state} to start this stage over"
    )


def remove_cut_writes(folder: str) -> list[str]:
    """Delete the temporary files of atomic writes (files.atomic_path) that a hard stop (SIGKILL, a lost
    machine) cut off, in folder and below (stage 2's kept/); the files they were to replace are intact.
    Returns their paths."""
    cut = sorted(
        os.path.join(parent, name)
        for parent, _, names in os.walk(folder)
        for name in names
        if is_cut_write(name)
    )
    for path in cut:
        os.unlink(path)
        print(f"removed {path}: a write cut off by a hard stop (the file it was to replace is intact)")
    return cut


# ---------------------------------------------------------------------- the stops


class StopSignals:
    """SIGTERM / SIGINT while training: noted in `received` (the first one's name), the handlers restored on
    exit. Outside the main thread signals cannot be caught: nothing is installed."""

    def __init__(self, on_signal=None):
        self.received = None
        self.on_signal = on_signal
        self._previous = {}

    def _note(self, signum, frame):
        self.received = self.received or signal.Signals(signum).name
        if self.on_signal is not None:
            self.on_signal()

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._note)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        return False


class TimeBudget:
    """--time-budget: after each epoch (its checkpoint included), whether one more ends before the deadline,
    judged by the longest epoch so far. Each run trains at least one epoch, so a resubmitted job always moves on."""

    def __init__(self, deadline: float | None = None):
        self.deadline = deadline  # a time.time() value; None: no budget
        self.longest = 0.0

    def another_fits(self, epoch_seconds: float) -> bool:
        self.longest = max(self.longest, epoch_seconds)
        return self.deadline is None or time.time() + self.longest < self.deadline


def diverged(
    stage_dir: str, loss: float, epoch: int, kept_epoch: int, batch: int | None = None
) -> VaevarError:
    """The error of a NaN or infinite loss: where, and the checkpoint kept."""
    where = f"at epoch {epoch}, batch {batch}" if batch is not None else f"in epoch {epoch}"
    return VaevarError(
        f"training diverged (loss={loss} {where}); the last good checkpoint in {stage_dir} "
        f"(epoch {kept_epoch}) is kept: lower --learning-rate and rerun to resume"
    )


def interrupted(signal_name: str, completed_epochs: int) -> VaevarError:
    """The error of a SIGTERM / SIGINT: how far training got, and how to resume."""
    return VaevarError(
        f"interrupted by {signal_name} after {completed_epochs} completed epochs; rerun the same "
        f"command to resume"
    )


# ------------------------------------------------------------- a run to share

SHARED_FILES = ("checkpoint.json", "config.json", "log.csv", "curves.png", "latent_stats.json")


def export_weights(run_dir: str, out_dir: str) -> list[str]:
    """A copy of run_dir's final stages that Run.load and the scripts open, without optimizer state: each
    stage's final model loaded without its optimizer and saved again (the same weights), and its small
    records (SHARED_FILES: the data set, the settings, the first stage's weights digest the second checks,
    the log). No checkpoint, kept copy or latents. Returns the files written."""
    run, copy = RunPaths(run_dir), RunPaths(out_dir)
    written = []
    for required, source, target in ((True, run.stage1, copy.stage1), (False, run.stage2, copy.stage2)):
        if not os.path.exists(source.model):
            if required:
                raise VaevarError(
                    f"{source.model} not found: finish the run's first stage before exporting it"
                )
            continue
        model = load_model(source.model, f"{os.path.basename(source.dir)} model", compile=False)
        model.optimizer = None  # the weights alone: what encoding and decoding need
        save_model(model, target.model)
        written.append(target.model)
        for name in SHARED_FILES:
            if os.path.exists(os.path.join(source.dir, name)):
                copy_file(os.path.join(source.dir, name), os.path.join(target.dir, name))
                written.append(os.path.join(target.dir, name))
    return written
