"""Ops that keep the arithmetic and change its form (tools/exact_ops_check.py, on JAX). The decoder's
transposed conv (models/transposed_conv.py): Keras' forward pass and input gradient bit for bit, the kernel
gradient within its rounding bound and in the backward-filter form, older models adopted. The two bench
variants: batch norm's one-pass backward and the explicitly padded stride-2 convs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, U, jax_environment

pytest.importorskip("jax")

SHIPPED_STAGE1 = os.path.join(
    ROOT, "results", "fashion_mnist_first_stage_seeds", "run_seed_0", "stage1", "first_stage.keras"
)


@pytest.fixture(scope="module")
def checks():
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "exact_ops_check.py")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=jax_environment(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_forward_and_input_gradient_are_keras_own_bit_for_bit(checks):
    for shape in checks["transposed_conv"]:
        assert shape["output_equal"] and shape["input_gradient_equal"] and shape["bias_gradient_equal"], shape


def test_the_kernel_gradient_differs_by_summation_order_only(checks):
    """Within 2 gamma_(m+1) sum |x g| per entry (two orders of the same m products); the bound is far below
    the gradient itself, so a wrong padding or a swapped role breaks it."""
    for shape in checks["transposed_conv"]:
        assert shape["kernel_gradient_over_bound"] <= 1.0, shape
        assert shape["bound_relative"] < 1e-3, shape


def test_the_backward_pass_has_no_input_dilated_convolution(checks):
    """What XLA's GPU rewriter cannot match to cuDNN's backward-filter kernel (a convolution with lhs_dilate)
    is in Keras' own backward pass and not in this one's, whose kernel gradient dilates the window instead."""
    for shape in checks["transposed_conv"]:
        convolutions = shape["backward_convolutions"]
        assert any(c["lhs_dilate"] for c in convolutions["keras"]), shape  # the check sees the form
        assert not any(c["lhs_dilate"] for c in convolutions["exact"]), shape
        assert any(c["rhs_dilate"] for c in convolutions["exact"]), shape
        assert len(convolutions["exact"]) == 2, shape  # the input and the kernel gradient, nothing else


def test_older_models_load_with_the_exact_layer_and_decode_the_same():
    """The shipped first stage was saved with Keras' Conv2DTranspose: run_folder.load_model gives it the exact
    layer, with the same weights and (TensorFlow keeps Keras' op) the same decoded images bit for bit."""
    import keras

    from models.transposed_conv import ExactConv2DTranspose
    from vaevar.run_folder import load_model

    plain = keras.saving.load_model(SHIPPED_STAGE1, compile=False)
    adopted = load_model(SHIPPED_STAGE1, compile=False)
    ups = [layer for layer in adopted.decoder.layers if layer.name.startswith("dec_up")]
    assert ups and all(type(layer) is ExactConv2DTranspose for layer in ups)
    assert all(
        type(layer) is keras.layers.Conv2DTranspose
        for layer in plain.decoder.layers
        if "dec_up" in layer.name
    )
    z = np.random.default_rng(0).normal(size=(4, plain.decoder.input_shape[-1])).astype(np.float32)
    assert np.array_equal(np.asarray(plain.decoder(z)), np.asarray(adopted.decoder(z)))


def test_the_one_pass_batch_norm_backward_is_as_exact_as_the_default(checks):
    """The same outputs and moving statistics bit for bit; its x, gamma and beta gradients as close to the
    float64 gradient as the default's, measured in the same run (and never held below the rounding of one
    sum over the batch), with cotangents on the outputs alone and on the updated statistics too (what the
    mean and variance outputs pass back)."""
    result = checks["one_pass_bn"]
    floor = result["count"] * U
    for case in ("outputs", "statistics_too"):
        errors = result[case]
        assert errors["output_equal"] and errors["statistics_equal"], case
        for default, one_pass in zip(errors["default_errors"], errors["one_pass_errors"]):
            assert one_pass <= 2 * max(default, floor), (case, errors)


def test_explicitly_padded_stride_two_convs_compute_the_same_encoder(checks):
    """Two pad layers more, the same codes and weight gradients bit for bit."""
    result = checks["explicit_pad"]
    assert result["layers"][1] == result["layers"][0] + 2
    assert result["output_equal"] and result["gradients_equal"], result
