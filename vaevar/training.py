"""Training shared by both stages: batch feeders, the model.fit trainer, the
optimizer and precision policy, encoding and decoding, batch-norm
recalibration, the CPU-time check and train_stage, which runs a stage.
Backend-agnostic (Keras 3 callbacks and PyDatasets). What both trainers keep
(resume, the log, checkpoints, the stops and their messages) is run_folder's.
Batch order and latent resampling depend only on (seed, epoch).
"""

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator

import keras
import numpy as np

from vaevar import cpu_time, errors, files, layout
from vaevar.backend import distribution_scope
from vaevar.data import to_unit_float
from vaevar.errors import VaevarError
from vaevar.files import save_json, save_model
from vaevar.run_folder import (
    EpochMeasure,
    StopSignals,
    TimeBudget,
    diverged,
    interrupted,
    read_log,
    resume_or_build,
    save_checkpoint,
    truncate_log,
    write_log_row,
)
from vaevar.runtime import RuntimeSettings

# --------------------------------------------------------------- batch feeders


def batch_rows(count: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """(steps, batch_size) rows of one training epoch: a permutation fixed by (seed, epoch), full batches
    only (the loss is a batch mean), rows sorted within a batch. Both trainers use it."""
    order = np.random.default_rng([seed, epoch]).permutation(count)
    steps = count // batch_size
    return np.sort(order[: steps * batch_size].reshape(steps, batch_size), axis=1)


def latent_noise(seed: int, epoch: int, index: int, shape: tuple[int, ...]) -> np.ndarray:
    """The eps of z = mu + sigma * eps for batch `index` of `epoch` (stage 2, resampled every epoch)."""
    return np.random.default_rng([seed, epoch, index, 1]).standard_normal(shape).astype(np.float32)


class ImageBatches(keras.utils.PyDataset):
    """uint8 images -> shuffled float32 [0, 1] batches; the order is a function of (seed, epoch)."""

    def __init__(self, images, batch_size, seed, epoch=0, shuffle=True):
        super().__init__()
        self.images, self.batch_size, self.seed = images, batch_size, seed
        self.epoch, self.shuffle = epoch, shuffle
        self._epoch_rows = batch_rows(len(images), batch_size, seed, epoch) if shuffle else None

    def _rows(self, index):
        if self.shuffle:
            return self._epoch_rows[index]
        return np.arange(index * self.batch_size, min((index + 1) * self.batch_size, len(self.images)))

    def __len__(self):
        # Training uses full batches only (the loss is a batch mean); inference covers every image.
        if self.shuffle:
            return len(self.images) // self.batch_size
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index):
        return (to_unit_float(self.images[self._rows(index)]),)

    def set_epoch(self, epoch: int) -> None:
        """Feed epoch `epoch`'s batches. Set by fit's FeedEpoch callback, never counted here: Keras also
        calls on_epoch_end when training starts."""
        self.epoch = epoch
        if self.shuffle:
            self._epoch_rows = batch_rows(len(self.images), self.batch_size, self.seed, epoch)


