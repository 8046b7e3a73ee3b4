"""How a training command runs, apart from what it computes: the trainer, the precision, XLA, checkpoints,
the time budget, the CPU guard and verbosity.

A script that trains holds one constant of this type (`RUNTIME = RuntimeSettings()`); cli.parse_constants
makes each field a flag of its own (--trainer, --mixed-precision, ...), cli.settings_from builds the
settings back, and reproduce.py passes them on to its steps with cli.flags_of.
"""

from __future__ import annotations

import dataclasses

from vaevar.errors import VaevarError

TRAINERS = ("auto", "fit", "fast")
JIT_SETTINGS = {"auto": "auto", "on": True, "off": False}  # --jit-compile -> model.compile's jit_compile
MIXED_DTYPES = ("float16", "bfloat16")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    """How a training runs; each field is a flag (its metadata's help), checked here."""

    trainer: str = dataclasses.field(
        default="auto", metadata=_help("auto: fast on JAX with a GPU, else fit | fit (model.fit) | fast")
    )
    mixed_precision: bool = dataclasses.field(
        default=False, metadata=_help("mixed compute (--mixed-dtype) on GPU; the loss and gamma stay float32")
    )
    mixed_dtype: str = dataclasses.field(
        default="float16",
        metadata=_help("mixed compute: float16 (with loss scaling) | bfloat16 (its FID effect unmeasured)"),
    )
    jit_compile: str = dataclasses.field(
        default="auto", metadata=_help("XLA: auto (Keras decides: on for JAX and TF on GPU) | on | off")
    )
    steps_per_execution: int = dataclasses.field(
        default=1, metadata=_help("training steps per call into the compiled step (fewer callbacks)")
    )
    checkpoint_every: int = dataclasses.field(
        default=10,
        metadata=_help("the fast trainer checkpoints every N epochs (and at the end); fit: every epoch"),
    )
    time_budget: int = dataclasses.field(
        default=0,
        metadata=_help(
            "seconds: stop cleanly before, last epoch checkpointed (exit code 75: rerun); 0: none"
        ),
    )
    allow_cpu: bool = dataclasses.field(
        default=False, metadata=_help("train even when the run would take over 6 h without a GPU")
    )
    verbose: int = dataclasses.field(
        default=1, metadata=_help("Keras fit: 0 silent, 1 progress bar, 2 one line per epoch")
    )

    def __post_init__(self):
        choices = {
            "trainer": TRAINERS,
            "mixed_dtype": MIXED_DTYPES,
            "jit_compile": tuple(JIT_SETTINGS),
            "verbose": (0, 1, 2),
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise VaevarError(
                    f"--{_flag(name)} must be one of {', '.join(map(str, allowed))}, got {value!r}"
                )
        for name, least in (("steps_per_execution", 1), ("checkpoint_every", 1), ("time_budget", 0)):
            if getattr(self, name) < least:
                sign = "> 0" if least else ">= 0"
                raise VaevarError(f"--{_flag(name)} must be {sign}, got {getattr(self, name)}")

    @property
    def jit(self) -> bool | str:
        """model.compile's jit_compile: True, False or "auto"."""
        return JIT_SETTINGS[self.jit_compile]


def _flag(name: str) -> str:
    return name.replace("_", "-")
