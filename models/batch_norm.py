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
        scale = ops.cast(self.gamma, inputs.dtype) if self.scale else None
        offset = ops.cast(self.beta, inputs.dtype) if self.center else None
        outputs = ops.batch_normalization(
            inputs, mean, variance, axis=self.axis, offset=offset, scale=scale, epsilon=self.epsilon
        )
        return ops.cast(outputs, self.compute_dtype)


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
