import numpy as np
import pytest
from keras import ops

from models.first_stage import build_first_stage
from models.second_stage import build_second_stage
from models.vae import MSE_FLOOR, VAE, balanced_ema_update, kl_divergence
from vaevar.training import build_optimizer


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (64, 64, 3)])
def test_first_stage_shapes(shape):
    model = build_first_stage(shape, latent_dim=16, base_filters=8)
    x_hat, mu, log_sigma = model(np.random.rand(3, *shape).astype("float32"))
    assert tuple(x_hat.shape) == (3,) + shape
    assert tuple(mu.shape) == (3, 16) and tuple(log_sigma.shape) == (3, 16)
    x_hat = ops.convert_to_numpy(x_hat)
    assert x_hat.min() >= 0 and x_hat.max() <= 1  # sigmoid output


def test_first_stage_scales():
    encoder = build_first_stage((64, 64, 3), 8, 4).encoder
    strided = [l for l in encoder.layers if getattr(l, "strides", (1, 1)) == (2, 2)]
    assert len(strided) == 3  # 4 scales for 64x64
    assert build_first_stage((32, 32, 3), 8, 4).encoder.get_layer("enc_down1").filters == 16


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "shape, encoder, decoder", [((32, 32, 3), 1_135_840, 4_054_627), ((64, 64, 3), None, None)]
)
def test_first_stage_has_the_authors_parameter_count(shape, encoder, decoder):
    """asperti/BalancingVAE: 5,190,467 trainable parameters at 32x32x3, 19,321,667 at 64x64x3."""
    model = build_first_stage(shape)
    expected = {(32, 32, 3): 5_190_467, (64, 64, 3): 19_321_667}[shape]
    assert trainable_count(model) == expected
    if encoder is not None:
        assert (trainable_count(model.encoder), trainable_count(model.decoder)) == (encoder, decoder)


def test_first_stage_blocks_follow_the_authors_code():
    import keras

    model = build_first_stage((32, 32, 3))
    encoder, decoder = model.encoder, model.decoder
    assert encoder.get_layer("enc_scale0_shortcut").kernel_size == (3, 3)
    bn = encoder.get_layer("enc_scale0_bn0")
    assert (bn.momentum, bn.epsilon, bn.scale, bn.center) == (0.999, 1e-5, True, True)
    assert not any(
        isinstance(l, keras.layers.BatchNormalization) and l.name.startswith("enc_dense")
        for l in encoder.layers
    )
    assert decoder.get_layer("dec_reshape").output.shape[1:] == (2, 2, 512)
    assert [decoder.get_layer(f"dec_up{i}").filters for i in range(4)] == [256, 128, 64, 32]
    # the output conv reads the last residual sum directly: no BN-ReLU before the sigmoid
    assert isinstance(decoder.get_layer("x_hat").input._keras_history[0], keras.layers.Add)
    assert build_first_stage((64, 64, 3)).decoder.get_layer("dec_reshape").output.shape[1:] == (2, 2, 1024)


@pytest.mark.parametrize("side, expected", [(32, 1.0), (64, 4.0), (28, 0.765625)])
def test_kl_weight_is_the_authors(side, expected):
    from models.first_stage import kl_weight_for

    assert kl_weight_for(side, 64) == pytest.approx(expected)
    channels = 1 if side == 28 else 3
    assert build_first_stage((side, side, channels), 64, 4).kl_weight == pytest.approx(expected)
    assert build_second_stage(64, 8).kl_weight == 1.0


