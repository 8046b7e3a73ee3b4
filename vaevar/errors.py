"""How a command ends: a one-line error the user can fix (exit code 2), or a clean stop at --time-budget
(exit code 75, rerun to continue), and the clock that budget counts from."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

EXIT_TIME_BUDGET = 75  # a run stopped at --time-budget (sysexits' EX_TEMPFAIL): rerun to continue
_started = time.time()  # the command's start: run_main sets it; until then, this module's first import


class VaevarError(Exception):
    """An error the user can fix; printed as one line, no traceback."""


class TimeBudgetReached(Exception):
    """--time-budget: the run stopped cleanly, its last epoch checkpointed; rerunning continues it."""

    def __init__(self, done=None, epochs=None, message=None):
        super().__init__(
            message
            or f"stopped at the time budget after epoch {done} of {epochs}: rerun the same "
            f"command to continue"
        )
        self.done, self.epochs = done, epochs

    @classmethod
    def during(cls, step: str) -> TimeBudgetReached:
        return cls(
            message=f"stopped at the time budget at the {step} step: rerun the same command to continue"
        )


def deadline_of(time_budget: float) -> float | None:
    """--time-budget SECONDS, counted from the command's start -> a time.time() deadline (None: none)."""
    return _started + time_budget if time_budget else None


def run_main(main: Callable[[], object]) -> None:
    """Run a script's main(), its clock started: a VaevarError becomes a one-line message and exit code 2, a
    stop at the time budget its line and EXIT_TIME_BUDGET."""
    global _started
    _started = time.time()
    try:
        main()
    except TimeBudgetReached as stop:
        print(str(stop), file=sys.stderr)
        sys.exit(EXIT_TIME_BUDGET)
    except VaevarError as error:
        # one line whatever the message quotes (tarfile's and pip's reasons span several)
        print("error: " + " ".join(str(error).split()), file=sys.stderr)
        sys.exit(2)
