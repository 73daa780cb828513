"""The contextual lesion GAN of the mammography study: a U-net that adds a lesion to tissue, or removes one.

Wu, Wu, Lotter, "Synthesizing lesions using contextual GANs improves breast
cancer classification on mammograms" (MIDL 2020), Sec. 2, Fig. 2. Instead of
drawing a whole image, the generator reads a patch of breast tissue and draws
only a **lesion channel**, which is added to the patch: the network has to
learn the lesion, not the tissue around it.

Generator (`ContextualGenerator`):

* Encoder: blocks from `base_filters` filters, doubling per block while the
  resolution halves, down to 4 x 4. Each block is concat(input, a random
  scalar in [-1, 1] broadcast over the block's input) -> 3x3 conv, stride 2
  -> LeakyReLU 0.2. The scalars are how one input patch gives many lesions.
* Self-attention ([SAGAN]) where the encoder and the decoder pass through
  `attention_resolution` (32 x 32 in the study).
* Centre: the 4 x 4 encoding -> 3x3 conv to `centre_filters` (2,048 in the
  study) -> a 1 x 1 x `embedding` (4) code, broadcast back to 4 x 4.
* Decoder: blocks of concat(input, encoder skip at that size, scalar) ->
  nearest 2x upsampling -> two 3x3 convs with ReLU, up to the patch size.
* A final 1x1 conv to one channel, the border (`border` px at the full
  resolution, 10 in the study) set to zero, clipped to [-1, 1]: the lesion.
* Output [B, R, R, 3]: [lesion, input, input + lesion] (`LESION`, `INPUT`,
  `COMBINED`). Removal is the same network trained to draw a negative lesion.

Discriminator (`ContextualDiscriminator`): the encoder with 8x the filters,
stride 2 replaced by 3x3 conv (stride 1) -> LeakyReLU -> 2x2 max pooling,
spectral normalisation ([SN]) on every layer, self-attention at the same
size, and four logits per image, [real malignant, fake, benign, normal]
(`D_CLASSES`), for the semi-supervised loss ([SSGAN]). It reads one channel:
the combined image of a fake, the patch itself of a real.

Progressive growing ([PGGAN] Sec. 2): the study trains at 128 px first, then
fades in 256 px over 3,000 iterations. As in `models/pggan.py`, both networks
are built for the final resolution R and take and give [B, R, R, C] at every
phase; the module field `stage` (R / 2 or R; 0 = R) selects the phase and the
call argument `alpha` the weight of the newest layers:

* G at stage R/2 reads the input average-pooled to R/2 (entering through a
  1x1 `from_image` conv) and its lesion is upsampled (nearest) to R; the
  input channel it returns is that low-passed input, so
  combined = input + lesion holds at every phase.
* G at stage R with alpha < 1: the encoder's R/2 features are
  lerp(from_image_{R/2}(pool(x)), block_R(x), alpha) and the lesion is
  lerp(up(to_image_{R/2}(d_{R/2})), to_image_R(d_R), alpha); D mirrors it,
  and low-passes its input the same way (lerp(up(pool(x)), x, alpha)).

`init` creates the parameters of both phases whatever `stage`, so growing is
a change of `stage` with every weight kept, and `alpha` is traced: one
compiled step per phase.

References: [SAGAN] Zhang et al. 2019, Sec. 3 (attention with a learnt gate
gamma initialised to 0). [SN] Miyato et al. 2018. [SSGAN] Odena 2016.
[PGGAN] Karras et al. 2018, Sec. 2 and Fig. 2.

Images are NHWC float32 in [-1, 1].
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from medgan.models.pggan import downscale2d, upscale2d

LESION, INPUT, COMBINED = 0, 1, 2  # channels of the generator's output
D_CLASSES = ("real_malignant", "fake", "benign", "normal")  # the discriminator's four logits, in order
LRELU_SLOPE = 0.2

Dtype = Any


@dataclasses.dataclass(frozen=True)
class ContextualSpec:
    """The architecture of one contextual GAN (hashable; recorded with its checkpoints)."""

    resolution: int = 256
    base_filters: int = 16
    max_filters: int = 2048
    centre_filters: int = 2048
    embedding: int = 4
    attention_resolution: int = 32
    border: int = 10  # px of the lesion channel set to zero, at `resolution`
    d_filter_factor: int = 8
    spectral_norm: bool = True  # on every layer of D ([SN]); off leaves DRAGAN as D's only constraint

    def __post_init__(self):
        r = self.resolution
        if r < 16 or r & (r - 1):
            raise ValueError(f"contextual GAN resolution {r}: a power of two >= 16")
        if not 2 * self.border < r // 2:
            raise ValueError(f"border {self.border} px leaves nothing of a {r // 2} px patch")

    def filters(self, size: int, factor: int = 1) -> int:
        """Features of the encoder's output at `size` px: base at R/2, doubling per halving, capped."""
        return min(self.max_filters * factor, factor * self.base_filters * max(1, (self.resolution // 2) // size))

    def stage_of(self, stage: int) -> int:
        s = self.resolution if stage == 0 else stage
        if s not in (self.resolution, self.resolution // 2):
            raise ValueError(f"stage {stage}: 0, {self.resolution // 2} or {self.resolution}")
        return s

    def scalar_count(self) -> int:
        """Random scalars one generator call takes per image: one per encoder and per decoder block."""
        blocks = (self.resolution // 4).bit_length() - 1  # R -> 4 in halvings
        return 2 * blocks


def _lerp(a: jax.Array, b: jax.Array, t) -> jax.Array:
    t = jnp.asarray(t, jnp.float32)
    return (1.0 - t) * a + t * b


def _with_scalar(x: jax.Array, scalar: jax.Array) -> jax.Array:
    """x [B, H, W, C] with the per-image scalar [B] broadcast as one more channel -> [B, H, W, C + 1]."""
    plane = jnp.broadcast_to(scalar.astype(x.dtype)[:, None, None, None], (*x.shape[:3], 1))
    return jnp.concatenate([x, plane], axis=-1)


def _border_mask(size: int, border: int) -> jax.Array:
    """[size, size, 1]: 0 within `border` px of the edge, 1 inside."""
    inside = (jnp.arange(size) >= border) & (jnp.arange(size) < size - border)
    return (inside[:, None] & inside[None, :]).astype(jnp.float32)[..., None]


class _Conv(nn.Module):
    """A conv, spectrally normalised when `spectral` ([SN]); `update_stats` runs one power iteration."""

    features: int
    kernel: int = 3
    strides: int = 1
    spectral: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        conv = nn.Conv(self.features, (self.kernel, self.kernel), strides=self.strides, padding="SAME",
                       dtype=self.dtype)
        if self.spectral:
            return nn.SpectralNorm(conv, name="sn")(x, update_stats=update_stats)
        return conv(x)


class SelfAttention(nn.Module):
    """[SAGAN] Sec. 3: x + gamma o, o = v softmax(q^T k) over all positions; gamma starts at 0.

    q and k have C/8 channels, v C/2 (BigGAN's choice, halving the memory of
    v), then a 1x1 conv back to C. [B, H, W, C] -> the same.
    """

    spectral: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        b, h, w, c = x.shape
        kw = dict(kernel=1, spectral=self.spectral, dtype=self.dtype)
        q = _Conv(max(1, c // 8), name="query", **kw)(x, update_stats).reshape(b, h * w, -1)
        k = _Conv(max(1, c // 8), name="key", **kw)(x, update_stats).reshape(b, h * w, -1)
        v = _Conv(max(1, c // 2), name="value", **kw)(x, update_stats).reshape(b, h * w, -1)
        attention = jax.nn.softmax(jnp.einsum("bqd,bkd->bqk", q, k).astype(jnp.float32), axis=-1)
        o = jnp.einsum("bqk,bkd->bqd", attention.astype(v.dtype), v).reshape(b, h, w, -1)
        o = _Conv(c, name="out", **kw)(o, update_stats)
        gamma = self.param("gamma", nn.initializers.zeros, ())
        return x + gamma.astype(x.dtype) * o


class ContextualGenerator(nn.Module):
    """The lesion U-net (module docstring). Call: images [B, R, R, 1], scalars [B, spec.scalar_count()] in [-1, 1],
    alpha -> [B, R, R, 3] = [lesion, input, input + lesion]."""

    spec: ContextualSpec
    stage: int = 0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array, scalars: jax.Array, alpha=1.0) -> jax.Array:
        spec, R = self.spec, self.spec.resolution
        s = spec.stage_of(self.stage)
        if images.shape[1:] != (R, R, 1):
            raise ValueError(f"images {images.shape}: expected [B, {R}, {R}, 1]")
        if scalars.shape != (images.shape[0], spec.scalar_count()):
            raise ValueError(f"scalars {scalars.shape}: expected [{images.shape[0]}, {spec.scalar_count()}]")
        scalar = iter(jnp.moveaxis(scalars, 1, 0))
        conv = lambda f, name, **kw: _Conv(f, name=name, dtype=self.dtype, **kw)  # noqa: E731

        def encode(x, size):  # size -> size / 2
            y = nn.leaky_relu(conv(spec.filters(size // 2), f"enc_{size}", strides=2)(_with_scalar(x, next(scalar))),
                              LRELU_SLOPE)
            if size // 2 == spec.attention_resolution:
                y = SelfAttention(name=f"enc_attention_{size // 2}", dtype=self.dtype)(y)
            return y

        def decode(x, skip, size):  # size / 2 -> size
            y = upscale2d(_with_scalar(jnp.concatenate([x, skip], -1), next(scalar)))
            y = nn.relu(conv(spec.filters(size), f"dec_{size}_a")(y))
            y = nn.relu(conv(spec.filters(size), f"dec_{size}_b")(y))
            if size == spec.attention_resolution:
                y = SelfAttention(name=f"dec_attention_{size}", dtype=self.dtype)(y)
            return y

        constant = isinstance(alpha, (int, float)) and alpha == 1
        grown = s == R or self.is_initializing()  # init builds both phases' parameters whatever the stage
        low = downscale2d(images)  # the input of the R/2 phase
        from_low = conv(spec.filters(R // 2), f"from_image_{R // 2}", kernel=1)(low)
        if grown:
            full = encode(images, R)
            h = full if constant else _lerp(from_low, full, alpha)
        else:
            h, _ = from_low, next(scalar)  # the R block's scalar is unused at R/2: the others keep their slots
        skips = {R // 2: h}
        size = R // 2
        while size > 4:
            h = encode(h, size)
            size //= 2
            skips[size] = h
        centre = nn.leaky_relu(conv(spec.centre_filters, "centre")(h), LRELU_SLOPE)
        code = nn.Dense(spec.embedding, name="embedding", dtype=self.dtype)(centre.reshape(centre.shape[0], -1))
        d = jnp.broadcast_to(code[:, None, None, :], (code.shape[0], 4, 4, spec.embedding))
        size = 8
        while size <= R // 2:
            d = decode(d, skips[size // 2], size)
            size *= 2
        lesion_low = upscale2d(conv(1, f"to_image_{R // 2}", kernel=1)(d))  # [B, R, R, 1]
        lesion, shown = lesion_low, upscale2d(low)
        if grown:
            lesion_full = conv(1, f"to_image_{R}", kernel=1)(decode(d, skips[R // 2], R))
            if s == R:
                lesion = lesion_full if constant else _lerp(lesion_low, lesion_full, alpha)
                shown = images if constant else _lerp(shown, images, alpha)
        lesion = jnp.clip(lesion.astype(jnp.float32) * _border_mask(R, spec.border), -1.0, 1.0)
        shown = shown.astype(jnp.float32)
        return jnp.concatenate([lesion, shown, shown + lesion], axis=-1)


class ContextualDiscriminator(nn.Module):
    """The 4-way critic (module docstring). Call: images [B, R, R, 1], alpha, update_stats -> logits [B, 4]."""

    spec: ContextualSpec
    stage: int = 0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array, alpha=1.0, update_stats: bool = False) -> jax.Array:
        spec, R = self.spec, self.spec.resolution
        s = spec.stage_of(self.stage)
        if images.shape[1:] != (R, R, 1):
            raise ValueError(f"images {images.shape}: expected [B, {R}, {R}, 1]")
        factor, sn = spec.d_filter_factor, spec.spectral_norm
        images = images.astype(self.dtype)

        def block(x, size):  # size -> size / 2
            y = _Conv(spec.filters(size // 2, factor), spectral=sn, name=f"block_{size}", dtype=self.dtype)(
                x, update_stats)
            y = nn.max_pool(nn.leaky_relu(y, LRELU_SLOPE), (2, 2), strides=(2, 2))
            if size // 2 == spec.attention_resolution:
                y = SelfAttention(spectral=sn, name=f"attention_{size // 2}", dtype=self.dtype)(y, update_stats)
            return y

        low = downscale2d(images)
        from_low = nn.leaky_relu(_Conv(spec.filters(R // 2, factor), kernel=1, spectral=sn,
                                       name=f"from_image_{R // 2}", dtype=self.dtype)(low, update_stats), LRELU_SLOPE)
        constant = isinstance(alpha, (int, float)) and alpha == 1
        h = from_low
        if s == R or self.is_initializing():
            # pool(lerp(up(pool x), x, alpha)) = pool x: the low branch reads the same pooled input.
            full = block(images if constant else _lerp(upscale2d(low), images, alpha), R)
            if s == R:
                h = full if constant else _lerp(from_low, full, alpha)
        size = R // 2
        while size > 4:
            h = block(h, size)
            size //= 2
        h = h.reshape(h.shape[0], -1)
        dense = nn.Dense(len(D_CLASSES), name="logits", dtype=self.dtype)
        if sn:
            return nn.SpectralNorm(dense, name="logits_sn")(h, update_stats=update_stats).astype(jnp.float32)
        return dense(h).astype(jnp.float32)


def generator_scalars(rng: jax.Array, batch: int, spec: ContextualSpec) -> jax.Array:
    """The random scalars of one generator call: [batch, spec.scalar_count()] uniform in [-1, 1]."""
    return jax.random.uniform(rng, (batch, spec.scalar_count()), jnp.float32, -1.0, 1.0)
