"""The VAE model and its loss, backend-agnostic (keras.ops only).

Balanced loss (Asperti & Trentin 2020), per example, averaged over the batch:
    sum((x - x_hat)^2) / (2 gamma^2) + D * log(gamma) + k * KL
(k: the KL weight; the authors' first stage uses (2 * side / latent_dim)^2,
their second stage 1)
with gamma^2 a non-trainable state: after each training batch
    mse_ema <- min(mse_ema, 0.99 * mse_ema + 0.01 * batch_mse)
so gamma never grows. 'learned' mode is Dai & Wipf's trainable log-gamma.
"""

import keras
from keras import ops

GAMMA_MODES = ("balanced", "learned")
EMA_DECAY = 0.99
# gamma >= 1e-3: the loss can never divide by zero.
MSE_FLOOR = 1e-6


def kl_divergence(mu, log_sigma):
    """KL(N(mu, sigma) || N(0, I)) per example, summed over latent dimensions."""
    return 0.5 * ops.sum(ops.square(mu) + ops.exp(2.0 * log_sigma) - 2.0 * log_sigma - 1.0, axis=-1)


def balanced_ema_update(mse_ema, batch_mse, decay: float = EMA_DECAY, floor: float = MSE_FLOOR):
    """The gamma^2 update rule: an EMA of the batch MSE that never grows."""
    moved = decay * mse_ema + (1.0 - decay) * batch_mse
    return ops.maximum(ops.minimum(mse_ema, moved), floor)


@keras.saving.register_keras_serializable(package="vaevar")
class VAE(keras.Model):
    """Encoder (x -> mu, log_sigma), reparameterised sampling, decoder (z -> x_hat).

    call() returns (x_hat, mu, log_sigma); in training z is sampled, in
    inference z = mu (reconstructions use the posterior mean).
    """

    def __init__(self, encoder, decoder, gamma_mode="balanced", seed=0, kl_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        if gamma_mode not in GAMMA_MODES:
            raise ValueError(f"gamma_mode must be one of {GAMMA_MODES}, got {gamma_mode!r}")
        self.encoder = encoder
        self.decoder = decoder
        self.gamma_mode = gamma_mode
        self.seed = seed
        self.kl_weight = float(kl_weight)
        self.latent_dim = int(encoder.outputs[0].shape[-1])
        self.sampler_seed = keras.random.SeedGenerator(seed, name="sampler_seed")
        self.mse_ema = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="mse_ema", dtype="float32"
        )
        self.log_gamma = self.add_weight(
            shape=(),
            initializer="zeros",
            trainable=(gamma_mode == "learned"),
            name="log_gamma",
            dtype="float32",
        )
        self.mse_tracker = keras.metrics.Mean(name="mse")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.gamma_tracker = keras.metrics.Mean(name="gamma")

    def call(self, x, training=False):
        mu, log_sigma = self.encoder(x, training=training)
        if training:
            noise = keras.random.normal(ops.shape(mu), dtype=mu.dtype, seed=self.sampler_seed)
            z = mu + ops.exp(log_sigma) * noise
        else:
            z = mu
        return self.decoder(z, training=training), mu, log_sigma

    def gamma_squared(self):
        if self.gamma_mode == "learned":
            return ops.exp(2.0 * self.log_gamma)
        return ops.maximum(ops.convert_to_tensor(self.mse_ema), MSE_FLOOR)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        target = x if y is None else y
        x_hat, mu, log_sigma = y_pred
        target = ops.cast(target, "float32")
        x_hat = ops.cast(x_hat, "float32")  # the loss stays float32 under mixed precision
        mu = ops.cast(mu, "float32")
        log_sigma = ops.cast(log_sigma, "float32")
        axes = tuple(range(1, len(target.shape)))
        squared_error = ops.sum(ops.square(target - x_hat), axis=axes)
        dims = 1
        for size in target.shape[1:]:
            dims *= int(size)
        batch_mse = ops.mean(squared_error) / dims
        gamma2 = self.gamma_squared()
        reconstruction = squared_error / (2.0 * gamma2) + dims * 0.5 * ops.log(gamma2)
        kl = kl_divergence(mu, log_sigma)
        loss = ops.mean(reconstruction + self.kl_weight * kl)
        if training and self.gamma_mode == "balanced":
            self.mse_ema.assign(balanced_ema_update(self.mse_ema, ops.stop_gradient(batch_mse)))
        self.mse_tracker.update_state(batch_mse)
        self.kl_tracker.update_state(ops.mean(kl))
        self.gamma_tracker.update_state(ops.sqrt(gamma2))
        return loss

    # The sampler's RNG state is saved with the weights, so a resumed run draws the noise it would have.
    SAMPLER_STATE_KEY = "sampler_seed_state"

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self.SAMPLER_STATE_KEY] = self.sampler_seed.state

    def load_own_variables(self, store):
        own = {key: store[key] for key in store.keys() if key != self.SAMPLER_STATE_KEY}
        if self.SAMPLER_STATE_KEY in store.keys():  # files saved before it was kept restart the sampler
            self.sampler_seed.state.assign(store[self.SAMPLER_STATE_KEY])
        super().load_own_variables(own)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "decoder": keras.saving.serialize_keras_object(self.decoder),
                "gamma_mode": self.gamma_mode,
                "seed": self.seed,
                "kl_weight": self.kl_weight,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)
