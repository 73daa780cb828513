"""Fréchet distance: exact Gaussian cases, agreement with scipy's sqrtm, masked accumulation."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from medgan.eval import fidelity


def test_one_dimensional_gaussians_exact():
    # d^2 = (m1 - m2)^2 + (s1 - s2)^2 for 1-D Gaussians
    d = fidelity.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]]))
    assert d == pytest.approx(9.0 + 1.0)


def test_diagonal_covariances_exact_and_identity_is_zero():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert fidelity.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected)
    assert fidelity.frechet_distance(mu1, np.diag(v1), mu1, np.diag(v1)) == pytest.approx(0.0, abs=1e-9)


def test_matches_scipy_sqrtm_on_full_covariances():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    c1, c2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    reference = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * np.real(scipy.linalg.sqrtm(c1 @ c2)))
    assert fidelity.frechet_distance(m1, c1, m2, c2) == pytest.approx(reference, rel=1e-8)


def test_rank_deficient_covariances_stay_real_and_nonnegative():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(3, 10)), rng.normal(size=(3, 10))  # 3 images, 10 features
    d = fidelity.frechet_distance(x.mean(0), np.cov(x.T), y.mean(0), np.cov(y.T))
    assert np.isfinite(d) and d >= 0


def test_accumulate_equals_numpy_moments_and_respects_mask():
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(10, 4)).astype(np.float32)
    mask = np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 1], bool)
    batches = [{"image": jnp.asarray(feats[:5]), "mask": jnp.asarray(mask[:5])},
               {"image": jnp.asarray(feats[5:]), "mask": jnp.asarray(mask[5:])}]
    stats = fidelity.accumulate(batches, lambda images: images, dim=4)
    mu, cov = stats.mean_and_covariance()
    kept = feats[mask].astype(np.float64)
    np.testing.assert_allclose(mu, kept.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cov, np.cov(kept.T), rtol=1e-4, atol=1e-5)
    assert stats.count == 8


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="at least 2"):
        fidelity.FeatureStatistics(3).mean_and_covariance()
    with pytest.raises(ValueError, match="shapes differ"):
        fidelity.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
