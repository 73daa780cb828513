"""Post-processing of generated lesion channels: the largest object kept, small ones dropped, a smooth edge."""

import numpy as np
import pytest

from medgan.data import lesions


def _blob(shape, centre, radius, value=0.5):
    y, x = np.mgrid[: shape[0], : shape[1]]
    return np.where((y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius**2, value, 0.0)


def test_the_largest_component_is_kept_small_objects_dropped_and_the_edge_is_smooth():
    shape = (64, 64)
    noise = np.random.default_rng(0).uniform(-0.05, 0.05, shape)  # below the threshold everywhere
    first = _blob(shape, (20, 20), 8) + _blob(shape, (50, 50), 3) + noise  # a big and a small object
    second = _blob(shape, (32, 32), 1) + noise  # only a tiny one (5 px < 0.5% of 4096 = 20 px)
    third = _blob(shape, (10, 50), 4, value=0.3) + _blob(shape, (45, 15), 6) + noise  # two: keep the bigger
    lesion = np.stack([first, second, third]).astype(np.float32)
    base = np.zeros_like(lesion)
    out = lesions.post_process(lesion, base, min_area=0.005)
    assert out.kept.tolist() == [True, False, True]
    areas = [int((_blob(shape, centre, radius) > 0).sum()) for centre, radius in (((20, 20), 8), ((32, 32), 1),
                                                                                  ((45, 15), 6))]
    assert out.area.tolist() == areas and areas[1] == 5  # the tiny object was found, then discarded
    assert out.mask[0, 20, 20] == pytest.approx(1.0) and out.mask[0, 50, 50] == 0  # the small object is gone
    assert np.all(out.mask[1] == 0) and np.all(out.combined[1] == 0)  # nothing added where nothing was kept
    assert out.mask[2, 45, 15] == pytest.approx(1.0) and out.mask[2, 10, 50] == 0
    # 5 px of dilation, then a 10 px wide Gaussian: the mask reaches beyond the object and falls off smoothly.
    profile = out.mask[0, 20, 20:40]  # from the centre outwards, the object's edge at 8 px
    assert np.all(profile[:7] == pytest.approx(1.0)) and profile[8] > 0.95  # the object itself is kept whole
    assert 0.2 < profile[13] < 0.8 and 0 < profile[17] < 0.1 and profile[19] == 0  # 5 px out: half-way down
    assert np.all(np.diff(profile) <= 1e-6)
    assert np.max(np.abs(np.diff(out.mask[0], axis=1))) < 0.2  # no hard step anywhere
    np.testing.assert_allclose(out.lesion, lesion * out.mask, atol=1e-6)  # the noise off the object is gone
    assert np.abs(out.lesion[0, 50, 50]) < 1e-6


def test_removal_takes_the_negative_lesion_and_clears_the_lesion():
    shape = (48, 48)
    base = (-0.5 + _blob(shape, (24, 24), 6, value=0.8))[None].astype(np.float32)  # a bright lesion on tissue
    negative = -_blob(shape, (24, 24), 6, value=0.8)[None].astype(np.float32)  # what a removal G would draw
    out = lesions.post_process(negative, base, min_area=0.001, negative=True)
    assert out.kept.tolist() == [True]
    np.testing.assert_allclose(out.combined[0, 22:27, 22:27], -0.5, atol=1e-6)  # the lesion's core is tissue again
    inside = _blob(shape, (24, 24), 6) > 0
    assert np.max(out.combined[0][inside]) < -0.47  # and under 4% of it is left at its rim
    assert lesions.post_process(negative, base, negative=False).kept.tolist() == [False]


def test_shapes_must_match():
    with pytest.raises(ValueError, match="expected the same"):
        lesions.post_process(np.zeros((2, 8, 8)), np.zeros((2, 8, 9)))
