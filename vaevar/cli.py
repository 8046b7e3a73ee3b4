"""A script's constants as its flags (parse_constants), the typed settings built from them, and checks of
flag values. The only library module that sees argparse."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from typing import TYPE_CHECKING, TypeVar

from vaevar.errors import VaevarError

if TYPE_CHECKING:
    from collections.abc import Container, Mapping, Sequence

_Settings = TypeVar("_Settings")  # settings_from's dataclass


def parse_constants(
    module_globals: Mapping[str, object],
    description: str,
    argv: Sequence[str] | None = None,
    positional: tuple[str, str] | None = None,
) -> argparse.Namespace:
    """Every UPPERCASE constant of a script becomes a `--lower-case` flag.

    The constant's trailing comment in the script is the flag's help. Constants
    set to None take their value from the data set's defaults later; their
    flags read an int, a float or else a string. Returns an argparse.Namespace
    with lower-case attribute names. A constant holding a dataclass (RUNTIME = RuntimeSettings()) gives
    a flag per field instead, its metadata["help"] the help; settings_from builds it back.
    positional: (name, help) of a list of paths before the flags.
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    comments = _constant_comments(module_globals.get("__file__"))
    if positional is not None:
        parser.add_argument(positional[0], nargs="*", help=positional[1])
    names = []
    for name, value in module_globals.items():
        if not name.isupper() or name.startswith("_"):
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):  # e.g. RUNTIME: a flag per field
            group = parser.add_argument_group(f"{name.lower()} ({comments.get(name, type(value).__name__)})")
            for field in dataclasses.fields(value):
                _add_flag(group, field.name, getattr(value, field.name), field.metadata.get("help", ""))
                names.append(field.name)
        else:
            _add_flag(parser, name.lower(), value, comments.get(name, ""))
            names.append(name.lower())
    args = parser.parse_args(argv)
    for name in names:
        if name == "seed" or name.endswith("_seed"):
            check_seed(name, getattr(args, name, None))
    return args


def _add_flag(parser, name, value, comment):
    flag = "--" + name.replace("_", "-")
    help_text = f"{comment} (default: {value})".strip()
    if isinstance(value, bool):
        parser.add_argument(flag, default=value, action=argparse.BooleanOptionalAction, help=help_text)
    elif isinstance(value, (int, float, str)) or value is None:
        kind = type(value) if value is not None else _number_or_text
        parser.add_argument(flag, default=value, type=kind, dest=name, help=help_text)


def flags_of(settings: object) -> list[str]:
    """The flags that give a dataclass's values to a script that took it as a constant: parse_constants'
    inverse, so that reproduce.py passes its settings on to its steps."""
    flags = []
    for field in dataclasses.fields(settings):
        flag, value = "--" + field.name.replace("_", "-"), getattr(settings, field.name)
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, str(value)]
    return flags


def settings_from(args: argparse.Namespace, settings_class: type[_Settings], **overrides) -> _Settings:
    """A library's typed settings (a dataclass) from a script's parsed flags: the fields it names, in one place."""
    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(settings_class) if hasattr(args, f.name)
    }
    return settings_class(**dict(values, **overrides))


def _constant_comments(path):
    """NAME -> the comment after `NAME = value  # comment` in a script's source."""
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        matches = (re.match(r"^([A-Z][A-Z0-9_]*)\s*=.*?#\s*(.+)$", line) for line in f)
        return {m.group(1): m.group(2).strip() for m in matches if m}


def _number_or_text(text):
    """Type of flags whose constant defaults to None: int, float or str as written."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


SEED_LIMIT = 2**32  # numpy's and Keras' seeds: 0 <= seed < 2**32


def check_seed(name: str, value: object) -> None:
    """A seed flag's value (SEED, SPLIT_SEED, ...): an int in numpy's range, checked before anything runs
    (numpy's own check comes late, as a traceback); None: left to a default."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        flag = "--" + name.replace("_", "-")
        raise VaevarError(f"{flag} must be an integer from 0 to 2**32 - 1 ({SEED_LIMIT - 1}), got {value}")


def require_positive(args: argparse.Namespace, *names: str, allow_zero: Container[str] = ()) -> None:
    """Each named flag's value > 0 (or >= 0 where allow_zero names it); None: left to a default."""
    for name in names:
        value = getattr(args, name)
        if value is None:
            continue
        if value < 0 or (value == 0 and name not in allow_zero):
            flag = "--" + name.replace("_", "-")
            raise VaevarError(f"{flag} must be {'>= 0' if name in allow_zero else '> 0'}, got {value}")
