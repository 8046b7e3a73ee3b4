"""Run with KERAS_BACKEND=jax (tests/test_transposed_conv.py does, in a subprocess): models/transposed_conv.py's
layer against Keras' Conv2DTranspose on the same weights, at decoder shapes. Prints one JSON object:
per shape, whether the output and the input and bias gradients are equal bit for bit, the kernel gradient's
largest difference over its rounding bound, and the convolutions of each backward pass (pre-optimization
HLO, what XLA's GPU conv rewriter is given)."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

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


results = []
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
    results.append(
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
print(json.dumps(results))
