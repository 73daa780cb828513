"""Fidelity of synthetic images in a classifier's feature space: FD, KID, precision / recall, density / coverage.

The Fréchet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two
Time-Scale Update Rule Converge to a Local Nash Equilibrium", eq. 6) models
each image set's features as a Gaussian and measures

    d^2 = ||mu_r - mu_s||^2 + Tr(S_r + S_s - 2 (S_r S_s)^(1/2)).

No Inception weights can be downloaded here, and ImageNet features are a poor
judge of radiographs anyway, so the features are the pooled 1024-d (DenseNet)
or 2048-d (ResNet) features of the classifier trained on the REAL fold
(`classifiers.*.features`), the network the privacy audit also uses.
Values are therefore comparable within one benchmark point (same classifier),
not across points or with published FIDs.

Statistics are accumulated on the devices (sum and sum of outer products in
float32 per batch, added up on the host in float64), one transfer per batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from medgan.eval.neighbours import count_within, nearest_neighbours


@dataclasses.dataclass
class FeatureStatistics:
    """Running first and second moments of D-dimensional features."""

    dim: int
    count: float = 0.0
    total: np.ndarray | None = None  # [D] float64
    outer: np.ndarray | None = None  # [D, D] float64

    def __post_init__(self):
        if self.total is None:
            self.total = np.zeros(self.dim, np.float64)
        if self.outer is None:
            self.outer = np.zeros((self.dim, self.dim), np.float64)

    def add(self, count, total, outer) -> None:
        """Adds a batch's (number of rows, sum [D], sum of outer products [D, D])."""
        self.count += float(count)
        self.total += np.asarray(total, np.float64)
        self.outer += np.asarray(outer, np.float64)

    def mean_and_covariance(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu [D], unbiased covariance [D, D]); needs at least 2 rows."""
        if self.count < 2:
            raise ValueError(f"feature statistics of {self.count:.0f} images: need at least 2")
        mu = self.total / self.count
        cov = (self.outer - self.count * np.outer(mu, mu)) / (self.count - 1)
        return mu, cov


@jax.jit
def batch_moments(features: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(count [], sum [D], sum of outer products [D, D]) of the rows of features [B, D] where mask [B]."""
    f = features.astype(jnp.float32) * mask[:, None].astype(jnp.float32)
    return jnp.sum(mask.astype(jnp.float32)), jnp.sum(f, axis=0), f.T @ f


def accumulate(
    batches: Iterable[Mapping[str, jax.Array]],
    features_fn: Callable[[jax.Array], jax.Array],
    dim: int,
) -> FeatureStatistics:
    """Feature statistics of every masked-in image of `batches` ({"image", optional "mask"})."""
    stats = FeatureStatistics(dim)
    for batch in batches:
        features = features_fn(batch["image"])
        mask = batch.get("mask")
        if mask is None:
            mask = jnp.ones(features.shape[:1], bool)
        stats.add(*jax.device_get(batch_moments(features, mask)))
    return stats


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """d^2 = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2))  (Heusel et al. 2017, eq. 6).

    Tr((S1 S2)^(1/2)) is computed as the sum of the square roots of the
    eigenvalues of the symmetric PSD matrix S1^(1/2) S2 S1^(1/2), which has
    the same eigenvalues as S1 S2 — stable where `sqrtm(S1 @ S2)` returns
    complex noise for rank-deficient covariances (fewer images than features).
    Inputs: mu [D], cov [D, D]. Returns a float >= 0 (clipped at 0 against
    rounding).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != mu1.shape * 2:
        raise ValueError(f"shapes differ: mu {mu1.shape} vs {mu2.shape}, cov {cov1.shape} vs {cov2.shape}")
    root1 = _sqrt_psd(cov1)
    middle = root1 @ cov2 @ root1
    trace_sqrt = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None))))
    value = float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt)
    return max(value, 0.0)


def frechet_distance_of(real: FeatureStatistics, synthetic: FeatureStatistics) -> float:
    """Fréchet distance between two accumulated feature sets."""
    return frechet_distance(*real.mean_and_covariance(), *synthetic.mean_and_covariance())


def kernel_distance(
    real: np.ndarray, synthetic: np.ndarray, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs", sec. 4): (mean, std over subsets).

    The unbiased estimate of MMD^2 with the cubic polynomial kernel
    k(x, y) = (x.y / D + 1)^3, averaged over `subsets` random subsets of
    min(subset_size, N, M) rows of each set: unbiased, so its mean is near
    0 for two samples of one distribution (and may dip below it), unlike FD.
    real [N, D], synthetic [M, D].
    """
    real, synthetic = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    if real.ndim != 2 or synthetic.ndim != 2 or real.shape[1] != synthetic.shape[1]:
        raise ValueError(f"expected [N, D] and [M, D] features, got {real.shape} and {synthetic.shape}")
    n = min(subset_size, len(real), len(synthetic))
    if n < 2:
        raise ValueError(f"KID needs 2 or more images per set, got {len(real)} real and {len(synthetic)} synthetic")
    rng, dim = np.random.default_rng(seed), real.shape[1]
    estimates = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), n, replace=False)]
        y = synthetic[rng.choice(len(synthetic), n, replace=False)]
        kxx, kyy, kxy = ((a @ b.T / dim + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        estimates.append(within - 2 * kxy.mean())
    return float(np.mean(estimates)), float(np.std(estimates))


@dataclasses.dataclass(frozen=True)
class ManifoldMetrics:
    """Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020).

    precision: share of synthetic images inside the real k-NN manifold (realism);
    recall: share of real images inside the synthetic one (diversity);
    density: how many real balls hold a synthetic image, / k, averaged (can exceed 1);
    coverage: share of real balls that hold at least one synthetic image.
    """

    precision: float
    recall: float
    density: float
    coverage: float
    k: int


def _knn_radii(points: np.ndarray, k: int) -> np.ndarray:
    """[N] each point's distance to its k-th nearest other point (euclidean)."""
    if len(points) <= k:
        raise ValueError(f"a k-NN manifold with k = {k} needs more than {k} points, got {len(points)}")
    return nearest_neighbours(points, points, k + 1, metric="euclidean").distances[:, k]


def manifold_metrics(real: np.ndarray, synthetic: np.ndarray, k: int = 3) -> ManifoldMetrics:
    """Precision, recall, density and coverage with k-NN balls (k = 3, the papers' choice for these sizes).

    real [N, D], synthetic [M, D] features; balls are closed and euclidean;
    each point's own distance 0 is not its first neighbour.
    """
    real, synthetic = np.asarray(real, np.float32), np.asarray(synthetic, np.float32)
    real_radii, synthetic_radii = _knn_radii(real, k), _knn_radii(synthetic, k)
    held_by_real, covered = count_within(synthetic, real, real_radii)
    held_by_synthetic, _ = count_within(real, synthetic, synthetic_radii)
    return ManifoldMetrics(
        precision=float(np.mean(held_by_real > 0)),
        recall=float(np.mean(held_by_synthetic > 0)),
        density=float(np.sum(held_by_real) / (k * len(synthetic))),
        coverage=float(np.mean(covered)),
        k=k,
    )
