"""First stage: the ResNet-style VAE of the authors' code (Keras 3, backend-agnostic).

Encoder: 3x3 conv (base filters) -> per scale a residual block, with a
stride-2 conv doubling channels between scales (3 scales for 28/32 px,
4 for 64 px) -> global average pooling -> residual dense block (512) ->
Dense mu, Dense log-sigma. Decoder: Dense to a small map (2x2; 7x7 for
28 px), then per step a stride-2 transposed conv and a residual block,
halving channels, to a sigmoid output.
"""

import keras
from keras import layers

from models.vae import VAE

DENSE_WIDTH = 512


def residual_block(h, channels, name):
    """BN-ReLU-conv twice, plus a 1x1 conv shortcut."""
    shortcut = layers.Conv2D(channels, 1, padding="same", name=f"{name}_shortcut")(h)
    for i in range(2):
        h = layers.BatchNormalization(name=f"{name}_bn{i}")(h)
        h = layers.ReLU(name=f"{name}_relu{i}")(h)
        h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv{i}")(h)
    return layers.Add(name=f"{name}_add")([h, shortcut])


def dense_residual_block(h, width, name):
    shortcut = layers.Dense(width, name=f"{name}_shortcut")(h)
    for i in range(2):
        h = layers.BatchNormalization(name=f"{name}_bn{i}")(h)
        h = layers.ReLU(name=f"{name}_relu{i}")(h)
        h = layers.Dense(width, name=f"{name}_dense{i}")(h)
    return layers.Add(name=f"{name}_add")([h, shortcut])


def num_scales(size):
    return 4 if size >= 64 else 3


def decoder_start(size):
    """Smallest map the decoder starts from: halve while even and > 2."""
    start = size
    while start % 2 == 0 and start > 2:
        start //= 2
    return start


def build_encoder(image_shape, latent_dim=64, base_filters=32):
    inputs = keras.Input(image_shape, name="image")
    h = layers.Conv2D(base_filters, 3, padding="same", name="enc_in")(inputs)
    channels = base_filters
    scales = num_scales(image_shape[0])
    for s in range(scales):
        h = residual_block(h, channels, f"enc_scale{s}")
        if s < scales - 1:
            channels *= 2
            h = layers.Conv2D(channels, 3, strides=2, padding="same", name=f"enc_down{s}")(h)
    h = layers.GlobalAveragePooling2D(name="enc_pool")(h)
    h = dense_residual_block(h, DENSE_WIDTH, "enc_dense")
    mu = layers.Dense(latent_dim, dtype="float32", name="mu")(h)
    log_sigma = layers.Dense(latent_dim, dtype="float32", name="log_sigma")(h)
    return keras.Model(inputs, [mu, log_sigma], name="encoder")


def build_decoder(image_shape, latent_dim=64, base_filters=32):
    size, _, out_channels = image_shape
    start = decoder_start(size)
    steps = 0
    while start * 2 ** steps < size:
        steps += 1
    if start * 2 ** steps != size or image_shape[0] != image_shape[1]:
        raise ValueError(f"unsupported image shape {image_shape}: need square sides of 2^k * start")
    channels = base_filters * 2 ** max(steps - 1, 0)
    inputs = keras.Input((latent_dim,), name="z")
    h = layers.Dense(start * start * channels, name="dec_in")(inputs)
    h = layers.Reshape((start, start, channels), name="dec_reshape")(h)
    for s in range(steps):
        channels = base_filters * 2 ** (steps - 1 - s)
        h = layers.Conv2DTranspose(channels, 3, strides=2, padding="same", name=f"dec_up{s}")(h)
        h = residual_block(h, channels, f"dec_scale{s}")
    if steps == 0:
        h = residual_block(h, channels, "dec_scale0")
    h = layers.BatchNormalization(name="dec_out_bn")(h)
    h = layers.ReLU(name="dec_out_relu")(h)
    outputs = layers.Conv2D(out_channels, 3, padding="same", activation="sigmoid", dtype="float32",
                            name="x_hat")(h)
    return keras.Model(inputs, outputs, name="decoder")


def build_first_stage(image_shape, latent_dim=64, base_filters=32, gamma_mode="balanced", seed=0):
    image_shape = tuple(int(s) for s in image_shape)
    model = VAE(build_encoder(image_shape, latent_dim, base_filters),
                build_decoder(image_shape, latent_dim, base_filters),
                gamma_mode=gamma_mode, seed=seed, name="first_stage")
    model.build((None,) + image_shape)
    return model