def test_weighted_loss_matches_hand_computation():
    """loss = k * KL + sum((x - x_hat)^2) / (2 gamma^2) + D log gamma, by hand, with k = 4 (CelebA's)."""
    import keras

    model = build_first_stage((28, 28, 1), latent_dim=8, base_filters=4, kl_weight=4.0)
    model.mse_ema.assign(0.04)
    rng = np.random.default_rng(3)
    x, x_hat = rng.random((5, 28, 28, 1)), rng.random((5, 28, 28, 1))
    mu, log_sigma = rng.normal(size=(5, 8)), rng.normal(size=(5, 8)) * 0.2
    loss = model.compute_loss(
        x=x.astype("float32"),
        y_pred=tuple(a.astype("float32") for a in (x_hat, mu, log_sigma)),
        training=False,
    )
    dims = 28 * 28
    squared = ((x - x_hat) ** 2).reshape(5, -1).sum(1)
    rec = squared / (2 * 0.04) + dims * np.log(0.2)
    kl = 0.5 * (mu**2 + np.exp(2 * log_sigma) - 2 * log_sigma - 1).sum(1)
    # float32: the inputs' rounding (<= 6u per term, |x - x_hat| <= 1) and the squares' 784-term sum (<= 785 u sum),
    # then / 2 gamma^2; the log term (dims |log gamma| = 1262), KL and the mean: ~10 roundings of values no larger
    u = 2.0**-24
    bound = u * (
        ((dims + 1) * squared.max() + 6 * dims) / (2 * 0.04)
        + 10 * (squared.max() / (2 * 0.04) + dims * abs(np.log(0.2)) + 4.0 * kl.max())
    )
    np.testing.assert_allclose(float(loss), np.mean(rec + 4.0 * kl), rtol=0, atol=bound)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert restored.kl_weight == 4.0


def test_second_stage_shapes_and_skip():
    model = build_second_stage(latent_dim=12, width=32)
    z_hat, mu, _ = model(np.random.randn(5, 12).astype("float32"))
    assert tuple(z_hat.shape) == (5, 12) and tuple(mu.shape) == (5, 12)
    assert model.decoder.get_layer("dec_skip").output.shape[-1] == 32 + 12
    assert model.decoder.get_layer("z_hat").activation.__name__ == "linear"


def hand_loss(x, x_hat, mu, log_sigma, gamma2):
    dims = x[0].size
    rec = ((x - x_hat) ** 2).reshape(len(x), -1).sum(1) / (2 * gamma2) + dims * np.log(np.sqrt(gamma2))
    kl = 0.5 * (mu**2 + np.exp(2 * log_sigma) - 2 * log_sigma - 1).sum(1)
    return np.mean(rec + kl)


def test_balanced_loss_matches_hand_computation():
    model = build_second_stage(latent_dim=4, width=8)
    model.mse_ema.assign(0.25)
    rng = np.random.default_rng(0)
    x, x_hat = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    mu, log_sigma = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)) * 0.3
    loss = model.compute_loss(
        x=x.astype("float32"),
        y_pred=tuple(a.astype("float32") for a in (x_hat, mu, log_sigma)),
        training=False,
    )
    # float64 by hand against float32: the inputs' rounding (u each) and ~10 float32 operations per term, the
    # log(gamma) and KL terms partly cancelling (the loss ~20, its largest term ~50): ~100 u, under 1e-5 = 170 u
    np.testing.assert_allclose(float(loss), hand_loss(x, x_hat, mu, log_sigma, 0.25), rtol=1e-5)
    assert float(model.mse_ema) == 0.25  # evaluation never moves gamma


def test_gamma_update_rule_and_training_step():
    model = build_second_stage(latent_dim=4, width=8)
    model.mse_ema.assign(0.5)
    x = np.zeros((3, 4), "float32")
    x_hat = np.full((3, 4), 0.1, "float32")  # batch mse 0.01 < 0.5: gamma shrinks by the EMA
    model.compute_loss(
        x=x, y_pred=(x_hat, np.zeros((3, 4), "float32"), np.zeros((3, 4), "float32")), training=True
    )
    # a float32 mean of 12 equal squares and one EMA step: a few roundings (u = 6e-8 each)
    np.testing.assert_allclose(float(model.mse_ema), 0.99 * 0.5 + 0.01 * 0.01, rtol=1e-6)
    x_hat = np.full((3, 4), 3.0, "float32")  # batch mse 9 > ema: gamma must not grow
    before = float(model.mse_ema)
    model.compute_loss(
        x=x, y_pred=(x_hat, np.zeros((3, 4), "float32"), np.zeros((3, 4), "float32")), training=True
    )
    assert float(model.mse_ema) == pytest.approx(before)


