"""Memorisation audit: calibration, Mann-Whitney Z, the data-copying test, SSIM, and planted copies it must find."""

import math

import numpy as np
import pytest

from medgan.eval import privacy
from medgan.eval.neighbours import Neighbours, nearest_neighbours


def test_threshold_flags_no_more_test_images_than_the_rate():
    test_nearest = np.arange(10, 0, -1) / 10  # 1.0 ... 0.1
    assert privacy.calibrate_threshold(test_nearest, 0.1) == pytest.approx(0.1)  # none of the 10 lies below
    assert privacy.calibrate_threshold(test_nearest, 0.25) == pytest.approx(0.3)  # 2 <= 2.5 lie below
    with pytest.raises(ValueError, match="needs at least 100 real test images to calibrate on, got 10"):
        privacy.calibrate_threshold(test_nearest, 0.01)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        privacy.calibrate_threshold(test_nearest, 1.5)


def test_mann_whitney_z_hand_computed():
    # x all below y: U = 0 of m n = 6 pairs; Z = (0 - 3) / sqrt(2 * 3 * 6 / 12)
    assert privacy.mann_whitney_z(np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0])) == pytest.approx(-3 / math.sqrt(3))
    # one tie counts a half: x = [1, 3], y = [3, 4] -> U = 0.5; Z = (0.5 - 2) / sqrt(4 * 5 / 12)
    z = privacy.mann_whitney_z(np.array([1.0, 3.0]), np.array([3.0, 4.0]))
    assert z == pytest.approx(-1.5 / math.sqrt(20 / 12))


def _cohort(rng, n, centres):
    return centres[rng.integers(len(centres), size=n)] + 0.3 * rng.normal(size=(n, centres.shape[1]))


def test_data_copying_test_is_quiet_for_honest_samples_and_loud_for_copies():
    rng = np.random.default_rng(0)
    centres = 3 * rng.normal(size=(5, 8))
    train, test, honest = _cohort(rng, 600, centres), _cohort(rng, 300, centres), _cohort(rng, 300, centres)
    copies = train[rng.choice(600, 300, replace=False)] + 0.01 * rng.normal(size=(300, 8))

    def statistic(synthetic):
        nearest = [nearest_neighbours(x, train, 1, metric="euclidean").nearest for x in (test, synthetic)]
        return privacy.data_copying_test(train, test, synthetic, *nearest, cells=5, min_per_cell=10)

    quiet, loud = statistic(honest), statistic(copies)
    assert abs(quiet.statistic) < 2.5 and quiet.p_value > 0.01
    assert quiet.cells_used == loud.cells_used == 5 and len(loud.cell_z) == 5
    assert loud.statistic < -5 and loud.p_value < 1e-12


def test_data_copying_test_needs_enough_images_per_cell():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4))
    with pytest.raises(ValueError, match="no k-means cell holds 10 synthetic"):
        privacy.data_copying_test(x, x[:5], x[:5], np.ones(5), np.ones(5), cells=3, min_per_cell=10)


