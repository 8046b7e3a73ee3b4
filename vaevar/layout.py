"""The run folder: RunPaths knows every file a run holds, StagePaths every file of a stage's folder.

runs/<dataset>/                     RunPaths(run_dir).root
    stage1/, stage2/                .stage1, .stage2 (StagePaths: model, checkpoint, log, kept/, ...)
    stage2/latents.npz, latent_stats.json
    stage2_stage1_epoch_<E>/        .stage2 of RunPaths(run_dir, stage1_epoch=E): the second stage trained on
                                    stage1/kept/epoch_<E>.keras, with its own latents and kept copies
    samples/                        .samples: <kind>.npz / .png, latents.npz, summary.json
    samples_stage2_epoch_<E>/       .samples of RunPaths(run_dir, stage2_epoch=E), with its fid.json
    samples_stage1_epoch_<E>[_stage2_epoch_<F>]/   likewise for a kept first stage (and its kept second)
    fid.json, fid_table.md          .fid_results, .fid_table
    variance_analysis/              .analysis: variance_loss.json, report.md, figures
    scale_sweep/, variance_analysis_<view>/ ...  likewise per view (the suffix of samples_<view>/)
"""

from __future__ import annotations

import dataclasses
import os

from vaevar.errors import VaevarError
from vaevar.files import load_json

RUNS_DIR = "runs"  # RUN_DIR defaults to runs/<dataset>
KINDS = ("rec", "gen1", "gen2")  # reconstructions, decoded N(0, I), decoded second-stage samples
# samples/<name>.npz that generate.py writes, in scoring order.
SAMPLE_SETS = tuple(name for kind in KINDS for name in (kind, f"{kind}_renorm"))
EXTRA_SAMPLERS = ("gauss", "gmm10", "gen2_perdim")  # generate.py --samplers: ex-post densities (samplers.py)


