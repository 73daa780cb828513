"""Post-processing of a generated lesion channel, as the mammography study's synthetic dataset was made.

Wu et al. 2020, Sec. 3, "Synthetic dataset", step 4: the generator's lesion
channel is cut down to the one object it draws before it is added to the
base patch, which removes the faint background the network leaves:

1. a binary mask of the channel at `threshold` (0.1);
2. its largest connected component (8-connected);
3. discarded when smaller than `min_area` of the patch area (the paper's
   value was lost; 0.1% by default);
4. dilated by `dilate_px` (5) with a disk;
5. its edge smoothed by a Gaussian `smooth_px` (10) wide (sigma
   smooth_px / 4, truncated at 2 sigma, so the kernel spans smooth_px);
6. multiplied with the lesion channel, and the product added to the base.

Removal runs the same steps on a "negative lesion": the mask is taken where
the channel is below -threshold. Every step runs on the whole batch at once
in scipy.ndimage, with a structuring element that never connects two images.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.ndimage as ndimage


@dataclasses.dataclass(frozen=True)
class PostProcessed:
    """The batch after post-processing; every array is [B, H, W] float32 except `kept`."""

    combined: np.ndarray  # base + lesion * mask, clipped to [-1, 1]
    lesion: np.ndarray  # the lesion channel as added (lesion * mask)
    mask: np.ndarray  # the soft mask in [0, 1]
    kept: np.ndarray  # bool [B]: an object was found and was large enough
    area: np.ndarray  # int [B]: pixels of the largest component before dilation (0: none)


def _disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius


def _per_image(structure_2d: np.ndarray) -> np.ndarray:
    """A [3, k, k] structuring element (its middle slice `structure_2d`) that acts inside each image of a
    [B, H, W] stack only."""
    out = np.zeros((3, *structure_2d.shape), bool)
    out[1] = structure_2d
    return out


def post_process(lesion: np.ndarray, base: np.ndarray, *, threshold: float = 0.1, min_area: float = 0.001,
                 dilate_px: int = 5, smooth_px: float = 10.0, negative: bool = False) -> PostProcessed:
    """The study's post-processing of lesion channels [B, H, W] before adding them to base patches [B, H, W].

    min_area: the smallest kept object, as a fraction of the patch area.
    negative: removal; the object is where the channel is below -threshold.
    """
    lesion = np.asarray(lesion, np.float32)
    base = np.asarray(base, np.float32)
    if lesion.ndim != 3 or lesion.shape != base.shape:
        raise ValueError(f"lesion {lesion.shape} and base {base.shape}: expected the same [B, H, W]")
    b, h, w = lesion.shape
    binary = (-lesion if negative else lesion) > threshold
    labels, count = ndimage.label(binary, structure=_per_image(np.ones((3, 3), bool)))
    largest = np.zeros((b, h, w), bool)
    area = np.zeros(b, np.int64)
    if count:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]  # [count]
        image_of = np.asarray(ndimage.maximum(np.arange(b)[:, None, None] * np.ones_like(labels),
                                              labels, np.arange(1, count + 1)), np.int64)
        order = np.lexsort((-sizes, image_of))  # by image, largest first
        first = np.ones(count, bool)
        first[1:] = image_of[order][1:] != image_of[order][:-1]
        best = order[first]  # the largest component of each image that has one
        area[image_of[best]] = sizes[best]
        chosen = np.zeros(count + 1, bool)
        chosen[best + 1] = True
        largest = chosen[labels]
    kept = area >= min_area * h * w
    largest &= kept[:, None, None]
    dilated = ndimage.binary_dilation(largest, structure=_per_image(_disk(dilate_px))) if dilate_px else largest
    sigma = smooth_px / 4.0
    mask = ndimage.gaussian_filter(dilated.astype(np.float32), sigma=(0, sigma, sigma), truncate=2.0) \
        if smooth_px else dilated.astype(np.float32)
    mask = np.clip(mask, 0.0, 1.0).astype(np.float32)
    added = (lesion * mask).astype(np.float32)
    return PostProcessed(np.clip(base + added, -1.0, 1.0), added, mask, kept, area)
