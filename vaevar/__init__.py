"""vaevar: the library under the scripts (train_first_stage.py, train_second_stage.py, generate.py,
compute_fid.py, reproduce.py, variance_analysis.py). Importing it does nothing; import its modules:

    backend.py            the Keras backend (choose: a script's first call), the device, seeding
    cli.py                a script's constants as its flags, and typed settings from them
    errors.py             how a command ends: one-line errors, the time budget and its clock
    files.py              atomic writes, JSON and .npz, digests
    runtime.py            how a training runs: RuntimeSettings, a script's RUNTIME constant
    layout.py             the run folder: RunPaths, StagePaths
    data/                 the data sets as uint8 arrays: registry, readers, folders, the JPEG round trip
    image_files.py        image files as users have them
    grids.py              image grids as PNG files
    training.py           how a stage trains: feeders, model.fit, the optimizer, train_stage
    cpu_time.py           the CPU guard: a run of days without a GPU stops before it starts
    fast_training.py      the JAX fast trainer
    run_folder.py         what both trainers keep: checkpoints, the log, resume, the stops
    kept_models.py        the copies of a stage kept after chosen epochs (--keep-models-at)
    run.py                a trained run from Python: Run.load(run_dir).sample(...)
    renormalization.py    the renormalization rule, its targets and its gate
    samplers.py           the ex-post latent samplers
    variance_measures.py  the variance-loss measures
    scale_search.py       the latent-scale sweep's grid: --scales auto's bracket and refinement, the noise
    fid/                  the FID: network, weights, features, Frechet distance, diversity, tables

The networks and losses are the top-level models/ package.
"""
