"""Batch norm with the authors' moving statistics: TF1's assign_moving_average(..., zero_debias=True).

Keras' BatchNormalization starts its moving mean and variance at (0, 1) and
keeps decay^t of that start after t steps (37% after 1,000 steps at decay
0.999). The authors' TF1 code instead keeps a biased accumulator that starts at
zero and stores accumulator / (1 - decay^t), so the start never enters the
statistics: after t steps they are the decay-weighted average of the t batch
statistics alone. Backend-agnostic (keras.ops).
"""

import keras
from keras import layers, ops

# True: in training, on JAX, a hand-written backward pass (bench/fast_variants.py's one_pass_bn): one
# reduction for sum(dy) and sum(dy * x_hat) together, then one elementwise pass; the forward is unchanged
ONE_PASS_BACKWARD = False


@keras.saving.register_keras_serializable(package="vaevar")
class DebiasedBatchNormalization(layers.BatchNormalization):
    """BatchNormalization whose moving statistics are zero-debiased, as TF1's; otherwise the same layer."""

    def build(self, input_shape):
        super().build(input_shape)
        shape = tuple(self.moving_mean.shape)
        self.biased_mean = self.add_weight(
            shape=shape, initializer="zeros", trainable=False, name="biased_mean", autocast=False
        )
        self.biased_variance = self.add_weight(
            shape=shape, initializer="zeros", trainable=False, name="biased_variance", autocast=False
        )
        self.debias_steps = self.add_weight(
            shape=(),
            initializer="zeros",
            trainable=False,
            name="debias_steps",
            dtype="float32",
            autocast=False,
        )
        self.debias = True  # recalibration switches it off to average batch statistics its own way

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self.debias) or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        # Keras' training branch, with the batch moments computed once and the debiased moving update.
        inputs = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        scale = ops.cast(self.gamma, inputs.dtype) if self.scale else None
        offset = ops.cast(self.beta, inputs.dtype) if self.center else None
        one_pass = (
            ONE_PASS_BACKWARD
            and keras.backend.backend() == "jax"
            and mask is None
            and not self.synchronized
            and self.axis in (-1, len(inputs.shape) - 1)
            and scale is not None
            and offset is not None
        )
        if one_pass:
            outputs, mean, variance = _one_pass_batch_norm(self.epsilon)(inputs, scale, offset)
        else:
            mean, variance = self._moments(inputs, mask)
        decay = self.momentum
        biased_mean = self.biased_mean * decay + ops.cast(mean, "float32") * (1.0 - decay)
        biased_variance = self.biased_variance * decay + ops.cast(variance, "float32") * (1.0 - decay)
        steps = self.debias_steps + 1.0
        correction = 1.0 - ops.power(decay, steps)
        self.biased_mean.assign(biased_mean)
        self.biased_variance.assign(biased_variance)
        self.debias_steps.assign(steps)
        self.moving_mean.assign(biased_mean / correction)
        self.moving_variance.assign(biased_variance / correction)
        if not one_pass:
            outputs = ops.batch_normalization(
                inputs, mean, variance, axis=self.axis, offset=offset, scale=scale, epsilon=self.epsilon
            )
        return ops.cast(outputs, self.compute_dtype)


_ONE_PASS = {}


def _one_pass_batch_norm(epsilon):
    """(x, scale, offset) -> (normalized x, batch mean, batch variance) over all axes but the last: Keras'
    own forward ops, and the textbook backward pass, dx = scale / sqrt(var + eps) * (dy - mean(dy) -
    x_hat * mean(dy * x_hat)), plus what the mean and variance outputs receive (zero when only the moving
    statistics use them)."""
    if epsilon not in _ONE_PASS:
        import jax
        import jax.numpy as jnp

        def forward_values(x, scale, offset):
            axes = tuple(range(x.ndim - 1))
            mean, variance = ops.moments(x, axes=axes)
            outputs = ops.batch_normalization(
                x, mean, variance, -1, offset=offset, scale=scale, epsilon=epsilon
            )
            return outputs, mean, variance

        @jax.custom_vjp
        def batch_norm(x, scale, offset):
            return forward_values(x, scale, offset)

        def forward(x, scale, offset):
            outputs, mean, variance = forward_values(x, scale, offset)
            return (outputs, mean, variance), (x, scale, mean, variance)

        def backward(saved, cotangents):
            x, scale, mean, variance = saved
            d_outputs, d_mean, d_variance = cotangents
            axes = tuple(range(x.ndim - 1))
            count = x.size // x.shape[-1]
            inverse = jax.lax.rsqrt(variance + epsilon)
            centered = x - mean
            x_hat = centered * inverse
            sum_dy, sum_dy_x_hat = jnp.sum(d_outputs, axes), jnp.sum(d_outputs * x_hat, axes)  # one pass
            d_x = (scale * inverse) * (d_outputs - (sum_dy + x_hat * sum_dy_x_hat) / count)
            d_x = d_x + (d_mean + 2.0 * d_variance * centered) / count
            return d_x, sum_dy_x_hat, sum_dy

        batch_norm.defvjp(forward, backward)
        _ONE_PASS[epsilon] = batch_norm
    return _ONE_PASS[epsilon]


def debias_legacy_statistics(model: keras.Model, steps: int) -> int:
    """The exact correction for a model trained with Keras' BatchNormalization (start (0, 1), decay b) for
    `steps` steps: mean / (1 - b^t) and (variance - b^t) / (1 - b^t), the zero-debiased statistics.
    Returns the number of layers corrected (DebiasedBatchNormalization layers are left alone)."""
    corrected = 0
    for layer in _batch_norm_layers(model):
        if isinstance(layer, DebiasedBatchNormalization):
            continue
        remaining = layer.momentum**steps
        mean = ops.convert_to_numpy(layer.moving_mean)
        variance = ops.convert_to_numpy(layer.moving_variance)
        layer.moving_mean.assign(mean / (1.0 - remaining))
        layer.moving_variance.assign((variance - remaining) / (1.0 - remaining))
        corrected += 1
    return corrected


def _batch_norm_layers(model):
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, layers.BatchNormalization):
            found.append(layer)
    return found
