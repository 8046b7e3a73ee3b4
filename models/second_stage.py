"""Second stage (Dai & Wipf 2019): a dense VAE on the first stage's latents.

Encoder and decoder: 3 Dense+ReLU layers of a constant width, concatenated
with their input (the skip connection), then Dense heads; the decoder's
output is linear. The second latent space has the first's size.
"""

import keras
from keras import layers

from models.vae import VAE


def dense_tower(inputs: keras.KerasTensor, width: int, name: str, depth: int = 3) -> keras.KerasTensor:
    h = inputs
    for i in range(depth):
        h = layers.Dense(width, activation="relu", name=f"{name}_dense{i}")(h)
    return layers.Concatenate(name=f"{name}_skip")([h, inputs])


def build_second_stage(
    latent_dim: int = 64, width: int = 1024, gamma_mode: str = "balanced", seed: int = 0
) -> VAE:
    z = keras.Input((latent_dim,), name="z")
    h = dense_tower(z, width, "enc")
    mu = layers.Dense(latent_dim, dtype="float32", name="mu")(h)
    log_sigma = layers.Dense(latent_dim, dtype="float32", name="log_sigma")(h)
    encoder = keras.Model(z, [mu, log_sigma], name="encoder")

    u = keras.Input((latent_dim,), name="u")
    z_hat = layers.Dense(latent_dim, dtype="float32", name="z_hat")(dense_tower(u, width, "dec"))
    decoder = keras.Model(u, z_hat, name="decoder")

    model = VAE(encoder, decoder, gamma_mode=gamma_mode, seed=seed, name="second_stage")
    model.build((None, latent_dim))
    return model
