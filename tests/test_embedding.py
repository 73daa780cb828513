"""The t-SNE map keeps clusters apart and mixes one distribution; its PNG is written."""

import numpy as np
import pytest
from PIL import Image

from medgan import visualize
from medgan.eval import embedding


def test_separate_clusters_stay_separate_and_one_distribution_mixes():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 20)), rng.normal(size=(60, 20)) + 6.0
    separated = embedding.embed_2d(np.concatenate([a, b]), perplexity=15)
    groups = np.repeat([0, 1], 60)
    assert separated.shape == (120, 2) and separated.dtype == np.float32
    assert embedding.neighbour_agreement(separated, groups) > 0.95
    mixed = embedding.embed_2d(np.concatenate([a, rng.normal(size=(60, 20))]), perplexity=15)
    assert embedding.neighbour_agreement(mixed, groups) < 0.7


def test_neighbour_agreement_hand_counted():
    points = np.array([[0.0, 0], [1, 0], [10, 0], [11, 0]])
    assert embedding.neighbour_agreement(points, np.array([0, 0, 1, 1]), k=1) == 1.0
    assert embedding.neighbour_agreement(points, np.array([0, 1, 0, 1]), k=1) == 0.0


def test_too_few_points_is_an_error():
    with pytest.raises(ValueError, match="N >= 5"):
        embedding.embed_2d(np.ones((3, 4)))


def test_the_map_is_drawn(tmp_path):
    rng = np.random.default_rng(1)
    points = rng.normal(size=(40, 2))
    groups = np.array(["No Finding", "Edema", "Edema + Pleural Effusion", "Cardiomegaly"] * 10)
    path = tmp_path / "embedding.png"
    visualize.save_embedding(str(path), points, np.arange(40) % 2 == 1, groups, title="t-SNE", most=2)
    with Image.open(path) as image:
        assert image.size[0] > image.size[1] > 300
    with pytest.raises(ValueError, match="40 points, 39"):
        visualize.save_embedding(str(path), points, np.zeros(39, bool), groups)
