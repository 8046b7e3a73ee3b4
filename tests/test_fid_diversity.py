"""fid/diversity.py: precision, recall, density and coverage on feature sets whose answers are known."""

import numpy as np
import pytest

from vaevar.fid import diversity


def clusters(rng, centres, per_cluster, spread=0.05):
    return np.concatenate([c + spread * rng.standard_normal((per_cluster, len(c))) for c in centres])


def test_identical_sets_score_one():
    x = np.random.default_rng(0).standard_normal((300, 8))
    scores = diversity.diversity(x, x)
    assert scores["precision"] == scores["recall"] == scores["coverage"] == 1.0
    assert scores["density"] >= 1.0  # each point is inside its own ball and its neighbours'


def test_disjoint_distant_clusters_score_zero():
    rng = np.random.default_rng(1)
    real = clusters(rng, [np.zeros(4)], 200)
    fake = clusters(rng, [np.full(4, 10.0)], 200)
    assert diversity.diversity(real, fake) == {
        "precision": 0.0,
        "recall": 0.0,
        "density": 0.0,
        "coverage": 0.0,
    }


def test_generated_points_in_half_of_the_real_clusters():
    """Real: 4 far-apart clusters; generated: fresh draws of 2 of them. The generated points are as realistic
    as fresh draws of all 4 (the same precision: k-NN balls of 250 points in 6-D leave ~10 % of fresh draws
    outside), but half the real modes are missed: recall and coverage halve."""
    rng = np.random.default_rng(2)
    centres = [np.eye(6)[i] * 20 for i in range(4)]
    real = clusters(rng, centres, 250)
    everywhere = diversity.diversity(real, clusters(rng, centres, 250))
    half = diversity.diversity(real, clusters(rng, centres[:2], 250))
    assert half["precision"] == pytest.approx(everywhere["precision"], abs=0.05)
    assert half["recall"] == pytest.approx(everywhere["recall"] / 2, abs=0.03)
    assert half["coverage"] == pytest.approx(everywhere["coverage"] / 2, abs=0.03)


def test_a_shrunken_copy_loses_recall_not_precision():
    """Generated = the real points pulled halfway to their mean (a VAE's variance loss): they stay inside the
    real manifold (precision ~1) but no longer reach its edges (recall and coverage below 1)."""
    rng = np.random.default_rng(3)
    real = rng.standard_normal((1000, 4))
    fresh = rng.standard_normal((1000, 4))
    shrunk = 0.5 * fresh
    same = diversity.diversity(real, fresh)
    scores = diversity.diversity(real, shrunk)
    assert scores["precision"] > 0.95
    assert scores["recall"] < same["recall"] - 0.2 and scores["coverage"] < same["coverage"] - 0.1
    assert scores["density"] > same["density"]  # crowded into the dense centre


def test_radii_exclude_the_point_itself_and_blocks_change_nothing():
    points = np.array([[0.0], [1.0], [3.0], [7.0]])
    radii = diversity.knn_radii(points, (1, 2), block=3)
    np.testing.assert_array_equal(radii[1], [1.0, 1.0, 4.0, 16.0])  # squared distances to the nearest other
    np.testing.assert_array_equal(radii[2], [9.0, 4.0, 9.0, 36.0])
    rng = np.random.default_rng(4)
    real, fake = rng.standard_normal((130, 5)), rng.standard_normal((170, 5))
    assert diversity.diversity(real, fake, block=7) == diversity.diversity(real, fake, block=1024)
    with pytest.raises(ValueError, match="nearest neighbour needs more than 5"):
        diversity.knn_radii(points, (5,))


def test_the_neighbour_counts_are_three_and_five_by_hand():
    """Real points 0, 1, ..., 9 on a line. Their 3rd-neighbour radii: 3 at the ends, else 2; 5th: 5, 4, then
    3 inside. Generated 12 lies in 9's k = 3 ball (radius 3, distance 3); 13.5 and -4 lie in no k = 3 ball
    but in 9's and 0's k = 5 balls; 4.5 in the k = 3 balls of 3-6 and every k = 5 ball. So precision (k = 3) is
    2 / 4; density (k = 5) counts 2 + 1 + 1 + 10 balls: 14 / (5 * 4). Another k gives other numbers (k = 5
    for precision: 1.0)."""
    real = np.arange(10.0)[:, None]
    generated = np.array([[12.0], [13.5], [-4.0], [4.5]])
    scores = diversity.diversity(real, generated)
    assert scores["precision"] == 0.5
    assert scores["density"] == pytest.approx(14 / 20)
    assert scores["coverage"] == 1.0  # 4.5 lies in every real k = 5 ball
    # generated radii (k = 3 of 4 points: the farthest other point) reach every real point
    assert scores["recall"] == 1.0
