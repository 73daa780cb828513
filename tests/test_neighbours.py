"""Tiled, sharded k-NN search: exact against brute force, the same on 1 and 8 devices, mirrored views."""

import jax
import numpy as np
import pytest

from medgan import sharding
from medgan.eval.neighbours import nearest_neighbours, nearest_over_views


def _brute_force(queries, references, k, metric):
    q, r = queries.astype(np.float64), references.astype(np.float64)
    if metric == "cosine":
        q, r = q / np.linalg.norm(q, axis=1, keepdims=True), r / np.linalg.norm(r, axis=1, keepdims=True)
        distance = 1.0 - q @ r.T
    else:
        distance = np.sqrt(np.clip((q**2).sum(1)[:, None] + (r**2).sum(1)[None] - 2 * q @ r.T, 0, None))
    order = np.argsort(distance, axis=1)[:, :k]
    return np.take_along_axis(distance, order, 1), order


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("k", [1, 5])
def test_equals_brute_force_with_tiles_and_blocks_that_do_not_divide_the_sets(metric, k):
    rng = np.random.default_rng(0)
    queries, references = rng.normal(size=(37, 12)), rng.normal(size=(203, 12)) + 0.3
    found = nearest_neighbours(queries, references, k, metric=metric, query_block=16, reference_tile=50)
    distance, index = _brute_force(queries, references, k, metric)
    np.testing.assert_array_equal(found.indices, index)
    np.testing.assert_allclose(found.distances, distance, rtol=1e-5, atol=1e-5)
    assert found.indices.shape == found.distances.shape == (37, k) and found.indices.dtype == np.int64


def test_eight_devices_give_the_answer_of_one():
    rng = np.random.default_rng(1)
    queries, references = rng.normal(size=(45, 16)), rng.normal(size=(300, 16))
    one = nearest_neighbours(queries, references, 3, mesh=sharding.make_mesh(jax.devices()[:1]), reference_tile=64)
    eight = nearest_neighbours(queries, references, 3, mesh=sharding.make_mesh(), reference_tile=64)
    assert len(jax.devices()) == 8
    np.testing.assert_array_equal(one.indices, eight.indices)
    np.testing.assert_allclose(one.distances, eight.distances, atol=1e-6)


def test_a_copy_is_found_at_distance_zero_and_a_mirrored_copy_through_its_mirror_view():
    rng = np.random.default_rng(2)
    images = rng.normal(size=(50, 6, 6))
    references = images.reshape(50, -1)
    mirrored_copy = images[17, :, ::-1]
    view, mirror_view = mirrored_copy.reshape(1, -1), mirrored_copy[:, ::-1].reshape(1, -1)
    assert nearest_neighbours(view, references, 1).distances[0, 0] > 0.1  # unmirrored, the copy is not a copy
    found = nearest_over_views([view, mirror_view], references, 3)
    assert found.indices[0, 0] == 17 and found.distances[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert len(set(found.indices[0])) == 3 and np.all(np.diff(found.distances[0]) >= 0)


def test_over_views_each_reference_keeps_its_nearest_view_as_brute_force_says():
    rng = np.random.default_rng(5)
    references = rng.normal(size=(40, 8))
    base = rng.normal(size=(30, 8))
    views = [base + 0.3 * rng.normal(size=base.shape) for _ in range(4)]  # nearby views share neighbours
    found = nearest_over_views(views, references, 5, metric="euclidean", query_block=7, reference_tile=16)
    for q in range(len(base)):
        nearest = np.min([np.linalg.norm(v[q] - references, axis=1) for v in views], axis=0)  # [R]
        order = np.argsort(nearest, kind="stable")[:5]
        np.testing.assert_array_equal(found.indices[q], order)
        np.testing.assert_allclose(found.distances[q], nearest[order], atol=1e-4)
    with pytest.raises(ValueError, match="expected V views of"):
        nearest_over_views(np.ones((3, 4)), references, 1)


def test_bad_input_is_named():
    good = np.ones((4, 3))
    with pytest.raises(ValueError, match="row 2 is all zeros"):
        nearest_neighbours(good, np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 0]]), 1)
    with pytest.raises(ValueError, match="queries: row 1 is not finite"):
        nearest_neighbours(np.array([[1.0, 0, 0], [np.nan, 0, 0]]), good, 1)
    with pytest.raises(ValueError, match="3 features, references 2"):
        nearest_neighbours(good, np.ones((4, 2)), 1)
    with pytest.raises(ValueError, match="k = 5"):
        nearest_neighbours(good, good, 5)
    with pytest.raises(ValueError, match="metric 'manhattan'"):
        nearest_neighbours(good, good, 1, metric="manhattan")
