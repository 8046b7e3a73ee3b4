"""bench/profile_step.py's trace reading: a saved CPU profile of two fast-trainer steps (the authors' network at
28 px; XLA's thunks as kernels) and a hand-made GPU trace whose numbers are worked out below."""

import gzip
import json
import os

import pytest

from bench.profile_step import merged_length, summarize_trace
from tests.conftest import ROOT

CPU_TRACE = os.path.join(ROOT, "tests", "data", "profile_step_cpu.trace.json.gz")


def test_a_saved_cpu_profile_reads_as_its_thunks():
    """jax.profiler's trace of `python -m bench.profile_step --dataset mnist --images 200` on a CPU (2 steps)."""
    with gzip.open(CPU_TRACE, "rt") as f:
        events = json.load(f)["traceEvents"]
    thunks = [e for e in events if e.get("ph") == "X" and "hlo_op" in e.get("args", {})]
    summary = summarize_trace(CPU_TRACE, steps=2)
    assert summary["kernels"] == len(thunks) > 100  # each thunk once, and nothing of the host's own
    assert summary["kernels_per_step"] == len(thunks) / 2
    assert summary["kernel_time_us"] == pytest.approx(sum(e["dur"] for e in thunks))
    assert 0 < summary["busy_us"] <= min(summary["span_us"], summary["kernel_time_us"]) + 1e-6
    shares = [kernel["share"] for kernel in summary["heaviest"]]
    assert len(shares) == 10 and shares == sorted(shares, reverse=True) and sum(shares) <= 1 + 1e-9
    assert summary["heaviest"][0]["op"].startswith("conv")  # a conv net's time goes to its convolutions


def test_a_gpu_trace_counts_stream_kernels_once_and_merges_overlaps(tmp_path):
    """Two steps, three kernels on two streams (one overlapping another), the "XLA Ops" line repeating them,
    and a host event: 1.5 kernels a step; busy = union [0, 10) + [20, 30) = 20 us of the 30 us span;
    kernel time 10 + 4 + 10 = 24 us; median 10 us."""
    events = [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/host:CPU"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 7, "args": {"name": "Stream #7(Compute)"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 8, "args": {"name": "Stream #8(Compute)"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 99, "args": {"name": "XLA Ops"}},
        {"ph": "X", "pid": 1, "tid": 7, "ts": 0, "dur": 10, "name": "gemm", "args": {"hlo_op": "dot.1"}},
        {
            "ph": "X",
            "pid": 1,
            "tid": 8,
            "ts": 3,
            "dur": 4,
            "name": "fusion_kernel",
            "args": {"hlo_op": "fusion.2"},
        },
        {"ph": "X", "pid": 1, "tid": 7, "ts": 20, "dur": 10, "name": "gemm", "args": {"hlo_op": "dot.1"}},
        {"ph": "X", "pid": 1, "tid": 99, "ts": 0, "dur": 10, "name": "dot.1", "args": {"hlo_op": "dot.1"}},
        {"ph": "X", "pid": 2, "tid": 1, "ts": 0, "dur": 30, "name": "PjitFunction", "args": {"hlo_op": "x"}},
    ]
    path = tmp_path / "gpu.trace.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)
    summary = summarize_trace(str(path), steps=2)
    assert summary["kernels"] == 3 and summary["kernels_per_step"] == 1.5
    assert summary["span_us"] == 30 and summary["busy_us"] == 20
    assert summary["busy_fraction"] == pytest.approx(20 / 30)
    assert summary["kernel_time_us"] == 24 and summary["median_kernel_us"] == 10
    assert summary["kernels_times_median_us"] == 15
    assert [(k["op"], k["count"], k["share"]) for k in summary["heaviest"]] == [
        ("dot.1", 2, 20 / 24),
        ("fusion.2", 1, 4 / 24),
    ]


def test_merged_length_of_touching_nested_and_apart_intervals():
    assert merged_length([(0, 2), (2, 3), (5, 9), (6, 7), (8, 10)]) == 3 + 5
    assert merged_length([]) == 0
