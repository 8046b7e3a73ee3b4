"""vaevar/training.py: how a stage trains (jit, steps per execution, mixed precision, batch-norm recalibration, the trainer's choice)."""

import csv

import numpy as np
import pytest

import train_first_stage
from tests.conftest import tiny_mnist
from vaevar import files, layout, run_folder
from vaevar.errors import VaevarError


def test_jit_compile_flag_reaches_the_saved_model(stage1_only):
    stage = layout.RunPaths(stage1_only).stage1
    model = run_folder.load_model(stage.model, "model", "")
    assert model.jit_compile is True
    assert files.load_json(stage.config)["jit_compile"] == "on"  # the flag as given


def test_recalibrate_bn_rewrites_only_the_final_models_statistics(stage1_only, tmp_path, mnist_npz):
    """A finished stage 1 rerun with --recalibrate-bn: new batch-norm statistics, same trained weights."""
    import shutil

    stage = layout.RunPaths(str(tmp_path)).stage1
    shutil.copytree(layout.RunPaths(stage1_only).stage1.dir, stage.dir)
    train_first_stage.main(
        tiny_mnist(mnist_npz, tmp_path) + ["--jit-compile", "on", "--recalibrate-bn", "100"]
    )
    trained = run_folder.load_model(stage.checkpoint, "model", "")
    final = run_folder.load_model(stage.model, "model", "")
    for before, after in zip(trained.trainable_weights, final.trainable_weights):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))
    moving = [
        (np.asarray(a), np.asarray(b))
        for a, b in zip(trained.non_trainable_weights, final.non_trainable_weights)
        if "moving_mean" in a.path
    ]
    assert moving and all(not np.allclose(a, b) for a, b in moving)
    assert files.load_json(stage.config)["recalibrate_bn"] == 100
    with pytest.raises(VaevarError, match="--recalibrate-bn must be >= 0"):
        train_first_stage.main(["--dataset", "mnist", "--recalibrate-bn", "-5"])


def test_mixed_precision_training_restores_the_global_policy(tmp_path, mnist_npz):
    import keras

    run_dir = str(tmp_path / "mixed")
    train_first_stage.main(tiny_mnist(mnist_npz, run_dir) + ["--mixed-precision"])
    assert keras.mixed_precision.global_policy().name == "float32"  # generation / FID after it stay float32
    stage = layout.RunPaths(run_dir).stage1
    model = run_folder.load_model(stage.model, "model", "")
    assert model.encoder.get_layer("enc_in").compute_dtype == "float16"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    with open(stage.log) as f:
        row = next(csv.DictReader(f))
    assert np.isfinite(float(row["loss"])) and float(row["mse"]) < 1


def test_steps_per_execution_trains_the_same_model(tmp_path, mnist_npz):
    from vaevar.run_folder import read_log

    # 5 batches per epoch: with 3 steps per execution the last call runs only 2.
    runs = {}
    for steps in (1, 3):
        run_dir = str(tmp_path / f"spe{steps}")
        train_first_stage.main(
            tiny_mnist(mnist_npz, run_dir, epochs=2, batch_size=20) + ["--steps-per-execution", str(steps)]
        )
        stage = layout.RunPaths(run_dir).stage1
        runs[steps] = (run_folder.load_model(stage.model, "model", ""), read_log(stage.log))
    assert runs[3][0].steps_per_execution == 3
    # the loop of 3 runs the same step kernels in the same order: the runs agree bit for bit (checked under the
    # three instruction-set settings of tools/portability.py)
    for one, three in zip(runs[1][1], runs[3][1]):
        for column in ("loss", "mse", "gamma", "kl"):
            assert three[column] == one[column], column
    for one, three in zip(runs[1][0].get_weights(), runs[3][0].get_weights()):
        np.testing.assert_array_equal(three, one)


def test_auto_trainer_is_fast_on_jax_with_a_gpu(monkeypatch):
    import keras

    from vaevar import fast_training

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(fast_training, "_on_gpu", lambda: True)
    assert fast_training.choose("auto").func is fast_training.fit_fast
    monkeypatch.setattr(fast_training, "_on_gpu", lambda: False)
    assert fast_training.choose("auto") is None


def test_the_optimizer_built_before_fit_traces_the_step_once_and_trains_the_same(tmp_path, monkeypatch):
    """training.fit makes Adam's slots before Keras' fit: on TensorFlow the train step is traced once instead
    of twice (a tf.function that creates variables is traced again), and the weights after two epochs with
    a halving equal those of the deferred build, bit for bit (the slots are zeros either way)."""
    import keras

    from models.second_stage import build_second_stage
    from vaevar import training

    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=(60, 4)).astype("float32"), np.full((60, 4), 0.5, "float32")

    def trained(run_dir):
        keras.utils.set_random_seed(0)
        model = build_second_stage(latent_dim=4, width=8)
        model.compile(optimizer=training.make_optimizer(1e-3))
        traces, step = [], model.train_step
        model.train_step = lambda *args: (traces.append(1), step(*args))[1]  # Python runs when tracing
        batches = training.LatentBatches(mu, sigma, 20, seed=0)
        training.fit(model, batches, str(run_dir), 2, 0, 1e-3, 1, {}, verbose=0)
        return len(traces), [np.asarray(w) for w in model.weights]

    built_traces, built = trained(tmp_path / "built")
    monkeypatch.setattr(training, "build_optimizer", lambda model: None)  # Keras' own: built in the trace
    deferred_traces, deferred = trained(tmp_path / "deferred")
    if keras.backend.backend() == "tensorflow":
        assert (built_traces, deferred_traces) == (1, 2)
    assert len(built) == len(deferred)
    for a, b in zip(built, deferred):
        np.testing.assert_array_equal(a, b)
