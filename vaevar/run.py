"""A trained run from Python: sample, reconstruct, encode and score it.

    from vaevar.run import Run
    run = Run.load("runs/cifar10")
    images = run.sample(64, kind="gen2", renormalize=True, seed=0)  # uint8 (64, 32, 32, 3)

generate.py is this module's command line: the same stages, the same codes for a seed and the same rule
(renormalization.renormalize_kind, docs/protocol.md). run.fid scores images as compute_fid.py does, against
the run's data set's test reference.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from vaevar import data, errors, files, image_files, layout, renormalization, run_folder, training

KIND_STREAMS = {"rec": 1, "gen1": 2, "gen2": 3}  # each kind draws its noise from its own seeded stream


@dataclasses.dataclass
class Run:
    """Both stages of a run (the second may be missing: no GEN-2) and the settings its samples follow."""

    run_dir: str
    dataset: str
    first: object  # keras.Model
    second: object | None = None
    data_path: str | None = None  # default: the first stage's
    folder: data.FolderSplit | None = None  # --dataset images: the first stage's split (data.recorded_source)
    rule: renormalization.RenormalizationSettings = dataclasses.field(
        default_factory=renormalization.RenormalizationSettings
    )
    renorm_target: str = "authors"
    evaluation_count: int = 10000  # test images drawn at random (seed 0): REC's inputs and the rule's target
    rec_split: str = "test"
    rec_code: str = "sampled"  # sampled: decode mu + sigma * eps (the authors') | mean: decode mu
    jpeg_round_trip: bool = True
    batch_size: int = 500
    second_path: str | None = None
    stage1_epoch: int = 0  # the first stage kept after this epoch; 0: the final one
    _evaluation: dict = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def load(
        cls,
        run_dir: str,
        stage2_epoch: int = 0,
        dataset: str | None = None,
        first_only: bool = False,
        stage1_epoch: int = 0,
        **settings: object,
    ) -> Run:
        """The run in run_dir: its first stage (the final one, or the copy kept after stage1_epoch), its
        second (the final one, or the copy kept after stage2_epoch; first_only: none), checked against each
        other. settings: any field above (data_path, rule, ...); the data path and a folder's split default
        to the first stage's.

        A second stage draws the codes of the first stage it learned, so a kept first stage is paired only
        with a second stage trained on that copy (train_second_stage.py --stage1-epoch, in its own
        folder: layout.RunPaths), never with the final first stage's: without one it gives REC and GEN-1, and
        GEN-2 is skipped. The stage-1 weights digest each second stage records refuses, in one line, any
        other pairing (a folder copied by hand, a first stage retrained over its kept copies)."""
        paths = layout.RunPaths(run_dir, stage2_epoch, stage1_epoch)
        dataset = dataset or paths.trained_dataset()
        if dataset is None:
            raise errors.VaevarError(
                f"{run_dir} holds no trained first stage: run train_first_stage.py first"
            )
        if stage1_epoch:
            kept_copy(paths.first_stage_model, stage1_epoch, paths.stage1.kept_dir, 1)
        first = run_folder.load_model(
            paths.first_stage_model,
            "first-stage model",
            f"run train_first_stage.py --dataset {dataset} --run-dir {run_dir} first",
            compile=False,  # a Run encodes, decodes and samples: no optimizer to rebuild (a third of a load)
        )
        paths.check_dataset(dataset)
        second_path = None if first_only else second_stage_path(paths)
        second = None
        if second_path is not None:
            run_folder.check_second_stage_matches(paths.stage2.dir, files.weights_digest(first))
            second = run_folder.load_model(second_path, "second-stage model", compile=False)
            run_folder.check_second_stage_fits(second, first, second_path)
        recorded_path, folder = data.recorded_source(run_dir)
        settings["data_path"] = settings.get("data_path") or recorded_path
        settings.setdefault("folder", folder)
        return cls(
            run_dir, dataset, first, second, second_path=second_path, stage1_epoch=stage1_epoch, **settings
        )

    # ------------------------------------------------------------------ the evaluation images and the rule

    def evaluation(self) -> dict[str, np.ndarray]:
        """The evaluation images (uint8) and their posterior mu, sigma: computed once."""
        if not self._evaluation:
            images = data.load_evaluation(
                self.dataset,
                self.data_path,
                self.evaluation_count,
                self.rec_split,
                self.jpeg_round_trip,
                self.folder,
            )
            run_folder.check_image_shape(self.first, images, self.dataset)
            mu, sigma = self.encode(images)
            self._evaluation.update(images=images, mu=mu, sigma=sigma)
        return self._evaluation

    def target(self) -> float | np.ndarray:
        """The std the rule renormalizes latent codes to (renormalization.latent_target)."""
        # the codes of this first stage's own second stage
        stats = layout.RunPaths(self.run_dir, stage1_epoch=self.stage1_epoch).latent_stats
        measured = files.load_json(stats)["z_std"] if os.path.exists(stats) else None
        evaluation = self.evaluation()
        return renormalization.latent_target(
            evaluation["mu"], evaluation["sigma"], self.renorm_target, self.rule.renorm_mode, measured
        )

    def gate_ratio(self, seed: int = 0) -> float | None:
        """GEN-2's variance-loss ratio, the gate's input (None without a second stage)."""
        if self.second is None:
            return None
        key = f"gate_{seed}"
        if key not in self._evaluation:
            mu = self.evaluation()["mu"]
            self._evaluation[key] = renormalization.second_stage_variance_ratio(self.second, mu, seed)
        return self._evaluation[key]

    # ------------------------------------------------------------------ codes and images

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior (mu, sigma) of uint8 images."""
        return training.encode(self.first, np.asarray(images), self.batch_size)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """First-stage decoder outputs: float images in [0, 1]."""
        return training.decode(self.first, z, self.batch_size)

    def codes(self, kind: str, count: int, seed: int = 0) -> np.ndarray:
        """The latent codes of `kind` for a seed: rec, the evaluation images' (the first `count`; their
        z = mu + sigma * eps, or mu); gen1, N(0, I); gen2, the second stage's decoding of N(0, I)."""
        if kind not in KIND_STREAMS:
            raise errors.VaevarError(f"unknown kind {kind!r}: use rec, gen1 or gen2")
        rng = np.random.default_rng([seed, KIND_STREAMS[kind]])
        if kind == "rec":
            mu, sigma = (self.evaluation()[k][:count] for k in ("mu", "sigma"))
            noise = rng.standard_normal(mu.shape).astype(np.float32)
            return mu + sigma * noise if self.rec_code == "sampled" else mu
        u = rng.standard_normal((count, self.first.latent_dim)).astype(np.float32)
        if kind == "gen1":
            return u
        if self.second is None:
            raise errors.VaevarError(
                f"{self.run_dir} has no second stage: run train_second_stage.py for GEN-2"
            )
        return training.decode(self.second, u, self.batch_size)

    def images(self, kind: str, z: np.ndarray, seed: int = 0) -> dict[str, object]:
        """Decoded `z` of `kind`, plain and renormalized by the rule: {plain, renormalized (floats in
        [0, 1]), z_renorm, scale, applied}."""
        plain = self.decode(z)
        originals = data.to_unit_float(self.evaluation()["images"][: len(z)]) if kind == "rec" else None
        renormed, z_renorm, scale, applied = renormalization.renormalize_kind(
            kind, z, plain, originals, self.target(), self.rule, self.decode, self.gate_ratio(seed)
        )
        return {
            "plain": plain,
            "renormalized": renormed,
            "z_renorm": z_renorm,
            "scale": scale,
            "applied": applied,
        }

    def sample(self, count: int, kind: str = "gen2", renormalize: bool = False, seed: int = 0) -> np.ndarray:
        """`count` uint8 images of gen1 or gen2 (or rec: reconstructions of the evaluation images), plain
        or renormalized by the rule (the gate may leave them plain: see gate_ratio)."""
        made = self.images(kind, self.codes(kind, count, seed), seed)
        return data.to_uint8(made["renormalized" if renormalize else "plain"])

    def reconstruct(self, images: np.ndarray, seed: int = 0, sampled: bool | None = None) -> np.ndarray:
        """uint8 reconstructions of uint8 images: decoder(mu + sigma * eps), or decoder(mu) with sampled=False."""
        mu, sigma = self.encode(images)
        sampled = self.rec_code == "sampled" if sampled is None else sampled
        noise = (
            np.random.default_rng([seed, KIND_STREAMS["rec"]]).standard_normal(mu.shape).astype(np.float32)
        )
        return data.to_uint8(self.decode(mu + sigma * noise if sampled else mu))

    def score(
        self,
        images: np.ndarray,
        weights: str | None = None,
        num_samples: int = 10000,
        frechet_method: str = "sqrtm",
    ) -> dict[str, float]:
        """FID, KID (with its std over subsets), precision, recall, density and coverage of uint8 or [0, 1]
        float images against num_samples random test images of the run's data set, as compute_fid.py scores a
        run (the authors' input convention, whole batches of 64). The reference is computed once per Run.
        frechet_method: sqrtm (TTUR's, compute_fid.py's default) | eig (the same distance, much faster)."""
        from vaevar.fid.features import check_images, scored_count
        from vaevar.fid.score import (
            RUN_DEFAULTS,
            FidSettings,
            reference_statistics,
            scores_against,
            set_statistics,
        )
        from vaevar.fid.weights import resolve_weights, sha256

        weights_path = resolve_weights(weights)
        weights_hash = sha256(weights_path)
        settings = FidSettings(
            reference=self.dataset,
            reference_split="test",
            data_path=self.data_path,
            jpeg_round_trip=self.jpeg_round_trip,
            folder=self.folder,
            frechet_method=frechet_method,
            **dict(RUN_DEFAULTS, num_samples=num_samples),
        )
        key = f"reference_{weights_hash}_{num_samples}"
        if key not in self._evaluation:
            self._evaluation[key] = reference_statistics(settings, weights_path, weights_hash)
        reference = self._evaluation[key]
        images = check_images(images, "Run.score images")  # NHWC, 1 or 3 channels, uint8 or [0, 1] floats
        if len(images) > num_samples:  # a seeded random num_samples, as compute_fid.py takes them
            images = images[image_files.seeded_subset(len(images), num_samples, data.EVALUATION_SEED)]
        n = scored_count(len(images), settings.drop_remainder)
        ours = set_statistics(images, n, settings, weights_path, weights_hash, "images", "Run.score")
        return {
            "n": n,
            "images_sha256": str(ours["images_sha256"]),
            **scores_against(reference, ours, frechet_method),  # KID always: Run.score has no --no-kid
        }

    def fid(
        self,
        images: np.ndarray,
        weights: str | None = None,
        num_samples: int = 10000,
        frechet_method: str = "sqrtm",
    ) -> float:
        """score(...)'s FID."""
        return self.score(images, weights, num_samples, frechet_method)["fid"]


def kept_copy(path: str, epoch: int, kept_dir: str, stage: int) -> str:
    """path, the copy of stage 1 or 2 kept after `epoch`; refused in one line naming the copies kept."""
    if not os.path.exists(path):
        kept = (
            sorted(f for f in os.listdir(kept_dir) if f.endswith(".keras")) if os.path.isdir(kept_dir) else []
        )
        name = ("first", "second")[stage - 1]
        raise errors.VaevarError(
            f"no {name} stage kept after epoch {epoch} ({path}); kept: "
            f"{', '.join(kept) or f'none (train_{name}_stage.py --keep-models-at)'}"
        )
    return path


def second_stage_path(paths: layout.RunPaths) -> str | None:
    """The second stage of paths' first stage: its final one, or the copy kept after paths.stage2_epoch;
    None (GEN-2 skipped, said) without one."""
    path = paths.second_stage_model
    if paths.stage2_epoch:
        return kept_copy(path, paths.stage2_epoch, paths.kept_dir, 2)
    if not os.path.exists(path):
        on_kept = f" --stage1-epoch {paths.stage1_epoch}" if paths.stage1_epoch else ""
        print(f"GEN-2 skipped: no second-stage model at {path} (run train_second_stage.py{on_kept})")
        return None
    return path