def test_gamma_never_increases_and_has_a_floor():
    ema = 1.0
    rng = np.random.default_rng(1)
    for batch_mse in rng.exponential(0.5, 500):
        new = float(balanced_ema_update(ema, batch_mse))
        assert new <= ema + 1e-12
        ema = new
    assert float(balanced_ema_update(1e-9, 0.0)) == pytest.approx(MSE_FLOOR)


def test_kl_closed_form():
    mu = np.array([[1.0, 0.0]], "float32")
    log_sigma = np.array([[0.0, np.log(2.0)]], "float32")
    expected = 0.5 * ((1 + 1 - 0 - 1) + (0 + 4 - 2 * np.log(2) - 1))
    np.testing.assert_allclose(ops.convert_to_numpy(kl_divergence(mu, log_sigma)), [expected], rtol=1e-6)


def test_learned_gamma_is_trainable():
    model = build_second_stage(latent_dim=4, width=8, gamma_mode="learned")
    assert any(v is model.log_gamma for v in model.trainable_variables)
    with pytest.raises(ValueError):
        VAE(model.encoder, model.decoder, gamma_mode="fixed")


def test_fit_moves_gamma_down_and_save_load_roundtrip(tmp_path):
    import keras

    model = build_first_stage((28, 28, 1), latent_dim=8, base_filters=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    build_optimizer(model)  # as training.fit does: the step traced once, not twice
    x = np.random.default_rng(0).random((40, 28, 28, 1)).astype("float32")
    history = model.fit(x, batch_size=20, epochs=1, verbose=0)
    assert set(history.history) >= {"loss", "mse", "gamma", "kl"}
    assert float(model.mse_ema) < 1.0
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert float(loaded.mse_ema) == pytest.approx(float(model.mse_ema))
    # the same weights through the same kernels: bit for bit in practice; 1e-6 of outputs in [0, 1] is rounding
    np.testing.assert_allclose(
        loaded.predict(x[:3], verbose=0)[0], model.predict(x[:3], verbose=0)[0], atol=1e-6
    )
    assert int(loaded.optimizer.iterations) == 2


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_mixed_precision_keeps_the_loss_in_float32(dtype):
    import keras

    keras.mixed_precision.set_global_policy(f"mixed_{dtype}")
    try:
        model = build_first_stage((28, 28, 1), latent_dim=8, base_filters=4)
        x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
        x_hat, mu, log_sigma = model(x, training=True)
        assert model.encoder.get_layer("enc_in").compute_dtype == dtype
        assert x_hat.dtype == "float32"  # the sigmoid output layer is float32
        loss = model.compute_loss(x=x, y_pred=(x_hat, mu, log_sigma), training=True)
        assert loss.dtype == "float32" and model.mse_ema.dtype == "float32"
        assert np.isfinite(float(loss))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_bfloat16_computes_in_bfloat16_and_keeps_weights_adam_and_batch_norm_in_float32():
    """--mixed-dtype bfloat16 (the GPU speed lever): convolutions compute in bfloat16, while every weight, both
    Adam moments and the batch-norm statistics stay float32, with no loss scaling. The first batch norm's moving
    variance after one step is the float32 variance of its bfloat16 input, within float32's rounding; a variance
    computed in bfloat16, measured here on the same input, is well outside that."""
    import keras
    import ml_dtypes

    from models.first_stage import BN_MOMENTUM
    from tests.conftest import U
    from vaevar.training import make_optimizer, precision_policy

    with precision_policy(True, "bfloat16"):
        model = build_first_stage((28, 28, 1), latent_dim=8, base_filters=4)
    model.compile(optimizer=make_optimizer(1e-3))
    build_optimizer(model)  # as training.fit does
    assert type(model.optimizer) is keras.optimizers.Adam  # no LossScaleOptimizer: bfloat16 needs none
    # eighths in [0, 7/8] through a kernel of -1, 0, 1 and no bias: every conv output is a multiple of 1/8
    # under 8, exact in bfloat16 whatever the summation order, so the batch norm's input is known exactly
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 8, (8, 28, 28, 1)) / 8).astype("float32")
    conv = model.encoder.get_layer("enc_in")
    conv.set_weights([rng.integers(-1, 2, conv.kernel.shape).astype("float32"), np.zeros(4, "float32")])
    first_conv = keras.Model(model.encoder.input, conv.output)
    assert (
        keras.backend.standardize_dtype(first_conv(x).dtype) == "bfloat16"
        and conv.compute_dtype == "bfloat16"
    )
    conv_output = np.asarray(keras.ops.convert_to_numpy(first_conv(x)), np.float64).reshape(-1, 4)
    np.testing.assert_array_equal(conv_output * 8, np.round(conv_output * 8))  # exact, as above
    model.train_on_batch(x)
    assert {v.dtype for v in model.weights} == {"float32"}  # trainable, batch norm, gamma's state
    moments = [v for v in model.optimizer.variables if v.path.endswith(("_momentum", "_velocity"))]
    assert len(moments) == 2 * len(model.trainable_variables) and {v.dtype for v in moments} == {"float32"}
    exact = conv_output.var(axis=0)
    got = np.asarray(model.encoder.get_layer("enc_scale0_bn0").moving_variance, np.float64)
    # float32's share: the debiasing divides by 1 - decay rounded in float32 (decay's rounding, amplified by
    # 1 / (1 - decay)), and two float32 means of 6,272 terms (a few roundings a level of a tree, relative to
    # the mean square, which the variance subtracts from)
    bound = U * BN_MOMENTUM / (1 - BN_MOMENTUM) + 64 * U * np.max((conv_output**2).mean(axis=0) / exact)
    assert np.max(np.abs(got - exact) / exact) <= bound
    deviations = (conv_output - conv_output.mean(axis=0)).astype(ml_dtypes.bfloat16).astype(np.float64)
    in_bfloat16 = (deviations**2).astype(ml_dtypes.bfloat16).astype(np.float64).mean(axis=0)
    assert np.max(np.abs(in_bfloat16 - exact) / exact) > bound  # the bound tells the two apart


