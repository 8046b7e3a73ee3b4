"""Every number the project takes from the authors' code (asperti/BalancingVAE, computed_gamma.py), pinned.

Their code has two versions that matter: 7965c70 (February 2020, nearest the paper) and d9f3997 (May 2020,
which added the renormalization gate and its target). Each row names the version a number comes from, where
the project keeps it, and the words docs/protocol.md says it in. A default that drifts fails here; a deliberate
change updates this table and docs/protocol.md together. MNIST and Fashion-MNIST are the project's own
settings (their code has no schedule for them): `ours`.
"""

import inspect
import os

import pytest

import generate
import train_first_stage
import train_second_stage
from models import first_stage, second_stage, vae
from tests.conftest import ROOT
from vaevar import data, renormalization, training, variance_measures

BOTH = "7965c70, d9f3997"


def schedule(name, stage):
    entry = getattr(data.DATASETS[name], stage)
    return entry.epochs, entry.learning_rate, entry.halve_every


# (what, the value, its source, where the project keeps it: a function returning the value, docs/protocol.md's words)
PROTOCOL = [
    (
        "renormalization gate: variance loss / MSE of the second stage",
        0.25,
        "d9f3997",
        lambda: generate.RENORM_THRESHOLD,
        "> 0.25",
    ),
    (
        "GEN-2 rescaled per batch of",
        100,
        BOTH,
        lambda: renormalization.AUTHORS_BATCH,
        "each batch of 100 generated codes",
    ),
    ("GEN-2 rescale mode", "batch", BOTH, lambda: generate.GEN2_RESCALE, "each batch of 100 generated codes"),
    (
        "KL weight k = (2 side / latent)^2, CIFAR-10 (32 px)",
        1.0,
        BOTH,
        lambda: first_stage.kl_weight_for(32, 64),
        "(2 * side / latent)^2: 1 CIFAR-10, 4 CelebA",
    ),
    (
        "KL weight, CelebA (64 px)",
        4.0,
        BOTH,
        lambda: first_stage.kl_weight_for(64, 64),
        "(2 * side / latent)^2: 1 CIFAR-10, 4 CelebA",
    ),
    (
        "gamma^2: moving average of the batch MSE",
        0.99,
        BOTH,
        lambda: vae.EMA_DECAY,
        "EMA 0.99 of the batch MSE",
    ),
    (
        "gamma^2 never grows: min(g, 0.99 g + 0.01 mse) from g = 1, batch MSE 2",
        1.0,
        BOTH,
        lambda: float(vae.balanced_ema_update(1.0, 2.0)),
        "never growing",
    ),
    (
        "gamma^2 starts at",
        1.0,
        BOTH,
        lambda: float(first_stage.build_first_stage((8, 8, 1), 4, 2).mse_ema.numpy()),
        "from 1",
    ),
    ("Adam epsilon (TF1's AdamOptimizer default)", 1e-8, BOTH, lambda: training.ADAM_EPSILON, "epsilon 1e-8"),
    (
        "Adam epsilon of the optimizer built",
        1e-8,
        BOTH,
        lambda: training.make_optimizer(1e-4).epsilon,
        "epsilon 1e-8",
    ),
    (
        "learning-rate halving factor (epoch 250 of 1e-4, halve every 250)",
        5e-5,
        BOTH,
        lambda: training.learning_rate_at(250, 1e-4, 250),
        "halved every",
    ),
    (
        "CIFAR-10 stage 1: epochs, lr, halve every",
        (700, 1e-4, 250),
        "d9f3997 (7965c70: halve every 200)",
        lambda: schedule("cifar10", "stage1"),
        "700 epochs, lr 1e-4 halved every 250",
    ),
    (
        "CIFAR-10 stage 2: epochs, lr, halve every",
        (1400, 1e-4, 400),
        BOTH + " (7965c70's comment: 1200)",
        lambda: schedule("cifar10", "stage2"),
        "1400, halved every 400",
    ),
    (
        "CelebA stage 1: epochs, lr, halve every",
        (70, 5e-5, 60),
        BOTH,
        lambda: schedule("celeba", "stage1"),
        "70 epochs, lr 5e-5 halved every 60",
    ),
    (
        "CelebA stage 2: epochs, lr, halve every",
        (140, 5e-5, 120),
        BOTH,
        lambda: schedule("celeba", "stage2"),
        "140, halved every 120",
    ),
    (
        "MNIST stage 1 / stage 2",
        ((100, 1e-4, 40), (200, 1e-4, 80)),
        "ours",
        lambda: (schedule("mnist", "stage1"), schedule("mnist", "stage2")),
        "| 100, 1e-4, 40 | 200, 80 |",
    ),
    (
        "Fashion-MNIST stage 1 / stage 2",
        ((100, 1e-4, 40), (200, 1e-4, 80)),
        "ours",
        lambda: (schedule("fashion_mnist", "stage1"), schedule("fashion_mnist", "stage2")),
        "mnist, fashion_mnist",
    ),
    ("batch size, stage 1", 100, BOTH, lambda: train_first_stage.BATCH_SIZE, "batch 100"),
    ("batch size, stage 2", 100, BOTH, lambda: train_second_stage.BATCH_SIZE, "batch 100"),
    ("latent size", 64, BOTH, lambda: train_first_stage.LATENT_DIM, "| latent size | both | 64 |"),
    ("stage-2 width, CIFAR-10", 2048, BOTH, lambda: data.DATASETS["cifar10"].stage2_width, "(2048 CIFAR-10"),
    ("stage-2 width, CelebA", 4096, BOTH, lambda: data.DATASETS["celeba"].stage2_width, "4096 CelebA)"),
    (
        "stage-2 width, MNIST and Fashion-MNIST",
        (1024, 1024),
        "ours",
        lambda: (data.DATASETS["mnist"].stage2_width, data.DATASETS["fashion_mnist"].stage2_width),
        "| 1024 |",
    ),
    (
        "stage-2 dense layers",
        3,
        BOTH,
        lambda: inspect.signature(second_stage.dense_tower).parameters["depth"].default,
        "3 Dense+ReLU",
    ),
    (
        "CIFAR-10 JPEG round trip quality (imageio's default)",
        75,
        BOTH,
        lambda: data.DATASETS["cifar10"].jpeg_quality,
        "quality 75",
    ),
    ("batch-norm momentum (TF1 decay)", 0.999, BOTH, lambda: first_stage.BN_MOMENTUM, "decay 0.999"),
    ("batch-norm epsilon", 1e-5, BOTH, lambda: first_stage.BN_EPSILON, "epsilon 1e-5"),
    (
        "first stage's base width",
        32,
        BOTH,
        lambda: data.training_defaults("cifar10")["base_filters"],
        "3x3 conv 32",
    ),
    (
        "first stage's base width, the builder's default",
        32,
        BOTH,
        lambda: inspect.signature(first_stage.build_first_stage).parameters["base_filters"].default,
        "3x3 conv 32",
    ),
    (
        "inactive latent variable: mean sigma above (no condition on Var(mu))",
        0.8,
        "7965c70",
        lambda: variance_measures.INACTIVE_SIGMA,
        "mean sigma over the encoded images is above 0.8",
    ),
    ("encoder's dense block width", 512, BOTH, lambda: first_stage.DENSE_WIDTH, "dense block (512)"),
    ("widest first-stage map", 1024, BOTH, lambda: first_stage.MAX_WIDTH, "2x2x1024 (64 px)"),
]


@pytest.mark.parametrize(
    "what, value, source, kept, doc_words", PROTOCOL, ids=[row[0][:40] for row in PROTOCOL]
)
def test_the_protocol_constant_is_the_authors(what, value, source, kept, doc_words):
    actual = kept()
    if isinstance(value, float):
        assert actual == pytest.approx(value, rel=1e-12), (
            f"{what}: {actual}, the table says {value} ({source})"
        )
    else:
        assert actual == value, f"{what}: {actual}, the table says {value} ({source})"
    with open(os.path.join(ROOT, "docs", "protocol.md")) as f:
        assert doc_words in f.read(), f"docs/protocol.md no longer says '{doc_words}' ({what})"


def test_every_row_names_its_source():
    for what, _, source, _, _ in PROTOCOL:
        assert source == "ours" or "7965c70" in source or "d9f3997" in source, what
