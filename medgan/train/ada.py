"""Adaptive discriminator augmentation (ADA) for StyleGAN2 on small data sets (pure jnp, jit-able).

[ADA] Karras, Aittala, Hellsten, Laine, Lehtinen, Aila 2020, "Training
Generative Adversarial Networks with Limited Data" (NeurIPS).

Every image D sees — real or generated, in the D and the G step alike — is
augmented with probability `p` per transform and per sample (sec. 2.2-2.3).
As long as each transform is applied with p < 1 (and the chain is invertible
in distribution), the augmentations do not "leak" into the generated images
(sec. 2.2). `p` is tuned during training by an overfitting heuristic
(sec. 3, eq. 1): r_t = E[sign(D_train)], the fraction of real training
images with positive logits mapped to [-1, 1]; p goes up when r_t exceeds
the target 0.6 and down otherwise.

This module implements the study's subset of the pipeline, in the paper's
order (sec. 2.3; parameter distributions from appendix B):

1. "pixel blitting": x-flip; rotation by k * 90 degrees, k uniform in
   {1, 2, 3}; integer translation by up to 1/8 of the image size per axis
   (uniform integers in [-H//8, H//8]), with reflect padding (no wrap-around,
   so no content moves across the border);
2. colour: brightness (add b ~ N(0, 0.2^2)); contrast (scale around the
   per-image mean by c ~ lognormal(0, (0.5 ln 2)^2)).

The general geometric (isotropic/anisotropic scaling, arbitrary rotation,
fractional translation), the luma flip / hue / saturation colour transforms
and the image-space filtering and corruption groups of the paper are not
implemented: the grayscale medical images of the study make hue, saturation
and luma flip meaningless, and "bgc" (blit + geometric + colour) was found
the most useful subset (sec. 2.3).

Shapes: images [B, H, W, C] with H == W (rotations by 90 degrees must keep
the shape); any float dtype (output in the input dtype).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = ["augment", "update_probability", "TRANSFORMS", "BRIGHTNESS_STD", "CONTRAST_LOG_STD", "MAX_TRANSLATION"]

TRANSFORMS = ("xflip", "rot90", "translate", "brightness", "contrast")  # applied in this order

BRIGHTNESS_STD = 0.2  # [ADA] appendix B: brightness b ~ N(0, 0.2)
CONTRAST_LOG_STD = 0.5 * math.log(2.0)  # [ADA] appendix B: contrast c ~ lnN(0, (0.5 ln 2)^2)
MAX_TRANSLATION = 0.125  # [ADA] appendix B: integer translation t ~ U(-0.125, 0.125) of the image size


def _apply_mask(mask: Array, new: Array, old: Array) -> Array:
    """Per-sample select: new where mask[b] else old, bit-exactly. mask [B] bool."""
    return jnp.where(mask[:, None, None, None], new.astype(old.dtype), old)


def _translate(images: Array, dx: Array, dy: Array, max_shift: int) -> Array:
    """Integer translation by (dy, dx) [B] int32 in [-max_shift, max_shift] with reflect padding.

    out[b, i, j] = reflect(images[b])[i - dy, j - dx]; [B, H, W, C] -> same.
    """
    if max_shift == 0:
        return images
    _, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)), mode="reflect")

    def one(img, oy, ox):
        return jax.lax.dynamic_slice(img, (max_shift - oy, max_shift - ox, 0), (h, w, c))

    return jax.vmap(one)(padded, dy, dx)


def augment(rng: Array, images: Array, p: Array | float, *, transforms: tuple[str, ...] = TRANSFORMS) -> Array:
    """ADA augmentation of a batch ([ADA] sec. 2.3, appendix B); each transform per sample with probability p.

    In order: x-flip; rotation by k*90 degrees (k uniform in {1, 2, 3});
    integer translation (up to 1/8 of the size, reflect padding);
    brightness (+N(0, 0.2^2)); contrast ((x - mean) * lognormal(0, (0.5 ln 2)^2)
    + mean, the mean over H, W, C of each image). Each transform draws its own
    Bernoulli(p) mask per sample (u ~ U[0, 1), applied iff u < p), so p = 0
    returns `images` bit-identically and p = 1 applies every transform.

    Args:
      rng: PRNG key.
      images: [B, H, W, C] float, H == W; real images are in [-1, 1] (the
        colour transforms may leave that range, as in the paper).
      p: [] float augmentation probability in [0, 1]; may be a traced value
        (one compilation serves all p).
      transforms: the subset of `TRANSFORMS` to use (static; default all, in
        the fixed order above). Each transform has its own random draws, so
        a subset applies exactly the same operations as the full chain.
    Returns: [B, H, W, C] in images.dtype.
    """
    images = jnp.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"augment expects [B, H, W, C], got shape {images.shape}")
    b, h, w, _ = images.shape
    if h != w:
        raise ValueError(f"augment needs square images for 90-degree rotations, got {images.shape}")
    unknown = set(transforms) - set(TRANSFORMS)
    if unknown:
        raise ValueError(f"unknown transforms {sorted(unknown)}; choose from {TRANSFORMS}")
    p = jnp.asarray(p, jnp.float32)
    keys = jax.random.split(rng, 10)

    def mask(key):
        return jax.random.uniform(key, (b,)) < p

    x = images
    # 1. x-flip (horizontal mirror).
    if "xflip" in transforms:
        x = _apply_mask(mask(keys[0]), x[:, :, ::-1, :], x)
    # 2. rotation by k * 90 degrees (counter-clockwise), k in {1, 2, 3}.
    if "rot90" in transforms:
        k = jax.random.randint(keys[1], (b,), 1, 4)[:, None, None, None]
        rots = [jnp.rot90(x, kk, axes=(1, 2)) for kk in (1, 2, 3)]
        rotated = jnp.where(k == 1, rots[0], jnp.where(k == 2, rots[1], rots[2]))
        x = _apply_mask(mask(keys[2]), rotated, x)
    # 3. integer translation, reflect padding.
    if "translate" in transforms:
        max_shift = int(math.floor(MAX_TRANSLATION * h))
        dy = jax.random.randint(keys[3], (b,), -max_shift, max_shift + 1)
        dx = jax.random.randint(keys[4], (b,), -max_shift, max_shift + 1)
        x = _apply_mask(mask(keys[5]), _translate(x, dx, dy, max_shift), x)
    # 4. brightness: x + b, b ~ N(0, 0.2^2).
    if "brightness" in transforms:
        bright = BRIGHTNESS_STD * jax.random.normal(keys[6], (b, 1, 1, 1), jnp.float32)
        x = _apply_mask(mask(keys[7]), x.astype(jnp.float32) + bright, x)
    # 5. contrast: (x - mean) * c + mean, c ~ lognormal(0, (0.5 ln 2)^2).
    if "contrast" in transforms:
        x32 = x.astype(jnp.float32)
        c = jnp.exp(CONTRAST_LOG_STD * jax.random.normal(keys[8], (b, 1, 1, 1), jnp.float32))
        mean = jnp.mean(x32, axis=(1, 2, 3), keepdims=True)
        x = _apply_mask(mask(keys[9]), (x32 - mean) * c + mean, x)
    return x


def update_probability(
    p: Array | float,
    real_sign_mean: Array | float,
    *,
    target: float = 0.6,
    batch_size: int,
    interval: int,
    speed_images: int = 500_000,
) -> Array:
    """ADA's adjustment of p ([ADA] sec. 3, eq. 1 and the paragraph after it).

    r_t = E[sign(D(x_real))] over the real images seen since the last update
    (`real_sign_mean`, computed by the caller from the D step's real logits).
    Every `interval` minibatches of `batch_size` images:

        p <- clip(p + sign(r_t - target) * batch_size * interval / speed_images, 0, 1),

    so p can move from 0 to 1 in `speed_images` images (500k in the paper;
    target 0.6, interval 4). sign(0) = 0: p stays when r_t == target.

    Returns: new p, [] float32 in [0, 1]. Pure jnp, jit-able.
    """
    p = jnp.asarray(p, jnp.float32)
    r_t = jnp.asarray(real_sign_mean, jnp.float32)
    step = batch_size * interval / speed_images
    return jnp.clip(p + jnp.sign(r_t - target) * jnp.float32(step), 0.0, 1.0)
