"""Occlusion maps light what a classifier looks at; their correlation and the share inside a region."""

import jax.numpy as jnp
import numpy as np
import pytest

from medgan import visualize
from medgan.eval import attribution

REGIONS = ((slice(4, 10), slice(18, 26)), (slice(20, 28), slice(2, 8)))  # where class 0 and class 1 look


def _looks_at_two_regions(images):
    """logits [B, 2]: class k is the mean brightness of region k (a classifier built to look there)."""
    return jnp.stack([8.0 * jnp.mean(images[:, r, c, 0], axis=(1, 2)) - 4.0 for r, c in REGIONS], axis=1)


def test_patch_origins_reach_the_far_edge():
    assert attribution.patch_origins(32, 8, 4) == [0, 4, 8, 12, 16, 20, 24]
    assert attribution.patch_origins(30, 8, 4) == [0, 4, 8, 12, 16, 20, 22]
    with pytest.raises(ValueError, match="patch 40 px"):
        attribution.patch_origins(32, 40, 4)


def test_occlusion_lights_the_region_the_classifier_looks_at_and_nothing_else():
    rng = np.random.default_rng(0)
    images = rng.uniform(-0.2, 0.2, size=(5, 32, 32, 1)).astype(np.float32)
    for r, c in REGIONS:
        images[:, r, c] = 1.0  # both findings present and bright
    maps = attribution.occlusion_maps(_looks_at_two_regions, images, np.ones((5, 2)), patch=4, stride=2, batch=2)
    assert maps.shape == (5, 32, 32, 2)
    for k, (r, c) in enumerate(REGIONS):
        region = np.zeros((32, 32), bool)
        region[r, c] = True
        assert np.all(maps[:, region, k] > 0)
        reach = np.zeros((32, 32), bool)  # pixels a patch overlapping the region can cover
        reach[max(r.start - 3, 0) : r.stop + 3, max(c.start - 3, 0) : c.stop + 3] = True
        np.testing.assert_array_equal(maps[:, ~reach, k], 0.0)
        share = attribution.share_inside(maps[..., k], np.broadcast_to(region, (5, 32, 32)))
        assert np.all(share > 0.6)


def test_map_correlation_and_share_inside_hand_computed():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 4, 4, 2))
    np.testing.assert_allclose(attribution.map_correlation(a, a), [1.0, 1.0])
    np.testing.assert_allclose(attribution.map_correlation(a, -2 * a), [-1.0, -1.0])
    flat = a.copy()
    flat[:, :, :, 1] = 1.0  # constant maps have no correlation
    result = attribution.map_correlation(a, flat)
    assert result[0] == pytest.approx(1.0) and np.isnan(result[1])
    maps = np.array([[[1.0, -5.0], [3.0, 0.0]], [[0.0, 0.0], [0.0, -1.0]]])
    regions = np.array([[[True, True], [False, False]], [[True, False], [False, False]]])
    share = attribution.share_inside(maps, regions)
    assert share[0] == pytest.approx(1 / 4) and np.isnan(share[1])


@pytest.mark.parametrize("offset", [0.0, -5.0, "flat"])
def test_occlusion_maps_are_drawn_when_occluding_lowers_the_loss_everywhere_or_nowhere(tmp_path, offset):
    rng = np.random.default_rng(0)
    maps = {name: (np.zeros((2, 8, 8)) if offset == "flat" else rng.random((2, 8, 8)) + offset)
            for name in ("real", "synthetic")}
    path = str(tmp_path / "occlusion.png")
    visualize.save_occlusion_maps(path, rng.uniform(-1, 1, (2, 8, 8, 1)), maps, ["a", "b"])
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
