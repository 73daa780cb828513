"""Occlusion maps: where in an image does a classifier find each class?

The study told label overfitting from better images by asking where the
synthetic-trained classifier looks (occlusion sensitivity, Zeiler and Fergus
2014, "Visualizing and Understanding Convolutional Networks", sec. 4.2): grey
out one square patch at a time and record how much the binary cross-entropy
of each class rises. A classifier that learned the finding loses it when the
finding is covered; one that learned something the GAN attached to the label
loses it elsewhere. On phantoms the finding's pixels are known
(`phantoms.finding_region`), so the share of each map inside the region is a
number, not an impression (`share_inside`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def patch_origins(size: int, patch: int, stride: int) -> list[int]:
    """Top-left corners along one axis of an image `size` pixels wide; the last patch touches the far edge."""
    if not 0 < patch <= size or stride < 1:
        raise ValueError(f"occlusion patch {patch} px with stride {stride} does not fit an image of {size} px")
    origins = list(range(0, size - patch + 1, stride))
    if origins[-1] != size - patch:
        origins.append(size - patch)
    return origins


def _bce(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-class binary cross-entropy [..., K] of logits against labels in {0, 1}."""
    return jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))


@functools.partial(jax.jit, static_argnames=("logits_fn", "patch"))
def _occlusion_rise(logits_fn, images, labels, origins, fill, *, patch):
    """[N, P, K] rise in BCE per class when each of the P patches (origins [P, 2], (y, x)) is filled.

    One compiled forward pass, looped over the patches (`lax.map`), so the
    program does not grow with their number.
    """
    base = _bce(logits_fn(images), labels)  # [N, K]
    rows = jnp.arange(images.shape[1])[:, None]
    columns = jnp.arange(images.shape[2])[None, :]

    def occluded(origin):
        y, x = origin[0], origin[1]
        window = (rows >= y) & (rows < y + patch) & (columns >= x) & (columns < x + patch)  # [H, W]
        return _bce(logits_fn(jnp.where(window[None, :, :, None], fill, images)), labels) - base

    return jnp.moveaxis(jax.lax.map(occluded, origins), 0, 1)


def occlusion_maps(
    logits_fn: Callable[[jax.Array], jax.Array],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    patch: int,
    stride: int,
    fill: float = 0.0,
    batch: int = 16,
) -> np.ndarray:
    """[N, H, W, K] per pixel, the mean rise in BCE of each class over the patches that cover it.

    logits_fn: images [B, H, W, C] -> logits [B, K] (a trained classifier,
    inference mode). images [N, H, W, C] in the classifier's input range,
    labels [N, K] in {0, 1}; the patch is filled with `fill` (0: mid-grey in
    medgan's [-1, 1] images). Positive values mark pixels the prediction of
    the true label depends on.
    """
    images, labels = np.asarray(images, np.float32), np.asarray(labels, np.float32)
    if images.ndim != 4 or labels.shape[0] != images.shape[0] or labels.ndim != 2:
        raise ValueError(f"expected images [N, H, W, C] and labels [N, K], got {images.shape} and {labels.shape}")
    height, width = images.shape[1:3]
    origins = tuple((y, x) for y in patch_origins(height, patch, stride) for x in patch_origins(width, patch, stride))
    total = np.zeros((len(images), height, width, labels.shape[1]), np.float64)
    cover = np.zeros((height, width), np.float64)
    for y, x in origins:
        cover[y : y + patch, x : x + patch] += 1
    batch = min(batch, len(images))
    for start in range(0, len(images), batch):
        chunk = slice(start, start + batch)
        padding = batch - len(images[chunk])  # the last chunk is padded: one program for every chunk
        rise = _occlusion_rise(logits_fn, jnp.asarray(np.pad(images[chunk], [(0, padding)] + [(0, 0)] * 3)),
                               jnp.asarray(np.pad(labels[chunk], [(0, padding), (0, 0)])),
                               jnp.asarray(origins, jnp.int32), jnp.float32(fill), patch=patch)
        rise = np.asarray(rise)[: batch - padding]
        for p, (y, x) in enumerate(origins):
            total[start : start + batch, y : y + patch, x : x + patch] += rise[:, p, None, None, :]
    return (total / cover[None, :, :, None]).astype(np.float32)


def map_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[K] per class, the Pearson correlation over pixels of two classifiers' maps a, b [N, H, W, K], mean over images.

    Images where either map is constant for a class are left out of that
    class's mean (NaN when none is left).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a = a.reshape(a.shape[0], -1, a.shape[-1]) - a.reshape(a.shape[0], -1, a.shape[-1]).mean(1, keepdims=True)
    b = b.reshape(b.shape[0], -1, b.shape[-1]) - b.reshape(b.shape[0], -1, b.shape[-1]).mean(1, keepdims=True)
    norm = np.sqrt((a**2).sum(1) * (b**2).sum(1))  # [N, K]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(norm > 0, (a * b).sum(1) / norm, np.nan)
    counts = np.sum(~np.isnan(r), axis=0)
    return np.where(counts > 0, np.nansum(r, axis=0) / np.maximum(counts, 1), np.nan)


def share_inside(maps: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """[N] the share of each map's positive attribution that falls inside its region.

    maps [N, H, W] (one class), regions [N, H, W] bool (where the finding is
    drawn). An image whose map has no positive attribution gives NaN.
    """
    positive = np.clip(np.asarray(maps, np.float64), 0, None)
    total = positive.sum(axis=(1, 2))
    inside = np.where(np.asarray(regions, bool), positive, 0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)
