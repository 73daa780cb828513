"""Adaptive discriminator augmentation: exactness at p=0, per-transform behaviour, the p update rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medgan.train import ada

KEY = jax.random.key(0)
AUG = jax.jit(ada.augment)


def images(b=8, r=16, c=1, seed=1):
    return jax.random.uniform(jax.random.key(seed), (b, r, r, c), minval=-1.0, maxval=1.0)


def test_p0_identity_bit_exact_and_p1_changes_every_image():
    x = images()
    y0 = AUG(KEY, x, jnp.float32(0.0))
    assert y0.dtype == x.dtype and y0.shape == x.shape
    np.testing.assert_array_equal(np.asarray(y0), np.asarray(x))
    y1 = AUG(KEY, x, jnp.float32(1.0))  # same compiled function (p traced)
    assert y1.shape == x.shape and np.isfinite(np.asarray(y1)).all()
    assert np.all(np.abs(np.asarray(y1 - x)).reshape(x.shape[0], -1).max(axis=1) > 1e-3)
    assert AUG._cache_size() == 1


def test_bf16_p0_identity():
    x = images().astype(jnp.bfloat16)
    y = ada.augment(KEY, x, 0.0)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(x, np.float32))


def _single(name, x, seed=3, p=1.0):
    return np.asarray(ada.augment(jax.random.key(seed), x, p, transforms=(name,)))


def test_each_transform_preserves_shape_and_dtype():
    x = images(b=4, r=16, c=3)
    for name in ada.TRANSFORMS:
        y = ada.augment(KEY, x, 1.0, transforms=(name,))
        assert y.shape == x.shape and y.dtype == x.dtype, name
    with pytest.raises(ValueError):
        ada.augment(KEY, x, 1.0, transforms=("hue",))


def test_xflip_is_exact_mirror():
    x = images(b=4, r=8, c=2)
    np.testing.assert_array_equal(_single("xflip", x), np.asarray(x)[:, :, ::-1])


def test_rot90_is_an_exact_nontrivial_rotation_per_sample():
    x = images(b=16, r=8, c=1)
    y = _single("rot90", x)
    ks = []
    for i in range(16):
        matches = [k for k in (1, 2, 3) if np.array_equal(y[i], np.rot90(np.asarray(x[i]), k, axes=(0, 1)))]
        assert len(matches) == 1, i  # exactly one of the 90/180/270 degree rotations, never the identity
        ks.append(matches[0])
    assert set(ks) == {1, 2, 3}


def test_translation_is_integer_shift_with_reflect_padding():
    x = jnp.arange(4 * 8 * 8, dtype=jnp.float32).reshape(4, 8, 8, 1)
    # direct check of the helper: shift by (dy, dx) = (1, -1) moves the interior exactly
    t = np.asarray(ada._translate(x, jnp.full((4,), -1), jnp.full((4,), 1), max_shift=1))
    np.testing.assert_array_equal(t[:, 1:, :-1], np.asarray(x)[:, :-1, 1:])
    np.testing.assert_array_equal(t[:, 0, :-1], np.asarray(x)[:, 1, 1:])  # reflect: row -1 -> row 1, no wrap
    # through augment (8 px -> shifts in [-1, 1]): every output is a shifted copy, values never mixed
    y = _single("translate", x)
    xs = np.asarray(x)
    for i in range(4):
        assert set(y[i].ravel()) <= set(xs[i].ravel())
        found = False
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ref = np.asarray(ada._translate(x[i : i + 1], jnp.array([dx]), jnp.array([dy]), max_shift=1))[0]
                found |= np.array_equal(ref, y[i])
        assert found, i


def test_brightness_adds_constant_and_contrast_keeps_mean():
    x = images(b=8, r=8, c=1)
    xs = np.asarray(x)
    d = (_single("brightness", x) - xs).reshape(8, -1)
    np.testing.assert_allclose(d, d[:, :1] * np.ones_like(d), atol=1e-6)
    assert np.all(np.abs(d[:, 0]) > 0)
    y = _single("contrast", x)
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), xs.mean(axis=(1, 2, 3)), atol=1e-5)
    ratio = (y - y.mean(axis=(1, 2, 3), keepdims=True)) / (xs - xs.mean(axis=(1, 2, 3), keepdims=True))
    ratio = ratio.reshape(8, -1)
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-3)
    assert np.all(ratio[:, 0] > 0)


def test_blit_chain_only_moves_pixels():
    x = jnp.arange(2 * 8 * 8, dtype=jnp.float32).reshape(2, 8, 8, 1)
    y = np.asarray(ada.augment(jax.random.key(3), x, 1.0, transforms=("xflip", "rot90", "translate")))
    for i in range(2):
        xi = np.asarray(x[i])
        assert set(y[i].ravel()) <= set(xi.ravel())  # values only moved, never mixed
        assert not np.array_equal(xi, y[i])  # flip composed with a non-trivial rotation is never the identity


def test_colour_transforms_statistics():
    x = jnp.zeros((4096, 8, 8, 1))
    y = np.asarray(ada.augment(jax.random.key(5), x, 1.0))
    # constant image: translation/flip/rotation keep 0; contrast around the mean keeps the constant;
    # brightness adds b ~ N(0, 0.2^2) per image
    per_image = y.reshape(4096, -1)
    assert np.allclose(per_image, per_image[:, :1], atol=1e-6)
    assert abs(per_image[:, 0].std() - ada.BRIGHTNESS_STD) < 0.01
    assert abs(per_image[:, 0].mean()) < 0.01


def test_augment_probability_fraction():
    # brightness only changes a constant image -> fraction of changed images ~ p
    x = jnp.zeros((4000, 8, 8, 1))
    y = np.asarray(AUG(jax.random.key(7), x, jnp.float32(0.3)))
    frac = float(np.mean(np.abs(y).reshape(4000, -1).max(axis=1) > 0))
    assert abs(frac - 0.3) < 0.03


def test_augment_rejects_bad_shapes():
    with pytest.raises(ValueError):
        ada.augment(KEY, jnp.zeros((2, 8, 16, 1)), 0.5)
    with pytest.raises(ValueError):
        ada.augment(KEY, jnp.zeros((8, 8, 1)), 0.5)


def test_update_probability_exact_values_and_clipping():
    kw = dict(batch_size=32, interval=4, speed_images=500_000)
    step = 32 * 4 / 500_000
    up = ada.update_probability(jnp.float32(0.5), 0.8, **kw)
    down = ada.update_probability(jnp.float32(0.5), 0.2, **kw)
    same = ada.update_probability(jnp.float32(0.5), 0.6, **kw)
    np.testing.assert_allclose(float(up), 0.5 + step, rtol=0, atol=1e-7)
    np.testing.assert_allclose(float(down), 0.5 - step, rtol=0, atol=1e-7)
    assert float(same) == 0.5
    assert float(ada.update_probability(0.0, -1.0, **kw)) == 0.0
    assert float(ada.update_probability(1.0, 1.0, **kw)) == 1.0
    assert float(ada.update_probability(0.99999, 1.0, **kw)) == 1.0
    assert float(ada.update_probability(0.5, 0.7, target=0.8, **kw)) == pytest.approx(0.5 - step, abs=1e-7)
    # jit-able, traced inputs
    f = jax.jit(lambda p, r: ada.update_probability(p, r, batch_size=64, interval=4))
    assert float(f(jnp.float32(0.1), jnp.float32(0.9))) == pytest.approx(0.1 + 64 * 4 / 500_000, abs=1e-7)
    assert up.dtype == jnp.float32
