"""The CPU guard: a training that would take days without a GPU stops before it starts, with its estimate
measured on the run's own model and batches (--allow-cpu trains anyway; --quick is never stopped)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from vaevar import backend
from vaevar.errors import VaevarError

if TYPE_CHECKING:
    from collections.abc import Callable

    import keras


CPU_HOURS_LIMIT = 6  # without a GPU, a run estimated longer stops before training (--allow-cpu: runs)
PROBE_STEPS = 3
# Below this many samples to train, no run nears the limit on a CPU (a 2-core one trains >= ~35 images/s even
# at 64 px): the estimate's steps are skipped.
PROBE_ABOVE_SAMPLES = 100_000


def check_cpu_time(build: Callable[[], keras.Model], batches: keras.utils.PyDataset, epochs: int) -> None:
    """Stop before a run of `epochs` that would take days on a machine without a GPU: its time, estimated from
    PROBE_STEPS timed steps of a fresh copy of the model (after one untimed step that compiles) on the run's own
    batches (training.ImageBatches); the run's model and data order are untouched."""
    steps = epochs * len(batches)
    if steps * batches.batch_size < PROBE_ABOVE_SAMPLES or backend.on_gpu():
        return
    probe = build()
    probe.train_on_batch(batches[0][0])
    started = time.time()
    for index in range(1, PROBE_STEPS + 1):
        probe.train_on_batch(batches[index % len(batches)][0])
    per_step = (time.time() - started) / PROBE_STEPS
    if per_step * steps > CPU_HOURS_LIMIT * 3600:
        raise VaevarError(
            f"this run would take about {per_step * steps / 3600:.0f} h here ({epochs} epochs of "
            f"{len(batches)} steps at {per_step:.2f} s a step, measured) and no GPU is visible: "
            f"run it on a GPU, pass --allow-cpu to run it on this CPU anyway, or --quick for a small "
            f"CPU run"
        )
