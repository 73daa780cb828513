"""A 2-D map of real and synthetic images in the judge's feature space (t-SNE).

Where synthetic images fall among real ones, per label combination, is what a
reader of the study's t-SNE figures looks at: synthetic points mixed into each
real cluster, or islands of their own (images the GAN invented), or a few
clusters only (mode collapse). t-SNE (van der Maaten and Hinton 2008) from
scikit-learn, after PCA to 50 dimensions as its documentation advises for
dense high-dimensional features.
"""

from __future__ import annotations

import numpy as np


def embed_2d(features: np.ndarray, *, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """features [N, D] -> [N, 2] t-SNE coordinates (N >= 5; perplexity capped at (N - 1) / 3)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 5:
        raise ValueError(f"a t-SNE map needs features [N >= 5, D], got shape {features.shape}")
    components = min(50, features.shape[1], len(features) - 1)
    reduced = PCA(n_components=components, random_state=seed).fit_transform(features)
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (len(features) - 1) / 3), init="pca",
                learning_rate="auto", random_state=seed)
    return tsne.fit_transform(reduced).astype(np.float32)


def neighbour_agreement(points: np.ndarray, groups: np.ndarray, k: int = 5) -> float:
    """The share of each point's k nearest other points (euclidean) that are in its group, averaged.

    On a map of real and synthetic points with groups = is_synthetic, 0.5 is
    complete mixing (for equal numbers) and 1.0 complete separation.
    """
    points, groups = np.asarray(points, np.float64), np.asarray(groups)
    distance = np.sum((points[:, None] - points[None]) ** 2, axis=-1)
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1)[:, :k]
    return float(np.mean(groups[nearest] == groups[:, None]))
