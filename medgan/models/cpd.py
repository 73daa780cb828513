"""The study's non-progressive label-projection GAN ("cpd": conditional pixel norm + projection D).

docs/ARCHITECTURE.md, "The GANs of the study": a non-progressive GAN whose generator takes
the labels through *conditional pixel norm* and whose *resnet* discriminator
has one output per label, scored against the multi-hot condition as
``sum(out * labels)``. Trained with WGAN-GP (lambda=10, drift 0.001), Adam
beta1=0, beta2=0.99, generator EMA 0.999 (the training loop's business; this
module only defines the networks).

Architecture
------------

Generator -- the "skip" generator of [SG2] fig. 7 (b), with the styles /
modulated convolutions replaced by [PGGAN]-style equalized convolutions and a
class-conditional pixel norm:

* z [B, Z] is pixel-normalised ([PGGAN] sec. 4.2) once, and this normalised z
  (together with the labels) conditions every `ConditionalPixelNorm`.
* 4x4 input: either a dense layer from the pixel-normalised concatenation
  [z, labels] [B, Z + K] (default, ``const_input=False``; [PGGAN] table 2,
  "Latent vector -> Conv 4x4", with the labels as in the study's
  GAN_cpd/networks.py ``G_paper``: ``pixel_norm(concat([latents, labels]))``
  into the first dense layer) or a learned constant 4x4 tensor
  (``const_input=True``; [SG2] fig. 2 / 7), which sees no input.
* Every block at resolution r (name ``block_{r}``):
  ``layer0`` (dense/const at r=4; for r >= 8 the conv3x3 that upsamples,
  see "Resampling" below),
  ``cpn0``, lrelu(0.2), ``conv1`` (3x3), ``cpn1``, lrelu(0.2).
* Output skips ([SG2] fig. 7 (b)): ``rgb_4 = to_rgb_4(h_4)`` and
  ``rgb_r = upsample2d(rgb_{r/2}) + to_rgb_r(h_r)``; the output is the linear
  ``rgb_R`` (no tanh; real images are in [-1, 1]).
* Labels enter through the dense 4x4 input (above) and through the
  conditional pixel norms: each ``cpn`` computes [gamma, beta] =
  EqualizedDense(2C)([z, labels]) and returns
  ``pixel_norm(h) * (1 + gamma) + beta`` (`layers.ConditionalPixelNorm`).
  The study's cpn reads the raw [z, labels]; here z is the normalised latent,
  which for z ~ N(0, I) differs from it by a factor close to 1.

Discriminator -- the "resnet" discriminator of [SG2] fig. 7 (c) with a
label-projection output (Miyato & Koyama 2018, "cGANs with Projection
Discriminator", eq. 3, with the label vector itself as the class embedding and
no unconditional term):

* ``from_rgb_{R}``: 1x1 conv + lrelu.
* Residual blocks ``block_{r}`` for r = R, R/2, ..., 8 (each halves the
  resolution, r -> r/2; widths nf(r) -> nf(r/2)):
  main = conv3x3 (nf(r)), lrelu, conv3x3 (nf(r/2)) that downsamples, lrelu;
  skip = 2x downsampling + 1x1 conv without bias (nf(r/2));
  h = (main + skip) / sqrt(2)  ([SG2] appendix B / reference code's
  ``resnet`` architecture, which keeps the variance of the sum unchanged).
* ``epilogue_4`` at 4x4: minibatch standard deviation ([PGGAN] sec. 3,
  groups of ``mbstd_group_size``), conv3x3 + lrelu, flatten, dense nf(4) +
  lrelu, dense K (``out``) -> out [B, K];
  ``logits = projection_score(out, labels) = sum_k out_k * labels_k``.
  ``class_logits`` is None (no AC-GAN head).

Conventions
-----------

* Images [B, H, W, C] (NHWC, H = W = resolution R); latents [B, Z];
  labels [B, K] float multi-hot (several 1s allowed; fractional values work
  since every use is linear in the labels).
* Channel widths nf(r) = `layers.feature_maps(r, fmap_base, fmap_max)`.
* All convolutions / dense layers are equalized-LR layers ([PGGAN] sec. 4.1);
  layers followed by lrelu use gain sqrt(2) (`layers.LRELU_GAIN`, [PGGAN]
  convention: the gain sits in the weight scale, not after the activation),
  output layers (to_rgb, skip 1x1, final dense) use gain 1.
* Resampling (``resample``): "box" (default) is the study's GAN_cpd, as
  [PGGAN]: nearest-neighbour 2x upsampling before the 3x3 convolution and on
  the image skips (`pggan.upscale2d`), 3x3 convolution then a 2x2 box
  average to downsample (`pggan.downscale2d`; the reference fuses each pair
  into one strided convolution, which computes the same). "fir" is [SG2]'s
  code (``conv2d_resample``, `layers.conv2d_resample`): a stride-2
  transposed convolution followed by the [1,3,3,1] filter, the filter
  followed by a stride-2 convolution, the image skips through
  `layers.upsample2d` / `layers.downsample2d`. The filter is a low-pass on
  every path to the output; at CPU size (32 px, 1,500 steps) a generator
  built with it draws blobs with nothing finer than about 8 px, which the
  study's resampling does not. Borders use ``pad_mode="edge"`` (constant
  borders of radiographs/CTs produce no dark rim; the reference code pads
  with zeros).
* Compute in ``dtype`` (e.g. bfloat16), parameters in ``param_dtype``
  (float32); the outputs (images, logits) are always float32.
* No batch statistics (no BatchNorm). Caveat: the minibatch-stddev layer of
  the discriminator (required by the contract, as in [PGGAN]/[SG2]) couples
  the examples of one group, so ``D(x)_i`` depends weakly on the other
  examples of its group; WGAN-GP's per-example gradient then includes that
  small cross-example term, exactly as in the reference implementations.
* No randomness inside the networks: the "noise" RNG stream callers pass to
  ``Generator.apply`` is ignored.
* Parameter names are deterministic: G = {``block_{r}``, ``to_rgb_{r}``} for
  r = 4..R (``block_4/layer0`` is the dense or const input); D =
  {``from_rgb_{R}``, ``block_{r}`` for r = R..8, ``epilogue_4``}.

References
----------

* [PGGAN] Karras, Aila, Laine, Lehtinen 2018, "Progressive Growing of GANs for
  Improved Quality, Stability, and Variation" (ICLR).
* [SG2] Karras, Laine, Aittala, Hellsten, Lehtinen, Aila 2020, "Analyzing and
  Improving the Image Quality of StyleGAN" (CVPR), sec. 4 and fig. 7
  (skip generator, resnet discriminator).
* Miyato & Koyama 2018, "cGANs with Projection Discriminator" (ICLR).
* Gulrajani et al. 2017, "Improved Training of Wasserstein GANs" (WGAN-GP).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from medgan.models.layers import (
    LRELU_GAIN,
    ConditionalPixelNorm,
    EqualizedConv,
    EqualizedDense,
    MinibatchStdDev,
    feature_maps,
    pixel_norm,
    projection_score,
    upsample2d,
)
from medgan.models.pggan import downscale2d, upscale2d

Dtype = Any

LRELU_SLOPE = 0.2

__all__ = ["Generator", "Discriminator", "resolutions"]


def _lrelu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, LRELU_SLOPE)


def _check_resolution(resolution: int, name: str) -> None:
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"{name}.resolution must be a power of two >= 8, got {resolution}")


def resolutions(resolution: int) -> list[int]:
    """The block resolutions 4, 8, ..., `resolution` (a power of two >= 8)."""
    _check_resolution(resolution, "resolutions")
    return [2**i for i in range(2, int(math.log2(resolution)) + 1)]


# ----------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------


class GeneratorBlock(nn.Module):
    """One generator block at resolution r ([SG2] fig. 7 (b) main path, conditional pixel norm).

    r = 4 (``first=True``): ``layer0`` is a dense layer x -> 4x4xF
    (or a learned constant 4x4xF with ``const_input``); the input `x` is
    ``pixel_norm([z, labels])`` [B, Z + K] (ignored for the constant input).
    r >= 8: x [B, r/2, r/2, C_in] -> ``layer0`` (conv3x3, F, 2x upsampling
    by `resample`: nearest-neighbour then the convolution, or the stride-2
    transposed convolution then the FIR filter). Then, in both cases:
    ``cpn0`` -> lrelu -> ``conv1`` (conv3x3, F) -> ``cpn1`` -> lrelu.

    Call: x, z [B, Z] (normalised; conditions the cpn), labels [B, K] -> [B, r, r, F] in `dtype`.
    """

    features: int
    first: bool = False
    const_input: bool = False
    resample: str = "box"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, z: jax.Array, labels: jax.Array) -> jax.Array:
        f, dt, pdt = self.features, self.dtype, self.param_dtype
        b = z.shape[0]
        if self.first:
            if self.const_input:
                const = self.param("const", nn.initializers.normal(1.0), (4, 4, f), pdt)
                h = jnp.broadcast_to(const.astype(dt)[None], (b, 4, 4, f))
            else:
                # [PGGAN] uses gain sqrt(2)/4 here; the pixel norm right after
                # makes the scale irrelevant, so the lrelu gain is kept.
                h = EqualizedDense(16 * f, gain=LRELU_GAIN, dtype=dt, param_dtype=pdt, name="layer0")(x)
                h = h.reshape(b, 4, 4, f)
        else:
            fir = self.resample == "fir"
            x = x.astype(dt) if fir else upscale2d(x.astype(dt))
            h = EqualizedConv(f, 3, gain=LRELU_GAIN, up=fir, dtype=dt, param_dtype=pdt, name="layer0")(x)
        h = _lrelu(ConditionalPixelNorm(dtype=dt, param_dtype=pdt, name="cpn0")(h, z, labels))
        h = EqualizedConv(f, 3, gain=LRELU_GAIN, dtype=dt, param_dtype=pdt, name="conv1")(h)
        h = _lrelu(ConditionalPixelNorm(dtype=dt, param_dtype=pdt, name="cpn1")(h, z, labels))
        return h


class Generator(nn.Module):
    """Skip generator with conditional pixel norm ([SG2] fig. 7 (b)).

    Fields:
      resolution: output size R (power of two >= 8).
      num_labels: K, the length of the multi-hot label vector.
      channels: image channels C.
      latent_dim: Z.
      fmap_base, fmap_max: widths nf(r) = `feature_maps(r, fmap_base, fmap_max)`.
      const_input: learned constant 4x4 input ([SG2]) instead of the default
        dense layer from z ([PGGAN]).
      resample: "box" (the study's) or "fir" (module docstring, "Resampling").
      dtype / param_dtype: compute / parameter dtypes.

    Call: ``G.apply(params, z, labels)`` with z [B, Z] (N(0, 1)) and labels
    [B, K] float multi-hot -> images [B, R, R, C] float32, linear output. Extra
    keyword arguments (e.g. ``noise_mode``) are accepted and ignored so the
    training loop can call every model alike. Examples are independent.
    """

    resolution: int
    num_labels: int
    channels: int = 1
    latent_dim: int = 512
    fmap_base: int = 8192
    fmap_max: int = 512
    const_input: bool = False
    resample: str = "box"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def nf(self, res: int) -> int:
        """Channels of the block at `res` px."""
        return feature_maps(res, self.fmap_base, self.fmap_max)

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array, **model_kwargs: Any) -> jax.Array:
        _check_resolution(self.resolution, "Generator")
        if z.ndim != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"Generator: z must be [B, {self.latent_dim}], got {z.shape}")
        if labels.shape != (z.shape[0], self.num_labels):
            raise ValueError(f"Generator: labels must be [{z.shape[0]}, {self.num_labels}], got {labels.shape}")
        dt, pdt = self.dtype, self.param_dtype
        zn = pixel_norm(z.astype(jnp.float32)).astype(dt)  # [PGGAN] sec. 4.2 applied to the latent
        # The first layer's input, as the study's G_paper: the normalised [z, labels] [B, Z + K].
        combo = pixel_norm(jnp.concatenate([z.astype(jnp.float32), labels.astype(jnp.float32)], -1)).astype(dt)
        labels = labels.astype(dt)

        h, rgb = combo, None
        up = upsample2d if self.resample == "fir" else upscale2d  # the image skips' 2x upsampling
        for res in resolutions(self.resolution):
            h = GeneratorBlock(
                self.nf(res),
                first=res == 4,
                const_input=self.const_input,
                resample=self.resample,
                dtype=dt,
                param_dtype=pdt,
                name=f"block_{res}",
            )(h, zn, labels)
            y = EqualizedConv(self.channels, 1, gain=1.0, dtype=dt, param_dtype=pdt, name=f"to_rgb_{res}")(h)
            rgb = y if rgb is None else up(rgb) + y  # [SG2] fig. 7 (b) output skips
        return rgb.astype(jnp.float32)


# ----------------------------------------------------------------------------
# Discriminator
# ----------------------------------------------------------------------------


class DiscriminatorBlock(nn.Module):
    """Residual discriminator block r -> r/2 ([SG2] fig. 7 (c)).

    main: conv3x3 (``conv0``, `features_in`) -> lrelu -> conv3x3 (``conv1``,
    `features_out`) that downsamples -> lrelu; skip: 2x downsampling -> 1x1
    conv without bias (``skip``, `features_out`). `resample` "box": the
    convolution then a 2x2 box average (the study's); "fir": the reference
    code's ``conv2d_resample`` (FIR filter, then the convolution with stride
    2, then the bias);
    out = (main + skip) / sqrt(2).

    Call: x [B, r, r, C] -> [B, r/2, r/2, features_out] in `dtype`.
    """

    features_in: int
    features_out: int
    resample: str = "box"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dt, pdt = self.dtype, self.param_dtype
        x = x.astype(dt)
        fir = self.resample == "fir"
        skip = EqualizedConv(
            self.features_out, 1, gain=1.0, use_bias=False, down=fir, dtype=dt, param_dtype=pdt, name="skip"
        )(x if fir else downscale2d(x))
        h = _lrelu(EqualizedConv(self.features_in, 3, gain=LRELU_GAIN, dtype=dt, param_dtype=pdt, name="conv0")(x))
        h = EqualizedConv(self.features_out, 3, gain=LRELU_GAIN, down=fir, dtype=dt, param_dtype=pdt, name="conv1")(h)
        h = _lrelu(h if fir else downscale2d(h))
        return (h + skip) * jnp.asarray(1.0 / math.sqrt(2.0), dt)


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: minibatch stddev, conv3x3 + lrelu, dense + lrelu, dense -> [B, K].

    [PGGAN] table 2 / [SG2] ``DiscriminatorEpilogue``; the final dense has
    one output per label (``out``), used by the projection score.
    Call: x [B, 4, 4, C] -> out [B, num_outputs] in `dtype`.
    """

    features: int
    num_outputs: int
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dt, pdt = self.dtype, self.param_dtype
        h = MinibatchStdDev(self.mbstd_group_size, self.mbstd_num_channels, dtype=dt, name="mbstd")(x)
        h = _lrelu(EqualizedConv(self.features, 3, gain=LRELU_GAIN, dtype=dt, param_dtype=pdt, name="conv")(h))
        h = h.reshape(h.shape[0], -1)
        h = _lrelu(EqualizedDense(self.features, gain=LRELU_GAIN, dtype=dt, param_dtype=pdt, name="fc")(h))
        return EqualizedDense(self.num_outputs, gain=1.0, dtype=dt, param_dtype=pdt, name="out")(h)


class Discriminator(nn.Module):
    """Resnet discriminator with one output per label and a projection score ([SG2] fig. 7 (c)).

    Fields:
      resolution: input size R (power of two >= 8).
      num_labels: K.
      channels: image channels C.
      fmap_base, fmap_max: widths nf(r) = `feature_maps(r, fmap_base, fmap_max)`.
      mbstd_group_size, mbstd_num_channels: minibatch-stddev layer ([PGGAN]
        sec. 3); the batch must be divisible by min(group_size, B).
      resample: "box" (the study's) or "fir" (module docstring, "Resampling").
      dtype / param_dtype: compute / parameter dtypes.

    Call: ``D.apply(params, images, labels)`` with images [B, R, R, C] and
    labels [B, K] -> ``(logits, None)``: logits [B] float32
    = ``projection_score(out, labels)`` = sum_k out_k * labels_k, with
    out [B, K] the final dense layer (``epilogue_4/out``); labels enter ONLY
    there (so all-zero labels give logits exactly 0). The second element is
    None (no AC-GAN class head). Extra keyword arguments are ignored.
    """

    resolution: int
    num_labels: int
    channels: int = 1
    fmap_base: int = 8192
    fmap_max: int = 512
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    resample: str = "box"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def nf(self, res: int) -> int:
        """Channels of the block at `res` px."""
        return feature_maps(res, self.fmap_base, self.fmap_max)

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array, **model_kwargs: Any) -> tuple[jax.Array, None]:
        _check_resolution(self.resolution, "Discriminator")
        r, c = self.resolution, self.channels
        if images.ndim != 4 or images.shape[1:] != (r, r, c):
            raise ValueError(f"Discriminator: images must be [B, {r}, {r}, {c}], got {images.shape}")
        if labels.shape != (images.shape[0], self.num_labels):
            raise ValueError(
                f"Discriminator: labels must be [{images.shape[0]}, {self.num_labels}], got {labels.shape}"
            )
        dt, pdt = self.dtype, self.param_dtype
        h = EqualizedConv(self.nf(r), 1, gain=LRELU_GAIN, dtype=dt, param_dtype=pdt, name=f"from_rgb_{r}")(
            images.astype(dt)
        )
        h = _lrelu(h)
        for res in reversed(resolutions(r)[1:]):  # R, R/2, ..., 8
            h = DiscriminatorBlock(self.nf(res), self.nf(res // 2), self.resample, dtype=dt, param_dtype=pdt,
                                   name=f"block_{res}")(h)
        out = DiscriminatorEpilogue(
            self.nf(4),
            self.num_labels,
            self.mbstd_group_size,
            self.mbstd_num_channels,
            dtype=dt,
            param_dtype=pdt,
            name="epilogue_4",
        )(h)
        logits = projection_score(out.astype(jnp.float32), labels.astype(jnp.float32))
        return logits, None
