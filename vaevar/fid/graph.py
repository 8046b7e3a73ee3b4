"""The frozen 2015-12-05 Inception graph (TensorFlow only, kept at the edge).

- read_graph_def: classify_image_graph_def.pb from the .pb or the original .tgz
- convert: copy its weights into the Keras port (fid/network.py), folding
  batch norm into the conv biases in float64, after checking every conv's
  kernel shape, strides and padding and every pool's kind against the port
- frozen_graph_features: pool_3 features computed by the graph itself
- random_graph_def: a graph in the same format (node names, ops, attributes)
  with random weights, built from the port's layer list, so conversion and
  the port can be tested where the real file is absent.
"""

from __future__ import annotations

import tarfile
from typing import TYPE_CHECKING

import numpy as np

from vaevar.errors import VaevarError
from vaevar.fid.network import build_inception, graph_prefix, layer_name, load_folded_convs, pool_kinds

if TYPE_CHECKING:
    from collections.abc import Callable

    import keras
    from tensorflow.core.framework.graph_pb2 import GraphDef

GRAPH_MEMBER = "classify_image_graph_def.pb"
INPUT_TENSOR = "ExpandDims:0"
OUTPUT_TENSOR = "pool_3:0"
BN_OPS = ("BatchNormWithGlobalNormalization", "FusedBatchNorm", "FusedBatchNormV3")


def _tf():
    try:
        import tensorflow as tf
    except ImportError as error:
        raise VaevarError(
            "reading the frozen Inception graph needs TensorFlow: convert it once on a "
            "machine with TensorFlow (tools/convert_inception.py) and copy the .weights.h5"
        ) from error
    return tf


def read_graph_def(path: str) -> GraphDef:
    """The frozen graph from classify_image_graph_def.pb or inception-2015-12-05.tgz (needs TensorFlow);
    a one-line error for anything else."""
    tf = _tf()
    try:
        if path.endswith((".tgz", ".tar.gz")):
            with tarfile.open(path, "r:gz") as archive:
                member = next(m for m in archive.getmembers() if m.name.endswith(GRAPH_MEMBER))
                raw = archive.extractfile(member).read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(raw)
    except (OSError, tarfile.TarError, StopIteration, Exception) as error:
        raise VaevarError(
            f"{path} is not a readable Inception graph ({type(error).__name__}); download "
            f"inception-2015-12-05.tgz again"
        ) from error
    return graph_def


def _const_value(nodes, name):
    tf = _tf()
    node = nodes[name.split(":")[0].lstrip("^")]
    while node.op == "Identity":
        node = nodes[node.input[0].split(":")[0]]
    if node.op != "Const":
        raise VaevarError(f"graph node {node.name} is {node.op}, expected a constant")
    return tf.make_ndarray(node.attr["value"].tensor).astype(np.float64)


def _source(nodes, name):
    node = nodes[name.split(":")[0]]
    while node.op == "Identity":
        node = nodes[node.input[0].split(":")[0]]
    return node.name


def folded_conv_weights(graph_def: GraphDef) -> dict[str, tuple[np.ndarray, np.ndarray, list[int], str]]:
    """graph conv prefix -> (kernel HWIO, bias, strides, padding), BN folded in float64."""
    nodes = {n.name: n for n in graph_def.node}
    convs = {n.name: n for n in graph_def.node if n.op == "Conv2D"}
    result = {}
    for bn in (n for n in graph_def.node if n.op in BN_OPS):
        conv_name = _source(nodes, bn.input[0])
        if conv_name not in convs:
            continue
        conv = convs[conv_name]
        kernel = _const_value(nodes, conv.input[1])
        if bn.op == "BatchNormWithGlobalNormalization":
            mean, var, beta, gamma = (_const_value(nodes, i) for i in bn.input[1:5])
            eps = bn.attr["variance_epsilon"].f
            scale = gamma if bn.attr["scale_after_normalization"].b else np.ones_like(mean)
        else:
            gamma, beta, mean, var = (_const_value(nodes, i) for i in bn.input[1:5])
            eps, scale = bn.attr["epsilon"].f, gamma
        factor = scale / np.sqrt(var + eps)
        prefix = conv_name[: -len("/Conv2D")] if conv_name.endswith("/Conv2D") else conv_name
        result[prefix] = (
            kernel * factor,
            beta - mean * factor,
            list(conv.attr["strides"].list.i)[1:3],
            conv.attr["padding"].s.decode().lower(),
        )
    return result


def graph_pool_kinds(graph_def: GraphDef) -> dict[str, str]:
    """node name -> 'MaxPool' / 'AvgPool' for every pooling node: checked against the port's pool_kinds."""
    return {n.name: n.op for n in graph_def.node if n.op in ("MaxPool", "AvgPool")}


def convert(graph_def: GraphDef, model: keras.Model | None = None) -> keras.Model:
    """Load the graph's weights into a Keras port; returns the model.

    Refuses a graph whose convolutions or pools do not match the port.
    """
    model = model or build_inception()
    problems = load_folded_convs(
        model,
        folded_conv_weights(graph_def),
        "graph",
        lambda layer, kernel, strides, padding: list(layer.strides) == strides and layer.padding == padding,
    )
    graph_pools = graph_pool_kinds(graph_def)
    for prefix, kind in pool_kinds(model).items():
        if prefix in graph_pools and graph_pools[prefix] != kind:
            problems.append(f"{prefix}: graph has {graph_pools[prefix]}, port has {kind}")
    if problems:
        raise VaevarError("the Inception graph does not match the port: " + "; ".join(problems[:5]))
    return model


