"""Features of an image set over 8 devices: every image once, with its id, labels and mirrored view; the cache."""

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import coded_labels

from medgan import sharding
from medgan.eval import features


def _halves(images):
    """[B, 2]: the mean of the left and of the right half: the coded image i gives ((i + 1) / 127.5 - 1, -1)."""
    half = images.shape[2] // 2
    return jnp.stack([images[:, :, :half].mean(axis=(1, 2, 3)), images[:, :, half:].mean(axis=(1, 2, 3))], axis=1)


def test_every_image_once_with_its_id_labels_and_mirror(coded_dataset):
    prepared, fold = coded_dataset
    ids = fold.ids["train"] + fold.ids["test"]
    found = features.extract_features(prepared.dataset_dir, ids, _halves, sharding.make_mesh(), global_batch_size=16,
                                      shifts=(1,))
    assert list(found.image_ids) == sorted(ids)
    assert found.views.shape == (10, len(ids), 2) and list(found.names) == list(features.view_names((1,)))
    assert found.margin == 1  # every view is a 14 px window of the 16 px image
    index = np.array([int(i.split("-")[1]) for i in found.image_ids])
    coded = (index + 1) / 127.5 - 1
    np.testing.assert_allclose(found.features, np.stack([coded, -np.ones_like(coded)], 1), atol=1e-5)
    np.testing.assert_allclose(found.views[5], found.features[:, ::-1], atol=1e-5)  # "mirrored"
    moved_left = found.views[list(found.names).index("as is, shift x-1")]  # window cols 0-13: 8 coded, 6 not
    np.testing.assert_allclose(moved_left, np.stack([coded, (coded - 6) / 7], 1), atol=1e-5)
    np.testing.assert_array_equal(found.labels, np.array([coded_labels(i) for i in index], np.float32))
    assert found.subset(np.array([0, 2])).image_ids.tolist() == sorted(ids)[0:3:2]


def test_the_cache_serves_its_fingerprint_and_recomputes_for_another(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        rows = np.arange(6, dtype=np.float32).reshape(3, 2) + len(calls)
        return features.FeatureSet(np.array(["a", "b", "c"]), np.zeros((3, 1), np.float32), np.stack([rows, rows]),
                                   np.array(features.view_names()))

    path = str(tmp_path / "features.npz")
    first = features.cached_features(path, "judge-1", compute)
    again = features.cached_features(path, "judge-1", compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(again.views, first.views)
    assert again.image_ids.tolist() == ["a", "b", "c"] and again.names.tolist() == ["as is", "mirrored"]
    other = features.cached_features(path, "judge-2", compute)
    assert len(calls) == 2 and not np.array_equal(other.features, first.features)


def test_views_are_windows_inside_the_margin_moved_by_the_shift():
    assert features.view_names() == ("as is", "mirrored")
    assert features.view_names((2,))[:5] == ("as is", "as is, shift y+2", "as is, shift y-2", "as is, shift x+2",
                                             "as is, shift x-2")
    image = jnp.arange(25.0).reshape(1, 5, 5, 1)
    np.testing.assert_array_equal(features.apply_view(image, "as is")[0, :, :, 0], image[0, :, :, 0])
    centre = features.apply_view(image, "as is", margin=1)[0, :, :, 0]
    np.testing.assert_array_equal(centre, [[6, 7, 8], [11, 12, 13], [16, 17, 18]])
    right = features.apply_view(image, "as is, shift x+1", margin=1)[0, :, :, 0]
    np.testing.assert_array_equal(right, [[7, 8, 9], [12, 13, 14], [17, 18, 19]])
    up_mirrored = features.apply_view(image, "mirrored, shift y-1", margin=1)[0, :, :, 0]
    np.testing.assert_array_equal(up_mirrored, [[3, 2, 1], [8, 7, 6], [13, 12, 11]])
    copy_moved_right = jnp.pad(image, ((0, 0), (0, 0), (1, 0), (0, 0)), mode="reflect")[:, :, :5]
    found = features.apply_view(copy_moved_right, "as is, shift x+1", margin=1)
    np.testing.assert_array_equal(found, image[:, 1:4, 1:4])
    with pytest.raises(ValueError, match="unknown view 'rotated'"):
        features.apply_view(image, "rotated")
    with pytest.raises(ValueError, match="further than the margin of 1 px"):
        features.apply_view(image, "as is, shift y+2", margin=1)