def test_ssim_is_one_for_identical_images_and_exact_for_constant_ones():
    rng = np.random.default_rng(2)
    a = rng.uniform(-1, 1, size=(2, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(privacy.ssim(a, a), 1.0, atol=1e-5)
    c1 = (0.01 * 2) ** 2
    x, y = np.full((1, 12, 12, 1), 0.5, np.float32), np.full((1, 12, 12, 1), -0.25, np.float32)
    luminance = (2 * 0.5 * -0.25 + c1) / (0.5**2 + 0.25**2 + c1)  # contrast-structure term (0 + c2) / (0 + c2) = 1
    np.testing.assert_allclose(privacy.ssim(x, y), luminance, rtol=1e-5)
    assert abs(float(privacy.ssim(a[:1], a[1:])[0])) < 0.2  # two unrelated noise images


def test_pixel_similarity_sees_a_mirrored_copy():
    rng = np.random.default_rng(3)
    images = rng.uniform(-1, 1, size=(2, 16, 16, 1)).astype(np.float32)
    candidates = np.stack([images[:, :, ::-1], rng.uniform(-1, 1, size=(2, 16, 16, 1)).astype(np.float32)], axis=1)
    l2, structural = privacy.pixel_similarity(images, candidates)
    assert l2.shape == structural.shape == (2, 2)
    np.testing.assert_allclose(l2[:, 0], 0.0, atol=1e-5)
    np.testing.assert_allclose(structural[:, 0], 1.0, atol=1e-5)
    assert np.all(l2[:, 1] > 1) and np.all(structural[:, 1] < 0.5)


def test_summary_counts_flags_against_what_honest_images_would_give():
    nearest = Neighbours(np.array([[0.05], [0.5], [0.6], [0.01]], np.float32), np.zeros((4, 1), np.int64))
    test = Neighbours(np.linspace(0.1, 1.0, 100, dtype=np.float32)[:, None], np.zeros((100, 1), np.int64))
    copying = privacy.DataCopyingTest(-1.0, 0.16, 3, 2, np.array([-1.0, -1.0]))
    audit = privacy.MemorisationAudit(0.01, privacy.calibrate_threshold(test.nearest, 0.01), nearest, test,
                                      np.array([3, 0]), copying)
    summary = audit.summary()
    assert summary["threshold"] == pytest.approx(0.1) and summary["flagged"] == 2
    assert summary["flagged_expected_if_honest"] == pytest.approx(0.04)
    assert summary["flagged_p_value"] == pytest.approx(1 - 0.99**4 - 4 * 0.01 * 0.99**3)  # P(at least 2 of 4)


def test_neighbour_strips_are_drawn_one_row_per_synthetic_image(tmp_path):
    from PIL import Image

    from medgan import visualize

    rng = np.random.default_rng(4)
    queries, neighbours = rng.uniform(-1, 1, (3, 16, 16, 1)), rng.uniform(-1, 1, (3, 4, 16, 16, 1))
    path = tmp_path / "strips.png"
    captions = [[f"train {i}, 1 - cos 0.0{i}" for i in range(4)] for _ in range(3)]
    visualize.save_neighbour_strips(str(path), queries, neighbours, ["synthetic 1", "synthetic 2", "synthetic 3"],
                                    captions, title="nearest training images")
    with Image.open(path) as image:
        width, height = image.size
    assert width > height > 300  # 5 columns, 3 rows
    with pytest.raises(ValueError, match="3 queries, 3 neighbour rows, 2 and 3"):
        visualize.save_neighbour_strips(str(path), queries, neighbours, ["a", "b"], captions)


@pytest.fixture(scope="module")
def chest_patients():
    """[1280, 32, 32, 1] phantom chest radiographs in [-1, 1], one per patient (distinct patients)."""
    from medgan.data.phantoms import PhantomSource

    source = PhantomSource("chest", 1400, seed=0)
    first = {}
    for record in source.index()[0]:
        first.setdefault(record.patient_id, record)
    records = list(first.values())[:1280]
    return np.stack([source.load(r, 32)[0] for r in records]).astype(np.float32) / 127.5 - 1


def _judge_like_features(images):
    """A stand-in judge: two random convolutions, ReLU, global pooling (shift-tolerant like a CNN's pooled features)."""
    import jax
    import jax.numpy as jnp

    dims = ("NHWC", "HWIO", "NHWC")
    k1 = jax.random.normal(jax.random.key(0), (5, 5, 1, 64)) / 5
    k2 = jax.random.normal(jax.random.key(1), (3, 3, 64, 128)) / 24
    h = jax.nn.relu(jax.lax.conv_general_dilated(images, k1, (1, 1), "SAME", dimension_numbers=dims))
    h = jax.lax.reduce_window(h, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4
    h = jax.nn.relu(jax.lax.conv_general_dilated(h, k2, (1, 1), "SAME", dimension_numbers=dims))
    return jnp.concatenate([h.mean((1, 2)), jnp.sqrt((h**2).mean((1, 2)))], axis=1)


def _moved(image, axis, amount):
    """image [H, W, C] with its content moved `amount` pixels along axis 0 (y) or 1 (x), the border reflected."""
    pad = [(0, 0)] * 3
    pad[axis] = (max(amount, 0), max(-amount, 0))
    moved = np.pad(image, pad, mode="reflect")
    return np.take(moved, np.arange(max(-amount, 0), max(-amount, 0) + image.shape[axis]), axis=axis)


def test_planted_copies_are_flagged_and_honest_images_are_not(chest_patients):
    """5% of a synthetic cohort are training images: exact, mirrored, moved 1-2 px (reflected border), with noise."""
    import jax
    import jax.numpy as jnp

    from medgan.eval import features

    rng = np.random.default_rng(0)
    train, test, honest = chest_patients[:400], chest_patients[400:900], chest_patients[900:1280]
    copied = rng.choice(len(train), 20, replace=False)
    planted = train[copied].copy()
    planted[5:10] = planted[5:10, :, ::-1]
    for i, (axis, amount) in zip(range(10, 15), [(2, 1), (2, -2), (1, 2), (1, -1), (2, 2)]):
        planted[i] = _moved(planted[i], axis - 1, amount)
    planted[14] = planted[14, :, ::-1]
    planted[15:20] = np.clip(planted[15:20] + 0.05 * rng.normal(size=planted[15:20].shape), -1, 1)
    synthetic = np.concatenate([honest, planted])  # rows 380 ... 399 are the copies
    judge = jax.jit(_judge_like_features)
    names = features.view_names(shifts=(1, 2))

    def views(images):
        return [np.asarray(judge(features.apply_view(jnp.asarray(images), name, margin=2))) for name in names]

    audit = privacy.memorisation_audit(views(train)[0], views(test), views(synthetic),
                                       false_flag_rate=0.002, cells=5)
    flagged = set(audit.flagged.tolist())
    copies = set(range(380, 400))
    assert len(flagged & copies) >= 19  # >= 95% of the planted copies
    assert len(flagged - copies) < 0.01 * 380  # < 1% of the honest images
    found = audit.synthetic.indices[380:, 0]
    assert np.mean(found == copied) >= 0.95  # and their nearest training image is the one copied
    assert audit.summary()["flagged_p_value"] < 1e-10


def test_planted_copies_are_mirrored_every_other_one_moved_noisy_and_8_bit():
    images = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
    exact = privacy.planted_copies(images, 0, noise=0.0, shift=2)
    grey = lambda x: np.round((x + 1) * 127.5)  # noqa: E731
    np.testing.assert_array_equal(grey(exact[0]), grey(np.roll(images[0, :, ::-1], 2, axis=1)))
    np.testing.assert_array_equal(grey(exact[1]), grey(np.roll(images[1], 2, axis=1)))
    assert np.all(np.abs((exact + 1) * 127.5 - grey(exact)) < 1e-3)  # on the 8-bit grid
    noisy = privacy.planted_copies(images, 0, noise=0.05, shift=2)
    assert 0.03 < float(np.std(noisy - exact)) < 0.07


def test_the_planted_control_counts_copies_under_the_threshold_and_traces_them_to_their_source():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(50, 16)).astype(np.float32)
    test = Neighbours(np.linspace(0.1, 1.0, 100, dtype=np.float32)[:, None], np.zeros((100, 1), np.int64))
    audit = privacy.MemorisationAudit(0.01, privacy.calibrate_threshold(test.nearest, 0.01), test, test,
                                      np.array([], np.int64), None)
    sources = np.array([3, 7, 11])
    copies = train[sources] + 1e-3 * rng.normal(size=(3, 16)).astype(np.float32)  # near copies
    copies[2] = rng.normal(size=16)  # not a copy: it must not count
    views = np.stack([copies[::-1] * 0 + rng.normal(size=(3, 16)), copies])  # the second view finds them
    control = privacy.planted_control(audit, views.astype(np.float32), sources, train)
    assert (control["copies"], control["flagged"], control["traced_to_source"]) == (3, 2, 2)
