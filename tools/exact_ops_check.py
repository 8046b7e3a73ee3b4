"""Run with KERAS_BACKEND=jax (tests/test_exact_ops.py does, in a subprocess): the ops that keep the arithmetic
and change its form, against Keras' own on the same weights. Prints one JSON object:
- transposed_conv: models/transposed_conv.py's layer at decoder shapes: whether the output and the input and
  bias gradients equal Keras' bit for bit, the kernel gradient's largest difference over its rounding bound,
  and the convolutions of each backward pass (pre-optimization HLO: what XLA's GPU conv rewriter is given);
- one_pass_bn: models/batch_norm.ONE_PASS_BACKWARD's outputs and moving statistics against the default's, and
  both gradients' errors against the exact (float64, by hand) gradient, with cotangents on the outputs alone
  and on the updated statistics too;
- explicit_pad: an encoder built with models/first_stage.EXPLICIT_STRIDE_PAD against the default one."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from models import batch_norm, first_stage  # noqa: E402
from models.transposed_conv import ExactConv2DTranspose  # noqa: E402

assert keras.backend.backend() == "jax"
U = 2.0**-24  # float32's unit roundoff
# (batch, input side, input channels, filters): the study's 28 px decoder (7 -> 14, odd), the authors' 32 px
# decoder's widths at a smaller batch, a valid-padded one
SHAPES = [(6, 7, 16, 8, "same"), (4, 4, 64, 32, "same"), (4, 8, 32, 16, "same"), (3, 5, 8, 4, "valid")]


def convolutions(function, *args):
    """Each convolution in the lowered (not yet optimized) HLO: whether it dilates its input (lhs) and its
    window (rhs)."""
    text = jax.jit(function).lower(*args).as_text(dialect="hlo")
    found = []
    for line in text.splitlines():
        if " convolution(" in line:
            window = re.search(r"window=\{([^}]*)\}", line).group(1)
            found.append({"lhs_dilate": "lhs_dilate" in window, "rhs_dilate": "rhs_dilate" in window})
    return found


results = {"transposed_conv": []}
rng = np.random.default_rng(0)
for batch, side, channels, filters, padding in SHAPES:
    exact = ExactConv2DTranspose(filters, 3, strides=2, padding=padding)
    plain = layers.Conv2DTranspose(filters, 3, strides=2, padding=padding)
    shape = (batch, side, side, channels)
    for layer in (exact, plain):
        layer.build(shape)
    kernel = (rng.standard_normal(exact.kernel.shape) * 0.1).astype(np.float32)
    bias = rng.standard_normal(filters).astype(np.float32)
    x = rng.standard_normal(shape).astype(np.float32)

    def apply(layer):
        return lambda x, kernel, bias: layer.stateless_call([kernel, bias], [], x)[0]

    outputs, backward = {}, {}
    for name, layer in (("exact", exact), ("keras", plain)):
        outputs[name], backward[name] = jax.vjp(apply(layer), x, kernel, bias)
    cotangent = rng.standard_normal(outputs["keras"].shape).astype(np.float32)
    grads = {name: [np.asarray(g) for g in vjp(cotangent)] for name, vjp in backward.items()}
    # Rounding bound of the kernel gradient: each entry sums at most m = batch * side^2 products x * g, so two
    # summation orders differ by at most 2 gamma_(m+1) sum |x g| (gamma_n = n u / (1 - n u)); sum |x g| is the
    # same kernel gradient of |x| and |g|, itself computed within gamma_m of its value (nonnegative terms).
    m = batch * side * side
    gamma = (m + 1) * U / (1 - (m + 1) * U)
    _, absolute_vjp = jax.vjp(apply(plain), np.abs(x), kernel, bias)
    absolute = np.asarray(absolute_vjp(np.abs(cotangent))[1], np.float64)
    bound = 2 * gamma * absolute / (1 - gamma)
    difference = np.abs(grads["exact"][1].astype(np.float64) - grads["keras"][1])
    results["transposed_conv"].append(
        {
            "shape": [batch, side, channels, filters, padding],
            "output_equal": bool(np.array_equal(outputs["exact"], outputs["keras"])),
            "input_gradient_equal": bool(np.array_equal(grads["exact"][0], grads["keras"][0])),
            "bias_gradient_equal": bool(np.array_equal(grads["exact"][2], grads["keras"][2])),
            "kernel_gradient_over_bound": float(np.max(difference / bound)),
            "kernel_gradient_difference": float(np.max(difference) / np.max(np.abs(grads["keras"][1]))),
            "bound_relative": float(np.max(bound) / np.max(np.abs(grads["keras"][1]))),
            "backward_convolutions": {
                name: convolutions(lambda g, vjp=vjp: vjp(g), cotangent) for name, vjp in backward.items()
            },
        }
    )


# the encoder with its stride-2 convs padded explicitly, on the default encoder's weights
encoders = []
for explicit in (False, True):
    first_stage.EXPLICIT_STRIDE_PAD = explicit
    encoders.append(first_stage.build_encoder((28, 28, 1), latent_dim=8, base_filters=4))
first_stage.EXPLICIT_STRIDE_PAD = False
encoders[1].set_weights(encoders[0].get_weights())
images = rng.uniform(0, 1, (4, 28, 28, 1)).astype(np.float32)
encoded = []
for encoder in encoders:

    def mu_sum(variables, images=images, encoder=encoder):
        (mu, _), _ = encoder.stateless_call(
            variables, [v.value for v in encoder.non_trainable_variables], images
        )
        return jax.numpy.sum(mu * mu)

    value, grads = jax.value_and_grad(mu_sum)([v.value for v in encoder.trainable_variables])
    encoded.append((np.asarray(value), [np.asarray(g) for g in grads]))
results["explicit_pad"] = {
    "layers": [len(encoder.layers) for encoder in encoders],
    "output_equal": bool(np.array_equal(encoded[0][0], encoded[1][0])),
    "gradients_equal": all(np.array_equal(a, b) for a, b in zip(encoded[0][1], encoded[1][1])),
    "gradient_difference": max(
        float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-30))
        for a, b in zip(encoded[0][1], encoded[1][1])
    ),
}


def batch_norm_gradients(x, gamma, beta, cotangents, one_pass):
    """A training-mode DebiasedBatchNormalization: (outputs, updated statistics, gradients of x, gamma, beta)
    for cotangents on the outputs and on the updated statistics (the moving averages depend on the batch
    mean and variance)."""
    batch_norm.ONE_PASS_BACKWARD = one_pass
    try:
        layer = first_stage.batch_norm("bn")
        layer.build(x.shape)
        non_trainable = [np.asarray(v.value) for v in layer.non_trainable_variables]

        def apply(x, gamma, beta):
            return layer.stateless_call([gamma, beta], non_trainable, x, training=True)

        (outputs, updated), vjp = jax.vjp(apply, x, gamma, beta)
        grads = vjp(cotangents)
    finally:
        batch_norm.ONE_PASS_BACKWARD = False
    return np.asarray(outputs), [np.asarray(v) for v in updated], [np.asarray(g, np.float64) for g in grads]


def textbook_gradients(x, gamma, cotangents, epsilon, decay):
    """The exact gradients, in float64, of a fresh layer's first training step: the outputs' part, dx = gamma /
    sqrt(var + eps) (dy - mean(dy) - x_hat mean(dy x_hat)), plus what the updated statistics pass back through
    the batch mean and variance (biased = (1 - decay) * batch value, moving = biased / (1 - decay) after one
    step): d mean / dx = 1 / count, d var / dx = 2 (x - mean) / count."""
    dy, (moving_mean, moving_variance, biased_mean, biased_variance, _) = cotangents
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    axes = (0, 1, 2)
    count = x.size // x.shape[-1]
    mean, variance = x.mean(axes), x.var(axes)
    inverse = 1 / np.sqrt(variance + epsilon)
    x_hat = (x - mean) * inverse
    d_x = gamma * inverse * (dy - dy.mean(axes) - x_hat * (dy * x_hat).mean(axes))
    d_mean = moving_mean + (1 - decay) * np.asarray(biased_mean, np.float64)
    d_variance = moving_variance + (1 - decay) * np.asarray(biased_variance, np.float64)
    d_x = d_x + (d_mean + 2 * d_variance * (x - mean)) / count
    return [d_x, (dy * x_hat).sum(axes), dy.sum(axes)]


def errors_from(truth, grads):
    return [float(np.max(np.abs(g - t)) / np.max(np.abs(t))) for g, t in zip(grads, truth)]


x = (rng.standard_normal((8, 6, 6, 16)) * 3 + 1).astype(np.float32)
gamma = rng.uniform(0.5, 1.5, 16).astype(np.float32)
beta = rng.standard_normal(16).astype(np.float32)
cotangent = rng.standard_normal(x.shape).astype(np.float32)
statistics_shapes = [(16,)] * 4 + [()]  # moving mean, variance, their biased accumulators, the step count
results["one_pass_bn"] = {"count": int(x.size // x.shape[-1])}
for case, statistics in (
    ("outputs", [np.zeros(shape, np.float32) for shape in statistics_shapes]),
    ("statistics_too", [rng.standard_normal(shape).astype(np.float32) for shape in statistics_shapes]),
):
    cotangents = (cotangent, statistics)
    default, one_pass = (batch_norm_gradients(x, gamma, beta, cotangents, flag) for flag in (False, True))
    truth = textbook_gradients(x, gamma, cotangents, first_stage.BN_EPSILON, first_stage.BN_MOMENTUM)
    results["one_pass_bn"][case] = {
        "output_equal": bool(np.array_equal(default[0], one_pass[0])),
        "statistics_equal": all(np.array_equal(a, b) for a, b in zip(default[1], one_pass[1])),
        "default_errors": errors_from(truth, default[2]),
        "one_pass_errors": errors_from(truth, one_pass[2]),
    }

print(json.dumps(results))
