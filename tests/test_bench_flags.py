"""The bench programs' variants reach the trainer bench as flags it has (each variant runs in its own process,
where a missing constant is an error only at run time, on the GPU)."""

import pytest

from vaevar import cli


def test_every_fast_variant_parses_as_bench_fast_trainer_flags():
    from bench import bench_fast_trainer, fast_variants

    defaults = vars(cli.parse_constants(vars(bench_fast_trainer), "", []))
    for name, (_, flags) in fast_variants.VARIANT_SETTINGS.items():
        parsed = vars(cli.parse_constants(vars(bench_fast_trainer), "", flags))
        changed = {key for key in parsed if parsed[key] != defaults[key]}
        assert len(changed) == len([f for f in flags if f.startswith("--")]), (name, flags, changed)


def test_an_unknown_variant_flag_is_refused():
    from bench import bench_fast_trainer

    with pytest.raises(SystemExit):
        cli.parse_constants(vars(bench_fast_trainer), "", ["--no-such-variant"])
