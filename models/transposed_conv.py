"""The decoder's transposed conv with the kernel gradient in the form GPUs run fast (JAX backend).

A stride-2 transposed conv is the input gradient of the stride-2 conv with the same kernel. Keras' JAX op
computes it as a convolution with input dilation 2, and JAX's kernel gradient of that is again a
convolution with input dilation: XLA's GPU conv rewriter does not match that form to cuDNN's backward-filter
kernel and runs it as a forward conv with a map-sized "filter" (jax-ml/jax#31662, openxla/xla#34273).

Here the forward pass is Keras' own op (bit for bit); the backward pass is written by hand from the
stride-2 conv f(u) = conv(u, K):
- the input gradient is f itself applied to the output's cotangent (what JAX computes, bit for bit);
- the kernel gradient is f's kernel gradient with input and output swapped: d<g, f^T x>/dK = d<f(g), x>/dK,
  a convolution with window (kernel) dilation, the standard backward-filter form. It sums the same products
  in another order.
Kernel and bias shapes and names are Keras' Conv2DTranspose's, so its weights load unchanged; TensorFlow and
other backends keep Keras' op.
"""

import keras
from keras import layers, ops

# False: Keras' op and its own gradient on every backend (bench/fast_variants.py's keras_transposed_conv)
EXACT_GRADIENT = True


@keras.saving.register_keras_serializable(package="vaevar")
class ExactConv2DTranspose(layers.Conv2DTranspose):
    """Conv2DTranspose whose JAX backward pass is the stride-2 conv's own and its backward-filter conv."""

    def call(self, inputs):
        pads = self._forward_conv_pads(inputs.shape)
        if pads is None:
            return super().call(inputs)
        transposed_conv = _transposed_conv(tuple(self.strides), self.padding, pads)
        outputs = transposed_conv(inputs, ops.convert_to_tensor(self.kernel))
        if self.use_bias:
            outputs = ops.add(outputs, ops.reshape(self.bias, (1, 1, 1, self.filters)))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def _forward_conv_pads(self, input_shape):
        """The padding of the stride-s conv this layer transposes, or None where Keras' op is kept."""
        if not (
            EXACT_GRADIENT
            and keras.backend.backend() == "jax"
            and self.data_format == "channels_last"
            and self.output_padding is None
            and tuple(self.dilation_rate) == (1, 1)
            and self.padding in ("same", "valid")
        ):
            return None
        if self.padding == "valid":
            return ((0, 0), (0, 0))
        pads = []
        for size, kernel, stride in zip(input_shape[1:3], self.kernel_size, self.strides):
            # TensorFlow's SAME padding of a stride-s conv on the transposed conv's output (size * stride)
            total = max(kernel - stride, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)


_FUNCTIONS = {}


def _transposed_conv(strides, padding, pads):
    """The transposed conv (x, kernel) -> y with the hand-written backward pass, one per setting."""
    key = (strides, padding, pads)
    if key not in _FUNCTIONS:
        import jax
        from jax import lax

        def conv(u, kernel):  # f: from the transposed conv's output space back to its input space
            return lax.conv_general_dilated(
                u, kernel, strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC")
            )

        @jax.custom_vjp
        def transposed_conv(x, kernel):
            return ops.conv_transpose(
                x, kernel, strides=list(strides), padding=padding, data_format="channels_last"
            )

        def forward(x, kernel):
            return transposed_conv(x, kernel), (x, kernel)

        def backward(saved, cotangent):
            x, kernel = saved
            input_gradient = conv(cotangent, kernel)
            _, kernel_vjp = jax.vjp(lambda k: conv(cotangent, k), kernel)
            (kernel_gradient,) = kernel_vjp(x)
            return input_gradient, kernel_gradient

        transposed_conv.defvjp(forward, backward)
        _FUNCTIONS[key] = transposed_conv
    return _FUNCTIONS[key]


def adopt_transposed_convs(model: keras.Model) -> int:
    """Models saved before this layer existed hold Keras' Conv2DTranspose: give them this one's backward
    pass. The class adds no weights or state, only the call, so the layer object changes class in place.
    Returns the number of layers changed."""
    changed = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if type(layer) is layers.Conv2DTranspose:
            layer.__class__ = ExactConv2DTranspose
            changed += 1
    return changed
