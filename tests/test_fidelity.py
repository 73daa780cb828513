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


def _polynomial_kernel_mean(mu1, cov1, mu2, cov2):
    """E (x.y / D + 1)^3 for independent x ~ N(mu1, cov1), y ~ N(mu2, cov2), from the Gaussian moments."""
    dim = len(mu1)
    second1, second2 = cov1 + np.outer(mu1, mu1), cov2 + np.outer(mu2, mu2)

    def third(mu, cov):  # E x_i x_j x_k
        return (np.einsum("i,j,k->ijk", mu, mu, mu) + np.einsum("i,jk->ijk", mu, cov)
                + np.einsum("j,ik->ijk", mu, cov) + np.einsum("k,ij->ijk", mu, cov))

    s1 = mu1 @ mu2 / dim
    s2 = np.trace(second1 @ second2) / dim**2
    s3 = np.sum(third(mu1, cov1) * third(mu2, cov2)) / dim**3
    return s3 + 3 * s2 + 3 * s1 + 1


def test_kid_between_gaussians_matches_the_closed_form_mmd():
    rng = np.random.default_rng(4)
    mu1, cov1 = np.zeros(4), np.eye(4)
    mu2, cov2 = np.array([0.8, 0.0, -0.4, 0.0]), np.diag([2.0, 1.0, 1.0, 0.5])
    expected = (_polynomial_kernel_mean(mu1, cov1, mu1, cov1) + _polynomial_kernel_mean(mu2, cov2, mu2, cov2)
                - 2 * _polynomial_kernel_mean(mu1, cov1, mu2, cov2))
    x = rng.multivariate_normal(mu1, cov1, size=40_000)
    y = rng.multivariate_normal(mu2, cov2, size=40_000)
    mean, std = fidelity.kernel_distance(x, y, subsets=20, subset_size=2000)
    assert expected > 0.3 and mean == pytest.approx(expected, rel=0.1)
    assert std > 0
    same, _ = fidelity.kernel_distance(x[:20_000], x[20_000:], subsets=20, subset_size=2000)
    assert abs(same) < 0.05 * expected


def test_precision_recall_density_coverage_on_a_hand_counted_line():
    # real 0..9: k = 3 radii 3, 2, 2, ..., 2, 3. synthetic 0..3 (radii 3, 2, 2, 3) and a far cluster 30..33.
    real = np.arange(10, dtype=np.float32)[:, None]
    synthetic = np.array([0, 1, 2, 3, 30, 31, 32, 33], np.float32)[:, None]
    metrics = fidelity.manifold_metrics(real, synthetic, k=3)
    assert metrics.precision == pytest.approx(4 / 8)  # the far cluster lies outside the real balls
    assert metrics.recall == pytest.approx(7 / 10)  # the synthetic balls span [-3, 6]
    assert metrics.density == pytest.approx((3 + 4 + 5 + 6) / (3 * 8))  # real balls holding 0, 1, 2, 3
    assert metrics.coverage == pytest.approx(6 / 10)  # the balls of 0 ... 5 hold a synthetic point
    with pytest.raises(ValueError, match="needs more than 3 points, got 3"):
        fidelity.manifold_metrics(real, synthetic[:3], k=3)


def test_identical_sets_have_full_precision_recall_and_coverage():
    x = np.random.default_rng(5).normal(size=(200, 6))
    metrics = fidelity.manifold_metrics(x, x, k=3)
    assert metrics.precision == metrics.recall == metrics.coverage == 1.0
    assert metrics.density >= 1.0