@pytest.mark.parametrize("jit_compile", [False, True])
def test_compiled_train_steps_follow_the_balanced_loss(jit_compile):
    """Under XLA as without: each step's loss uses the gamma^2 of the previous
    steps, and mse_ema then moves by the EMA rule (checked on logged values)."""
    import keras

    model = build_first_stage((28, 28, 1), latent_dim=8, base_filters=4, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    build_optimizer(model)
    assert model.jit_compile == jit_compile
    x = np.random.default_rng(0).random((20, 28, 28, 1)).astype("float32")
    dims = 28 * 28
    gamma2 = 1.0
    for _ in range(3):
        model.reset_metrics()  # logs of this step alone
        logs = model.train_on_batch(x, return_dict=True)
        expected_loss = (
            dims * logs["mse"] / (2 * gamma2) + dims * 0.5 * np.log(gamma2) + model.kl_weight * logs["kl"]
        )
        # the loss rebuilt from the step's own float32 mse and kl (the same sums as inside): a few roundings of
        # terms that partly cancel (784 log(gamma) against 784 mse / 2 gamma^2): ~100 u, under 1e-4
        assert logs["loss"] == pytest.approx(expected_loss, rel=1e-4)
        assert logs["gamma"] == pytest.approx(np.sqrt(gamma2), rel=1e-5)
        gamma2 = min(gamma2, 0.99 * gamma2 + 0.01 * logs["mse"])
        assert float(model.mse_ema) == pytest.approx(gamma2, rel=1e-5)
    assert gamma2 < 1.0


def test_batch_norm_recalibration_averages_batch_statistics():
    """Moving statistics become the batch statistics' average: on one batch, inference equals training mode."""
    import keras

    from vaevar.training import recalibrate_batch_norm

    model = build_first_stage((28, 28, 1), latent_dim=8, base_filters=4)
    rng = np.random.default_rng(0)
    images = rng.random((16, 28, 28, 1)).astype("float32")
    model(images)
    layers = [
        l
        for part in (model.encoder, model.decoder)
        for l in part.layers
        if isinstance(l, keras.layers.BatchNormalization)
    ]
    for layer in layers:  # stale statistics, as after a short run
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, 5.0, "float32"))
    inference = ops.convert_to_numpy(model.encoder(images, training=False)[0])
    training = ops.convert_to_numpy(model.encoder(images, training=True)[0])
    assert not np.allclose(inference, training, atol=1e-3)

    assert recalibrate_batch_norm(model, [(images,)]) == len(layers) > 0
    inference = ops.convert_to_numpy(model.encoder(images, training=False)[0])
    # the same statistics up to float32 rounding: each a mean over 16 * 28 * 28 = 12,544 values, |error| <=
    # 12,544 u = 7.5e-4 relative at worst; the stale statistics were more than 1e-3 away (asserted above)
    np.testing.assert_allclose(inference, training, rtol=1e-3, atol=1e-4)
    assert all(l.momentum == 0.999 for l in layers)
    assert all(
        np.abs(ops.convert_to_numpy(l.moving_mean) - 5.0).max() > 1e-3 for l in layers
    )  # decoder's too

    # Two batches: the first layer's moving mean is the average of its two batch means.
    first = model.encoder.get_layer("enc_scale0_bn0")
    below = keras.Model(model.encoder.input, first.input)
    halves = [images[:8], images[8:]]
    inputs = [ops.convert_to_numpy(below(h)) for h in halves]
    expected = np.mean([x.astype(np.float64).mean(axis=(0, 1, 2)) for x in inputs], axis=0)
    recalibrate_batch_norm(model, [(h,) for h in halves])
    # float32 means of 8 * 28 * 28 = 6272 values: |error| <= 6272 u mean|x| per channel (the last half's mean
    # alone is over 7x that away)
    bound = 6272 * 2.0**-24 * np.max([np.abs(x).mean(axis=(0, 1, 2)) for x in inputs], axis=0)
    np.testing.assert_array_less(np.abs(ops.convert_to_numpy(first.moving_mean) - expected), bound)