def frozen_graph_extractor(graph_def: GraphDef, batch_size: int = 100) -> Callable[[np.ndarray], np.ndarray]:
    """A function: [0, 255] NHWC images -> pool_3 features (N, 2048), run by the graph itself."""
    tf = _tf()
    graph = tf.Graph()
    with graph.as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        (pool3,) = tf.compat.v1.import_graph_def(
            graph_def, input_map={INPUT_TENSOR: placeholder}, return_elements=[OUTPUT_TENSOR], name=""
        )
    session = tf.compat.v1.Session(graph=graph)

    def extract(images):
        images = np.asarray(images, np.float32)
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        out = [
            session.run(pool3, {placeholder: images[i : i + batch_size]})
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(out).reshape(len(images), -1)

    return extract


def frozen_graph_features(graph_def: GraphDef, images: np.ndarray, batch_size: int = 100) -> np.ndarray:
    """pool_3 features (N, 2048) of [0, 255] images run through the graph itself: the port's reference."""
    return frozen_graph_extractor(graph_def, batch_size)(images)


# --------------------------------------------------- a graph in the same format


def random_graph_def(seed: int = 0) -> GraphDef:
    """A GraphDef laid out like classify_image_graph_def.pb, with random weights.

    Nodes: ExpandDims (input) -> ResizeBilinear (legacy) -> Sub 128 -> Mul 1/128
    -> per conv '<prefix>/Conv2D', '<prefix>/batchnorm' (BatchNormWithGlobal-
    Normalization, eps 0.001, no scale) and a Relu; MaxPool/AvgPool and
    ConcatV2 nodes named as in the graph; pool_3 an 8x8 AvgPool.
    """
    tf = _tf()
    from keras import layers

    rng = np.random.default_rng(seed)
    model = build_inception()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.versions.producer = 8  # BatchNormWithGlobalNormalization predates GraphDef version 9

    def node(name, op, inputs=(), **attrs):
        n = graph_def.node.add(name=name, op=op)
        n.input.extend(inputs)
        for key, value in attrs.items():
            n.attr[key].CopyFrom(value)
        return name

    f32 = tf.compat.v1.AttrValue(type=tf.float32.as_datatype_enum)

    def const(name, array, dtype=np.float32):
        value = tf.compat.v1.AttrValue(tensor=tf.make_tensor_proto(np.asarray(array, dtype)))
        dtype_attr = tf.compat.v1.AttrValue(type=tf.as_dtype(dtype).as_datatype_enum)
        return node(name, "Const", value=value, dtype=dtype_attr)

    def ints(values):
        return tf.compat.v1.AttrValue(list=tf.compat.v1.AttrValue.ListValue(i=values))

    def text(value):
        return tf.compat.v1.AttrValue(s=value.encode())

    node("ExpandDims", "Placeholder", dtype=f32)
    resized = node(
        "ResizeBilinear",
        "ResizeBilinear",
        ["ExpandDims", const("ResizeBilinear/size", [299, 299], np.int32)],
        T=f32,
        align_corners=tf.compat.v1.AttrValue(b=False),
        half_pixel_centers=tf.compat.v1.AttrValue(b=False),
    )
    scaled = node(
        "Mul",
        "Mul",
        [node("Sub", "Sub", [resized, const("Sub/y", 128.0)], T=f32), const("Mul/y", 1.0 / 128.0)],
        T=f32,
    )
    outputs = {"resize": scaled}
    for layer in model.layers[2:]:
        sources = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        inbound = [outputs[t._keras_history[0].name] for t in sources]
        prefix = graph_prefix(layer.name)
        if isinstance(layer, layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            kernel = rng.normal(0.0, np.sqrt(2.0 / (kh * kw * cin)), (kh, kw, cin, cout))
            conv = node(
                f"{prefix}/Conv2D",
                "Conv2D",
                [inbound[0], const(f"{prefix}/conv2d_params", kernel)],
                T=f32,
                strides=ints([1, *layer.strides, 1]),
                padding=text(layer.padding.upper()),
                data_format=text("NHWC"),
                use_cudnn_on_gpu=tf.compat.v1.AttrValue(b=True),
            )
            stats = [
                const(f"{prefix}/batchnorm/moving_mean", rng.normal(0, 0.2, cout)),
                const(f"{prefix}/batchnorm/moving_variance", rng.uniform(0.5, 2.0, cout)),
                const(f"{prefix}/batchnorm/beta", rng.normal(0, 0.2, cout)),
                const(f"{prefix}/batchnorm/gamma", rng.uniform(0.5, 2.0, cout)),
            ]
            bn = node(
                f"{prefix}/batchnorm",
                "BatchNormWithGlobalNormalization",
                [conv] + stats,
                T=f32,
                variance_epsilon=tf.compat.v1.AttrValue(f=0.001),
                scale_after_normalization=tf.compat.v1.AttrValue(b=False),
            )
            outputs[layer.name] = node(prefix, "Relu", [bn], T=f32)
        elif isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D)):
            op = "MaxPool" if isinstance(layer, layers.MaxPooling2D) else "AvgPool"
            outputs[layer.name] = node(
                prefix,
                op,
                inbound,
                T=f32,
                ksize=ints([1, *layer.pool_size, 1]),
                strides=ints([1, *layer.strides, 1]),
                padding=text(layer.padding.upper()),
                data_format=text("NHWC"),
            )
        elif isinstance(layer, layers.Concatenate):
            outputs[layer.name] = node(
                prefix,
                "ConcatV2",
                inbound + [const(f"{prefix}/axis", 3, np.int32)],
                T=f32,
                N=tf.compat.v1.AttrValue(i=len(inbound)),
                Tidx=tf.compat.v1.AttrValue(type=tf.int32.as_datatype_enum),
            )
        elif isinstance(layer, layers.Flatten):
            continue
        else:
            raise TypeError(f"unexpected layer {layer.name}")
    assert layer_name("pool_3") in outputs
    return graph_def
