"""Copies of a stage kept after chosen epochs: train_first_stage.py's and train_second_stage.py's
--keep-models-at, written to the stage's kept/epoch_<E>.keras (layout.StagePaths.kept_model).

A copy is the model as it was after its epoch (with its optimizer state; before train_first_stage.py's
RECALIBRATE_BN, which touches the final model only), written atomically from the epoch's log step, so before
that epoch's checkpoint: a run stopped in between trains the epoch again and writes the same copy, and a
resumed run has the copy of every kept epoch its checkpoint has passed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vaevar import files, layout
from vaevar.errors import VaevarError

if TYPE_CHECKING:
    from vaevar.run_folder import EpochMeasure


def kept_epochs(text: str) -> tuple[int, ...]:
    """--keep-models-at's comma-separated epochs ("5,15,40"), distinct and sorted; each at least 1. An epoch
    beyond this command's EPOCHS is allowed: a later command that trains further reaches it."""
    try:
        epochs = tuple(sorted({int(e) for e in str(text).split(",") if e.strip()}))
    except ValueError:
        raise VaevarError(f"--keep-models-at {text!r}: give comma-separated epochs, e.g. 5,15,40") from None
    if any(e < 1 for e in epochs):
        raise VaevarError(f"--keep-models-at {text}: epochs start at 1")
    return epochs


def keep_copies(
    stage: layout.StagePaths, epochs: tuple[int, ...], also: EpochMeasure | None = None
) -> EpochMeasure | None:
    """The run_folder.EpochMeasure that saves the model to stage.kept_model(E) after each epoch E in `epochs`,
    and measures `also` (another EpochMeasure: its log columns) where that is due; `also` alone without
    epochs. Refuses a kept epoch that the stage's checkpoint has passed without its copy: it cannot be made
    any more (the flag added on a resume)."""
    from vaevar.run_folder import EpochMeasure  # Keras: imported by the trainings only

    if not epochs:
        return also
    done = files.load_json(stage.state).get("epoch", 0) if os.path.exists(stage.state) else 0
    missing = [e for e in epochs if e <= done and not os.path.exists(stage.kept_model(e))]
    if missing:
        raise VaevarError(
            f"--keep-models-at {','.join(map(str, missing))}: {stage.dir} resumes after epoch {done} and "
            f"kept no copy of epoch {missing[0]}: drop it, or train the stage again in another --run-dir"
        )

    def measure(model, epoch):
        if epoch in epochs:
            os.makedirs(stage.kept_dir, exist_ok=True)
            files.save_model(model, stage.kept_model(epoch))
        return also.measure(model, epoch) if also is not None and also.due(epoch) else {}

    if also is None:
        return EpochMeasure((), 0, measure, at=epochs)
    return EpochMeasure(also.fields, also.every, measure, at=tuple(sorted(set(epochs) | set(also.at))))