def feed_batches(layer, batches):
    for batch in batches:
        layer(batch, training=True)


def test_debiased_batch_norm_stores_the_debiased_average_of_batch_statistics():
    """After t steps: sum_k (1 - b) b^(t-k) m_k / (1 - b^t), as TF1's assign_moving_average(zero_debias=True)."""
    from models.batch_norm import DebiasedBatchNormalization

    rng = np.random.default_rng(3)
    batches = [rng.normal(k, 1.0 + k, (16, 4, 4, 3)).astype("float32") for k in range(3)]
    layer = DebiasedBatchNormalization(momentum=0.9, epsilon=1e-5)
    layer.build((None, 4, 4, 3))
    feed_batches(layer, batches)
    b, t = 0.9, len(batches)
    weights = [(1 - b) * b ** (t - 1 - k) for k in range(t)]
    means = [x.astype(np.float64).mean(axis=(0, 1, 2)) for x in batches]
    variances = [x.astype(np.float64).var(axis=(0, 1, 2)) for x in batches]
    expected_mean = sum(w * m for w, m in zip(weights, means)) / (1 - b**t)
    expected_variance = sum(w * v for w, v in zip(weights, variances)) / (1 - b**t)
    # float32 moments of 256 values per channel: |error| <= 256 u mean|x| (mean), 258 u Var (two-pass variance),
    # averaged with weights summing to 1; the float32 decay constants and debiasing: ~16 roundings relative
    u = 2.0**-24
    mean_bound = 256 * u * max(np.abs(x).mean(axis=(0, 1, 2)).max() for x in batches)
    variance_bound = 258 * u * np.max(variances)
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.moving_mean), expected_mean, rtol=16 * u, atol=mean_bound
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.moving_variance), expected_variance, rtol=16 * u, atol=variance_bound
    )
    # Keras' own layer keeps b^t of its (0, 1) start: visibly different after 3 steps
    import keras

    plain = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    plain.build((None, 4, 4, 3))
    feed_batches(plain, batches)
    assert np.abs(ops.convert_to_numpy(plain.moving_mean) - expected_mean).max() > 0.1
    # inference uses the debiased statistics; the training output (batch moments) is Keras' own
    expected_inference = (batches[0] - expected_mean) / np.sqrt(expected_variance + 1e-5)
    # covers the statistics' bounds carried on: mean_bound / sigma + |out| variance_bound / (2 Var) ~ 2e-5 (1 + |out|)
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(batches[0], training=False)), expected_inference, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(batches[0], training=True)),
        ops.convert_to_numpy(plain(batches[0], training=True)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_legacy_correction_gives_the_debiased_statistics():
    """A model trained with Keras' batch norm, corrected with t = its steps, equals the debiased layer's."""
    import keras

    from models.batch_norm import DebiasedBatchNormalization, debias_legacy_statistics

    rng = np.random.default_rng(4)
    batches = [rng.normal(2.0, 3.0, (8, 6)).astype("float32") for _ in range(5)]
    debiased = DebiasedBatchNormalization(momentum=0.99)
    plain = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Sequential([keras.Input((6,)), plain])
    debiased.build((None, 6))
    feed_batches(debiased, batches)
    feed_batches(plain, batches)
    assert debias_legacy_statistics(model, len(batches)) == 1
    # ~15 float32 roundings of the running statistics, amplified by the correction's 1 / (1 - 0.99^5) = 20:
    # relative error <= 15 * 20 * u = 1.8e-5, under rtol=1e-4
    for ours, theirs in (
        (plain.moving_mean, debiased.moving_mean),
        (plain.moving_variance, debiased.moving_variance),
    ):
        np.testing.assert_allclose(ops.convert_to_numpy(ours), ops.convert_to_numpy(theirs), rtol=1e-4)


def test_first_stage_uses_debiased_batch_norm_and_saves_its_state(tmp_path):
    import keras

    from models.batch_norm import DebiasedBatchNormalization
    from vaevar.run_folder import load_model

    model = build_first_stage((28, 28, 1), latent_dim=8, base_filters=4)
    bns = [
        l
        for l in model.encoder.layers + model.decoder.layers
        if isinstance(l, keras.layers.BatchNormalization)
    ]
    assert bns and all(isinstance(l, DebiasedBatchNormalization) for l in bns)
    model.compile(optimizer="adam")
    build_optimizer(model)
    model.fit(
        np.random.default_rng(0).random((20, 28, 28, 1)).astype("float32"), epochs=1, batch_size=10, verbose=0
    )
    model.save(tmp_path / "m.keras")
    loaded = load_model(str(tmp_path / "m.keras"))
    first = loaded.encoder.get_layer(bns[0].name)
    assert float(ops.convert_to_numpy(first.debias_steps)) == 2.0
    np.testing.assert_array_equal(
        ops.convert_to_numpy(first.biased_mean), ops.convert_to_numpy(bns[0].biased_mean)
    )