class FeedEpoch(keras.callbacks.Callback):
    """Each epoch's batches are the (seed, epoch) ones, whatever happened before: resume is exact."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


class LatentBatches(ImageBatches):
    """z ~ N(mu, sigma) for encoded training data, resampled every epoch."""

    def __init__(self, mu, sigma, batch_size, seed, epoch=0):
        self.mu, self.sigma = mu.astype(np.float32), sigma.astype(np.float32)
        super().__init__(self.mu, batch_size, seed, epoch)

    def __getitem__(self, index):
        rows = self._rows(index)
        return (
            self.mu[rows]
            + self.sigma[rows] * latent_noise(self.seed, self.epoch, index, self.mu[rows].shape),
        )


def learning_rate_at(epoch: int, base: float, halve_every: int) -> float:
    """The learning rate of a 0-based epoch: base, halved every halve_every epochs (0: never)."""
    return base * 0.5 ** (epoch // halve_every) if halve_every else base


class EpochLog(keras.callbacks.Callback):
    """CSV row per epoch, flushed and fsynced before the checkpoint is written.

    Keras calls on_epoch_end even for an epoch cut short by a signal: `stopped()`
    says so, and such an epoch is neither logged nor checkpointed."""

    def __init__(self, path, stopped=lambda: False, measure=None):
        super().__init__()
        self.path = path
        self.stopped = stopped
        self.measure = measure  # run_folder.EpochMeasure or None
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.stopped() or not all(math.isfinite(float(logs.get(k, 0.0))) for k in ("loss", "mse", "kl")):
            return  # an interrupted or diverged epoch is neither logged nor checkpointed
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        seconds = time.time() - self._start
        fields, measured = (), None
        if self.measure is not None:
            fields = self.measure.fields
            measured = self.measure.measure(self.model, epoch + 1) if self.measure.due(epoch + 1) else None
        write_log_row(self.path, epoch + 1, logs, lr, seconds, measured, fields)


class Checkpoint(keras.callbacks.Callback):
    """The per-epoch checkpoint of run_folder's contract; notes a NaN/inf loss, a signal or the time budget
    and stops training after the batch (a signal, a NaN) or the epoch (the budget)."""

    def __init__(self, run_dir, metadata, deadline=None):
        super().__init__()
        self.run_dir, self.metadata = run_dir, metadata
        self.diverged = None
        self.signals = StopSignals(on_signal=lambda: setattr(self.model, "stop_training", True))
        self.budget, self.budget_stop = TimeBudget(deadline), None
        self._epoch_started = None

    def on_train_begin(self, logs=None):
        self.signals.__enter__()

    def on_train_end(self, logs=None):
        self.signals.__exit__()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.time()

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss) and self.diverged is None:
            self.diverged = (batch, loss)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged is not None:
            self.diverged = (epoch + 1,) + self.diverged
            return
        if self.signals.received is not None:
            return  # a partial epoch: the last completed one stays the resume point
        last = epoch + 1 == self.params.get("epochs")
        save_checkpoint(self.model, self.run_dir, self.metadata, epoch + 1, last)
        if not self.budget.another_fits(time.time() - self._epoch_started):
            self.budget_stop = epoch + 1
            self.model.stop_training = True


def build_optimizer(model: keras.Model) -> None:
    """Adam's slots made before fit, in the model's distribution scope. Left to fit, TensorFlow makes them in
    the train step's first trace, and a tf.function that creates variables is traced twice: ~7 s more each
    start on a CPU. The slots are zeros either way: the same training, bit for bit."""
    if model.optimizer.built:
        return
    strategy = getattr(model, "distribute_strategy", None)  # TensorFlow's; None on the other backends
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model.optimizer.build(model.trainable_variables)


def fit(
    model: keras.Model,
    batches: ImageBatches,
    run_dir: str,
    epochs: int,
    initial_epoch: int,
    learning_rate: float,
    halve_every: int,
    metadata: dict,
    verbose: int = 1,
    deadline: float | None = None,
    measure: EpochMeasure | None = None,
) -> keras.Model:
    """model.fit under run_folder's contract: resume, the CSV log (with `measure`'s columns), LR halving, the
    NaN/signal guard and the time budget (errors.deadline_of)."""
    os.makedirs(run_dir, exist_ok=True)
    log_path = layout.StagePaths(run_dir).log
    truncate_log(log_path, initial_epoch)
    checkpoint = Checkpoint(run_dir, metadata, deadline)
    callbacks = [
        FeedEpoch(batches),
        keras.callbacks.LearningRateScheduler(lambda e: learning_rate_at(e, learning_rate, halve_every)),
        EpochLog(log_path, stopped=lambda: checkpoint.signals.received is not None, measure=measure),
        checkpoint,
    ]
    if initial_epoch < epochs:
        build_optimizer(model)
        # shuffle=False: the order is the feeder's, a function of (seed, epoch) (Keras would draw it from the
        # global RNG, which a resumed run has not advanced)
        model.fit(
            batches,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,
        )
    if checkpoint.diverged is not None:
        epoch, batch, loss = checkpoint.diverged
        raise diverged(run_dir, loss, epoch, epoch - 1, batch)
    if checkpoint.signals.received is not None:
        raise interrupted(checkpoint.signals.received, len(read_log(log_path)))
    if checkpoint.budget_stop is not None and checkpoint.budget_stop < epochs:
        raise errors.TimeBudgetReached(checkpoint.budget_stop, epochs)
    return model


def encode(model: keras.Model, images: np.ndarray, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Posterior (mu, sigma) of uint8 images under a first-stage model, as float32 arrays."""
    batches = ImageBatches(images, batch_size, seed=0, shuffle=False)
    mu, log_sigma = model.encoder.predict(batches, verbose=0)
    return mu.astype(np.float32), np.exp(log_sigma).astype(np.float32)