@dataclasses.dataclass(frozen=True)
class StagePaths:
    """A stage's folder. Training writes log.csv every epoch, checkpoint.keras then checkpoint.json (the
    last checkpointed epoch and the run's settings), and on completion the final model, then config.json
    (its settings and the weights' digest)."""

    dir: str
    model_file: str = "model.keras"  # the final model: first_stage.keras, second_stage.keras

    def _file(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @property
    def model(self) -> str:
        return self._file(self.model_file)

    @property
    def checkpoint(self) -> str:
        return self._file("checkpoint.keras")

    @property
    def state(self) -> str:
        """checkpoint.json: the last checkpointed epoch and the run's settings."""
        return self._file("checkpoint.json")

    @property
    def config(self) -> str:
        """config.json: the completed stage's settings and its weights' digest."""
        return self._file("config.json")

    @property
    def log(self) -> str:
        return self._file("log.csv")

    @property
    def curves(self) -> str:
        return self._file("curves.png")

    @property
    def kept_dir(self) -> str:
        return self._file("kept")

    def kept_model(self, epoch: int) -> str:
        """The stage as it was after `epoch` (--keep-models-at)."""
        return os.path.join(self.kept_dir, f"epoch_{epoch}.keras")


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """A run folder, seen with one first stage and one second stage. stage2_epoch: 0 for the final second
    stage; E for the copy kept after epoch E (train_second_stage.py --keep-models-at). stage1_epoch: 0 for the
    final first stage; E for the copy kept after epoch E (train_first_stage.py --keep-models-at). A second
    stage learns one first stage's codes, so a kept first stage has its own second stage (stage2 below:
    train_second_stage.py --stage1-epoch E) and never the final one's. Each view's samples, FIDs and sweep
    have their own folder."""

    root: str
    stage2_epoch: int = 0
    stage1_epoch: int = 0

    @classmethod
    def of(
        cls, dataset: str, run_dir: str | None = None, stage2_epoch: int = 0, seed: int | None = None
    ) -> RunPaths:
        """RUN_DIR as given, else its default: runs/<dataset>, or runs/<dataset>_seed<N> for a seed given."""
        default = dataset if seed is None else f"{dataset}_seed{seed}"
        return cls(run_dir or os.path.join(RUNS_DIR, default), stage2_epoch)

    @property
    def view(self) -> str:
        """The suffix of this view's folders: '' for the final stages, else _stage1_epoch_<E>_stage2_epoch_<F>
        (either part alone where the other stage is final)."""
        return (f"_stage1_epoch_{self.stage1_epoch}" if self.stage1_epoch else "") + (
            f"_stage2_epoch_{self.stage2_epoch}" if self.stage2_epoch else ""
        )

    # ------------------------------------------------------------------ the two stages

    @property
    def stage1(self) -> StagePaths:
        return StagePaths(os.path.join(self.root, "stage1"), "first_stage.keras")

    @property
    def first_stage_model(self) -> str:
        """The first stage this view decodes with: the final one, or the copy kept after stage1_epoch."""
        return self.stage1.kept_model(self.stage1_epoch) if self.stage1_epoch else self.stage1.model

    @property
    def stage2(self) -> StagePaths:
        """The second stage of this view's first stage: stage2/, or stage2_stage1_epoch_<E>/ for a copy."""
        name = f"stage2_stage1_epoch_{self.stage1_epoch}" if self.stage1_epoch else "stage2"
        return StagePaths(os.path.join(self.root, name), "second_stage.keras")

    @property
    def latents(self) -> str:
        """The encoded training set the second stage learned: mu and sigma."""
        return os.path.join(self.stage2.dir, "latents.npz")

    @property
    def latent_stats(self) -> str:
        """Per-dimension std of those codes (z_std: the authors' renormalization target)."""
        return os.path.join(self.stage2.dir, "latent_stats.json")

    @property
    def kept_dir(self) -> str:
        return self.stage2.kept_dir

    def kept_model(self, epoch: int) -> str:
        """The second stage as it was after `epoch`."""
        return self.stage2.kept_model(epoch)

    @property
    def second_stage_model(self) -> str:
        """The second stage this view samples from: the final one, or the copy kept after stage2_epoch."""
        return self.kept_model(self.stage2_epoch) if self.stage2_epoch else self.stage2.model

    # ------------------------------------------------------------------ what is made from the stages

    @property
    def samples(self) -> str:
        """generate.py's folder: samples/, or samples<view>/ for a kept stage (samples_stage2_epoch_<E>/)."""
        return os.path.join(self.root, "samples" + self.view)

    def sample(self, name: str, extension: str = "npz") -> str:
        """A sample set (SAMPLE_SETS, EXTRA_SAMPLERS) as an array, or any of generate.py's figures."""
        return os.path.join(self.samples, f"{name}.{extension}")

    @property
    def sample_latents(self) -> str:
        """The codes every sample set was decoded from."""
        return os.path.join(self.samples, "latents.npz")

    @property
    def samples_summary(self) -> str:
        """summary.json: the samples' settings, the models' digests and per-kind measures."""
        return os.path.join(self.samples, "summary.json")

    @property
    def fid_results(self) -> str:
        """compute_fid.py's fid.json: in the run folder, or beside a kept stage's samples."""
        return os.path.join(self.samples if self.view else self.root, "fid.json")

    @property
    def fid_table(self) -> str:
        return os.path.join(os.path.dirname(self.fid_results), "fid_table.md")

    @property
    def scale_sweep(self) -> str:
        """sweep_latent_scale.py's folder: sweep.json, sweep.md, sweep.png; a kept stage's its own."""
        return os.path.join(self.root, "scale_sweep" + self.view)

    def sweep_file(self, name: str) -> str:
        return os.path.join(self.scale_sweep, name)

    @property
    def analysis(self) -> str:
        """variance_analysis.py's folder: figures, variance_loss.json and report.md; a kept stage's its own."""
        return os.path.join(self.root, "variance_analysis" + self.view)

    def analysis_file(self, name: str) -> str:
        """A file of the analysis: variance_loss.json, report.md, <figure>.png."""
        return os.path.join(self.analysis, name)

    @property
    def analysis_summary(self) -> str:
        return self.analysis_file("variance_loss.json")

    # ------------------------------------------------------------------ checks

    def trained_dataset(self) -> str | None:
        """The data set the first stage records (None before it has checkpointed)."""
        state = self.stage1.state
        return load_json(state).get("dataset") if os.path.exists(state) else None

    def check_dataset(self, dataset: str) -> None:
        """Refuse to mix data sets: the run's first stage records the one it was trained on."""
        trained_on = self.trained_dataset()
        if trained_on is not None and trained_on != dataset:
            raise VaevarError(
                f"{self.root} was trained on {trained_on}, not {dataset}: "
                f"pass --dataset {trained_on} or another --run-dir"
            )
