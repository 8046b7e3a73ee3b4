"""Keras 3 port of the 2015-12-05 Inception graph used for FID (TTUR, TF-GAN).

The frozen graph classify_image_graph_def.pb is Inception-v3 with a few
quirks this port keeps: TF1's legacy bilinear resize to 299x299
(align_corners=False, no half-pixel centres), scaling (x - 128) / 128,
batch norm without scale (folded into each conv's bias at conversion),
average pools that exclude padding, and a max pool (not an average pool)
in the last block's pool branch. Layer names are the graph's node prefixes
with '/' written as '__' (mixed_3/tower/conv -> mixed_3__tower__conv), so
the converters (fid/graph.py, fid/torchscript.py) map weights by name. Output: pool_3, 2048 features.
Backend-agnostic: keras.ops only.
"""

from collections.abc import Callable, Mapping

import keras
import numpy as np
from keras import layers, ops

from vaevar.fid.resize import resize_matrix

INPUT_SIZE = 299
FEATURES = 2048


def layer_name(graph_prefix: str) -> str:
    """A graph node's prefix as a Keras layer name (Keras refuses '/'): mixed/conv -> mixed__conv."""
    return graph_prefix.replace("/", "__")


def graph_prefix(name: str) -> str:
    """layer_name's inverse: the graph prefix whose weights a layer holds."""
    return name.replace("__", "/")


# How [0, 255] pixel values become the network's input: (x - center) / center.
# authors: TF-GAN's run_inception fed [0, 1] floats as x * 2 - 1 (white -> 1);
# ttur: the graph's own Sub 128 / Mul 1/128 on [0, 255] (white -> 0.9921875).
INPUT_CENTERS = {"authors": 127.5, "ttur": 128.0}


class LegacyResize(layers.Layer):
    """[0, 255] images (any size, 1 or 3 channels) -> 299x299x3 scaled to about [-1, 1],
    resized as TF1's resize_bilinear(align_corners=False) does."""

    def __init__(self, in_height, in_width, center=INPUT_CENTERS["ttur"], **kwargs):
        super().__init__(**kwargs)
        self.in_height, self.in_width, self.center = in_height, in_width, float(center)
        self.rows = resize_matrix(in_height, INPUT_SIZE, half_pixel=False).astype(np.float32)
        self.cols = resize_matrix(in_width, INPUT_SIZE, half_pixel=False).astype(np.float32)

    def call(self, images):
        images = ops.cast(images, "float32")
        if images.shape[-1] == 1:
            images = ops.repeat(images, 3, axis=-1)
        resized = ops.einsum("oh,nhwc->nowc", ops.convert_to_tensor(self.rows), images)
        resized = ops.einsum("pw,nowc->nopc", ops.convert_to_tensor(self.cols), resized)
        return (resized - self.center) * (1.0 / self.center)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], INPUT_SIZE, INPUT_SIZE, 3)

    def get_config(self):
        return dict(
            super().get_config(), in_height=self.in_height, in_width=self.in_width, center=self.center
        )


def conv(
    h: keras.KerasTensor,
    prefix: str,
    filters: int,
    kernel: int | tuple[int, int],
    strides: int = 1,
    padding: str = "same",
) -> keras.KerasTensor:
    """Conv2D + (folded) batch norm + ReLU, named after the graph's prefix."""
    return layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, activation="relu", name=layer_name(prefix)
    )(h)