def decode(model: keras.Model, z: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Decoder outputs of codes z, batch by batch (floats in [0, 1] for the first stage)."""
    return model.decoder.predict(np.asarray(z, np.float32), batch_size=batch_size, verbose=0)


def decode_posterior_means(
    model: keras.Model, images: np.ndarray, batch_statistics: bool, batch_size: int = 100
) -> np.ndarray:
    """x_hat = decoder(mu) of images (uint8 or [0, 1] floats), in batches of `batch_size`. batch_statistics:
    each batch normalized by its own statistics (training mode) instead of the moving ones; this updates the
    moving statistics, so call it on a model that is not saved afterwards."""
    from keras import ops

    images = to_unit_float(images) if np.asarray(images).dtype == np.uint8 else np.asarray(images, np.float32)
    outputs = []
    for i in range(0, len(images), batch_size):
        mu = model.encoder(images[i : i + batch_size], training=batch_statistics)[0]
        outputs.append(ops.convert_to_numpy(model.decoder(mu, training=batch_statistics)))
    return np.concatenate(outputs)


def recalibrate_batch_norm(model: keras.Model, batches: Iterable[tuple[np.ndarray]], seed: int = 0) -> int:
    """Re-estimate a first-stage VAE's batch-norm moving statistics on `batches`.

    Each layer's moving mean and variance become the average of its batch
    statistics over the batches, as in training (encoder on the images,
    decoder on z = mu + sigma * eps). Not in the authors' code: with decay
    0.999 the moving averages span ~1000 steps, so after a short run they lag
    the weights and inference-mode outputs are worse than training-mode ones.
    """
    layers = [
        layer
        for part in (model.encoder, model.decoder)
        for layer in part.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    momenta = [layer.momentum for layer in layers]
    noise_seed = keras.random.SeedGenerator(seed)
    for layer in layers:
        layer.debias = False  # zero-debiased layers: the plain update below is the running mean
    try:
        for index, (x,) in enumerate(batches):
            for layer in layers:
                layer.momentum = index / (index + 1)  # moving <- running mean of the batch statistics
            mu, log_sigma = model.encoder(x, training=True)
            z = mu + keras.ops.exp(log_sigma) * keras.random.normal(keras.ops.shape(mu), seed=noise_seed)
            model.decoder(z, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
            layer.debias = True
    return len(layers)


ADAM_EPSILON = 1e-8  # TF1's AdamOptimizer default, which the authors had (Keras' default is 1e-7)


def make_optimizer(learning_rate: float) -> keras.optimizers.Adam:
    """Adam with the authors' epsilon."""
    return keras.optimizers.Adam(learning_rate, epsilon=ADAM_EPSILON)


@contextlib.contextmanager
def precision_policy(mixed: bool, dtype: str = "float16") -> Iterator[None]:
    """Build layers under mixed_float16 (or mixed_bfloat16) when asked; the global policy is restored
    after, so later steps in the same process (generation, FID) stay float32."""
    if dtype not in ("float16", "bfloat16"):
        raise VaevarError(f"--mixed-dtype must be float16 or bfloat16, got {dtype!r}")
    previous = keras.mixed_precision.global_policy()
    if mixed:
        keras.mixed_precision.set_global_policy(f"mixed_{dtype}")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """How a stage trains: the training scripts build it from their flags (cli.settings_from)."""

    epochs: int
    learning_rate: float
    halve_every: int  # halve the learning rate every N epochs; 0: never
    batch_size: int
    quick: bool  # the small CPU setting: never stopped by the CPU-time check
    runtime: RuntimeSettings  # the trainer, precision, XLA, checkpoints, time budget, CPU guard, verbosity


def train_stage(
    settings: TrainingSettings,
    stage: layout.StagePaths,
    build_model: Callable[[], keras.Model],
    make_batches: Callable[[int], ImageBatches],
    metadata: dict,
    trainer: Callable[..., keras.Model] | None = None,
    record: dict | None = None,
    measure: EpochMeasure | None = None,
) -> keras.Model:
    """Build (or resume) a stage under the distribution scope, fit it, save the final model and the stage's
    completion record (record: the run's settings, with the seconds and the weights' digest). make_batches
    (first_epoch) feeds the trainer: `fit` above, or fast_training.fit_fast (fast_training.choose). measure:
    columns the log gains every few epochs (run_folder.EpochMeasure)."""
    started = time.time()
    runtime = settings.runtime

    def build():
        with precision_policy(runtime.mixed_precision, runtime.mixed_dtype):
            model = build_model()
        model.compile(
            optimizer=make_optimizer(settings.learning_rate),
            jit_compile=runtime.jit,
            steps_per_execution=runtime.steps_per_execution,
        )
        build_optimizer(model)  # also the CPU-time probe's copy: one trace of its step, not two
        return model

    with distribution_scope():
        model, done = resume_or_build(stage.dir, build, metadata)
    if runtime.jit != "auto":
        model.jit_compile = runtime.jit  # a resumed model keeps its own setting otherwise
    model.steps_per_execution = (
        runtime.steps_per_execution
    )  # likewise; read when fit builds its train function
    if done:
        print(f"resuming {stage.dir} after epoch {done}")
    batches = make_batches(done)
    if not (settings.quick or runtime.allow_cpu):
        cpu_time.check_cpu_time(build, batches, settings.epochs - done)
    (trainer or fit)(
        model,
        batches,
        stage.dir,
        settings.epochs,
        done,
        settings.learning_rate,
        settings.halve_every,
        metadata,
        verbose=runtime.verbose,
        deadline=errors.deadline_of(runtime.time_budget),
        measure=measure,
    )
    save_model(model, stage.model)
    # the stage's completion record: its settings, and the weights that later steps were made from
    save_json(
        stage.config,
        dict(
            record or dataclasses.asdict(settings),
            seconds=time.time() - started,
            weights=files.weights_digest(model),
        ),
    )
    print(f"saved {stage.model}")
    return model
