# Put first on PYTHONPATH, this makes "import tensorflow" fail as on a machine without it (the GPU machines).
raise ImportError("tensorflow is hidden for this test: the JAX path must not need it")
