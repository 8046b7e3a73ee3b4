# Put first on PYTHONPATH, this makes "import tensorflow_datasets" fail as on a machine without it (the GPU machines).
raise ImportError("tensorflow_datasets is hidden for this test: the JAX path must not need it")