def avg_pool(h: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """The graph's 3x3 stride-1 SAME average pooling, named after its node."""
    # TF's SAME average pooling divides by the count of real (unpadded) pixels.
    return layers.AveragePooling2D(3, strides=1, padding="same", name=layer_name(name))(h)


def block_a(h: keras.KerasTensor, name: str, pool_filters: int) -> keras.KerasTensor:
    """mixed, mixed_1, mixed_2 (35x35): 1x1, 5x5, double 3x3 and pooled towers, concatenated."""
    branch1 = conv(h, f"{name}/conv", 64, 1)
    branch5 = conv(conv(h, f"{name}/tower/conv", 48, 1), f"{name}/tower/conv_1", 64, 5)
    branch3 = conv(h, f"{name}/tower_1/conv", 64, 1)
    branch3 = conv(branch3, f"{name}/tower_1/conv_1", 96, 3)
    branch3 = conv(branch3, f"{name}/tower_1/conv_2", 96, 3)
    pool = conv(avg_pool(h, f"{name}/tower_2/pool"), f"{name}/tower_2/conv", pool_filters, 1)
    return layers.Concatenate(name=layer_name(f"{name}/join"))([branch1, branch5, branch3, pool])


def block_b(h: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """mixed_3: the grid reduction 35x35 -> 17x17 (strided 3x3, strided double 3x3, max pooling)."""
    branch3 = conv(h, f"{name}/conv", 384, 3, strides=2, padding="valid")
    tower = conv(h, f"{name}/tower/conv", 64, 1)
    tower = conv(tower, f"{name}/tower/conv_1", 96, 3)
    tower = conv(tower, f"{name}/tower/conv_2", 96, 3, strides=2, padding="valid")
    pool = layers.MaxPooling2D(3, strides=2, name=layer_name(f"{name}/pool"))(h)
    return layers.Concatenate(name=layer_name(f"{name}/join"))([branch3, tower, pool])


def block_c(h: keras.KerasTensor, name: str, c7: int) -> keras.KerasTensor:
    """mixed_4 to mixed_7 (17x17): factorised 7x7 towers of c7 channels, a 1x1 and a pooled tower."""
    branch1 = conv(h, f"{name}/conv", 192, 1)
    tower = conv(h, f"{name}/tower/conv", c7, 1)
    tower = conv(tower, f"{name}/tower/conv_1", c7, (1, 7))
    tower = conv(tower, f"{name}/tower/conv_2", 192, (7, 1))
    tower1 = conv(h, f"{name}/tower_1/conv", c7, 1)
    tower1 = conv(tower1, f"{name}/tower_1/conv_1", c7, (7, 1))
    tower1 = conv(tower1, f"{name}/tower_1/conv_2", c7, (1, 7))
    tower1 = conv(tower1, f"{name}/tower_1/conv_3", c7, (7, 1))
    tower1 = conv(tower1, f"{name}/tower_1/conv_4", 192, (1, 7))
    pool = conv(avg_pool(h, f"{name}/tower_2/pool"), f"{name}/tower_2/conv", 192, 1)
    return layers.Concatenate(name=layer_name(f"{name}/join"))([branch1, tower, tower1, pool])


def block_d(h: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """mixed_8: the grid reduction 17x17 -> 8x8."""
    tower = conv(h, f"{name}/tower/conv", 192, 1)
    tower = conv(tower, f"{name}/tower/conv_1", 320, 3, strides=2, padding="valid")
    tower1 = conv(h, f"{name}/tower_1/conv", 192, 1)
    tower1 = conv(tower1, f"{name}/tower_1/conv_1", 192, (1, 7))
    tower1 = conv(tower1, f"{name}/tower_1/conv_2", 192, (7, 1))
    tower1 = conv(tower1, f"{name}/tower_1/conv_3", 192, 3, strides=2, padding="valid")
    pool = layers.MaxPooling2D(3, strides=2, name=layer_name(f"{name}/pool"))(h)
    return layers.Concatenate(name=layer_name(f"{name}/join"))([tower, tower1, pool])


def block_e(h: keras.KerasTensor, name: str, max_pool: bool) -> keras.KerasTensor:
    """mixed_9 and mixed_10 (8x8): split 1x3 / 3x1 towers; mixed_10's pooled tower max-pools (the 2015
    graph's quirk, max_pool=True), mixed_9's averages."""
    branch1 = conv(h, f"{name}/conv", 320, 1)
    tower = conv(h, f"{name}/tower/conv", 384, 1)
    tower = layers.Concatenate(name=layer_name(f"{name}/tower/mixed"))(
        [
            conv(tower, f"{name}/tower/mixed/conv", 384, (1, 3)),
            conv(tower, f"{name}/tower/mixed/conv_1", 384, (3, 1)),
        ]
    )
    tower1 = conv(h, f"{name}/tower_1/conv", 448, 1)
    tower1 = conv(tower1, f"{name}/tower_1/conv_1", 384, 3)
    tower1 = layers.Concatenate(name=layer_name(f"{name}/tower_1/mixed"))(
        [
            conv(tower1, f"{name}/tower_1/mixed/conv", 384, (1, 3)),
            conv(tower1, f"{name}/tower_1/mixed/conv_1", 384, (3, 1)),
        ]
    )
    if max_pool:  # the 2015 graph's last block (pytorch-fid's FIDInceptionE_2)
        pooled = layers.MaxPooling2D(3, strides=1, padding="same", name=layer_name(f"{name}/tower_2/pool"))(h)
    else:
        pooled = avg_pool(h, f"{name}/tower_2/pool")
    pool = conv(pooled, f"{name}/tower_2/conv", 192, 1)
    return layers.Concatenate(name=layer_name(f"{name}/join"))([branch1, tower, tower1, pool])


def build_inception(
    image_shape: tuple[int, int, int] = (INPUT_SIZE, INPUT_SIZE, 3), input_convention: str = "ttur"
) -> keras.Model:
    """pool_3 feature extractor: [0, 255] images of `image_shape` -> (N, 2048).
    input_convention: 'ttur' (the graph's (x - 128) / 128) or 'authors' (x / 255 * 2 - 1)."""
    inputs = keras.Input(image_shape, name="images")
    h = LegacyResize(image_shape[0], image_shape[1], INPUT_CENTERS[input_convention], name="resize")(inputs)
    h = conv(h, "conv", 32, 3, strides=2, padding="valid")
    h = conv(h, "conv_1", 32, 3, padding="valid")
    h = conv(h, "conv_2", 64, 3)
    h = layers.MaxPooling2D(3, strides=2, name="pool")(h)
    h = conv(h, "conv_3", 80, 1, padding="valid")
    h = conv(h, "conv_4", 192, 3, padding="valid")
    h = layers.MaxPooling2D(3, strides=2, name="pool_1")(h)
    h = block_a(h, "mixed", 32)
    h = block_a(h, "mixed_1", 64)
    h = block_a(h, "mixed_2", 64)
    h = block_b(h, "mixed_3")
    for name, c7 in (("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)):
        h = block_c(h, name, c7)
    h = block_d(h, "mixed_8")
    h = block_e(h, "mixed_9", max_pool=False)
    h = block_e(h, "mixed_10", max_pool=True)
    h = layers.AveragePooling2D(8, name="pool_3")(h)
    features = layers.Flatten(name="pool_3_flat")(h)
    return keras.Model(inputs, features, name="inception_2015_12_05")


def conv_layers(model: keras.Model) -> list[layers.Conv2D]:
    """The port's convolutions, in build order: what the converters fill."""
    return [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]


def pool_kinds(model: keras.Model) -> dict[str, str]:
    """graph prefix -> 'MaxPool' / 'AvgPool' for every pooling layer of the port."""
    kinds = {}
    for layer in model.layers:
        if isinstance(layer, layers.MaxPooling2D):
            kinds[graph_prefix(layer.name)] = "MaxPool"
        elif isinstance(layer, layers.AveragePooling2D):
            kinds[graph_prefix(layer.name)] = "AvgPool"
    return kinds


def load_folded_convs(
    model: keras.Model, convs: Mapping[str, tuple], source: str, geometry_matches: Callable[..., bool]
) -> list[str]:
    """Load folded convolutions {graph prefix: (kernel HWIO, bias, *geometry)} into the port's layers.

    geometry_matches(layer, kernel, *geometry) checks strides and padding in the
    source's own terms. Returns the problems found (missing, extra or mismatched
    convolutions); layers load only when theirs match.
    """
    convs = dict(convs)
    problems = []
    for layer in conv_layers(model):
        prefix = graph_prefix(layer.name)
        if prefix not in convs:
            problems.append(f"no convolution '{prefix}' in the {source}")
            continue
        kernel, bias, *geometry = convs.pop(prefix)
        if kernel.shape != tuple(layer.kernel.shape):
            problems.append(f"{prefix}: kernel {kernel.shape} vs port {tuple(layer.kernel.shape)}")
        elif not geometry_matches(layer, kernel, *geometry):
            problems.append(f"{prefix}: strides/padding {geometry} vs port {layer.strides}/{layer.padding}")
        else:
            layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return problems + [f"{source} convolution '{p}' has no layer in the port" for p in convs]
