"""Convert the frozen 2015-12-05 Inception graph into Keras weights, once.

    python convert_inception.py --graph inception-2015-12-05.tgz

Needs the TensorFlow backend. Writes OUTPUT (default: the Keras cache,
~/.keras/models/inception_2015_12_05_fid.weights.h5, where compute_fid.py
looks) and, with --check, compares the port's pool_3 features with the
graph's own on random images.
"""

import numpy as np

import common

GRAPH = None     # classify_image_graph_def.pb or inception-2015-12-05.tgz
OUTPUT = None    # default: the Keras cache
CHECK = True     # compare features with the frozen graph on 16 random images
SEED = 0


def main(argv=None):
    args = common.parse_constants(globals(), __doc__, argv)
    if not args.graph:
        raise common.VaevarError("give --graph PATH to classify_image_graph_def.pb or inception-2015-12-05.tgz")
    import os

    import compute_fid
    import inception_graph

    output = args.output or os.path.join(compute_fid.cache_dir(), compute_fid.CONVERTED_NAME)
    compute_fid.convert_graph(args.graph, output)
    if args.check:
        from models.inception import build_inception

        images = np.random.default_rng(args.seed).integers(0, 256, (16, 32, 32, 3)).astype(np.float32)
        model = build_inception((32, 32, 3))
        model.load_weights(output)
        ours = model.predict(images, verbose=0)
        theirs = inception_graph.frozen_graph_features(inception_graph.read_graph_def(args.graph), images)
        error = np.abs(ours - theirs).max()
        print(f"max |port - graph| = {error:.3g} (relative {error / np.abs(theirs).max():.3g})")


if __name__ == "__main__":
    common.run_main(main)
