"""Class-conditional StyleGAN2 (skip generator, resnet discriminator), flax.linen, NHWC.

The study's third GAN (docs/ARCHITECTURE.md, "The GANs of the study"): StyleGAN2 trained
with the non-saturating loss, lazy R1 and path-length regularisation, plus
adaptive discriminator augmentation (`medgan.train.ada`), the standard for
small data sets. Conditioning follows StyleGAN2-ADA: the label vector is
embedded into the mapping network of G, and D uses a projection head against
a label embedding ("cmap").

Conventions (the GAN model contract of `gans.py`):

* Images are [B, R, R, C] (NHWC), linear output (no tanh); real images are in
  [-1, 1]. Latents z are [B, Z] ~ N(0, I); labels are [B, K] float multi-hot.
* `dtype` is the compute dtype (e.g. jnp.bfloat16); parameters are float32
  (`param_dtype`); every public output is float32.
* No batch statistics: each example is processed independently (except the
  minibatch-stddev layer of D, which mixes a group of G examples by design,
  as in [PGGAN]/[SG2]).
* Noise uses the "noise" RNG stream (`layers.NoiseInput`); without it (or with
  `noise_mode="const"`) the noise is zero, i.e. deterministic output.
* Resampling uses the [1,3,3,1] FIR filter of [SG2] in the order of the
  reference code's ``conv2d_resample`` (`layers.conv2d_resample`): a
  convolution that upsamples is a stride-2 transposed convolution followed by
  the filter, one that downsamples is the filter followed by a stride-2
  convolution, so no convolution runs at the higher resolution of the two.
  Borders use the default `pad_mode="edge"` (of `layers.upsample2d` /
  `layers.downsample2d` too): the constant dark borders of radiographs and CTs
  then stay constant instead of getting the dark (zero-padded) rim of the
  reference implementation.
* Activations are leaky ReLU (slope 0.2) multiplied by `LRELU_GAIN` = sqrt(2)
  after the bias, as the reference `bias_act` ("lrelu" with def_gain sqrt 2),
  so equalized-LR layers are created with gain 1.

References:

* [SG2] Karras, Laine, Aittala, Hellsten, Lehtinen, Aila 2020, "Analyzing and
  Improving the Image Quality of StyleGAN" (CVPR): sec. 2.2 (fig. 2) weight
  demodulation, eq. 1-3; sec. 3.2 path-length regularisation, eq. 4; sec. 4
  (fig. 7) skip generator / residual discriminator; appendix B.
* [ADA] Karras, Aittala, Hellsten, Laine, Lehtinen, Aila 2020, "Training
  Generative Adversarial Networks with Limited Data" (NeurIPS): appendix C /
  the official code's conditional mapping network (label embedding
  normalised and concatenated to z) and projection discriminator
  (``(out * cmap).sum(1) / sqrt(cmap_dim)``, after Miyato & Koyama 2018).
* [StyleGAN] Karras, Laine, Aila 2019, "A Style-Based Generator Architecture
  for GANs" (CVPR): sec. 2 mapping network (8 layers, lr x0.01), sec. 3.2
  style mixing (one w per layer), sec. 5.3 truncation trick.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from medgan.models.layers import (
    LRELU_GAIN,
    EqualizedConv,
    EqualizedDense,
    MinibatchStdDev,
    ModulatedConv,
    NoiseInput,
    feature_maps,
    pixel_norm,
    upsample2d,
)

Dtype = Any

__all__ = [
    "MappingNetwork",
    "SynthesisLayer",
    "ToRGB",
    "SynthesisNetwork",
    "Generator",
    "Discriminator",
    "num_ws_for",
    "estimate_w_avg",
    "path_length_penalty",
]


def _lrelu(x: jax.Array) -> jax.Array:
    """Leaky ReLU (slope 0.2) times sqrt(2): the "lrelu" activation of [SG2]'s bias_act."""
    return nn.leaky_relu(x, 0.2) * jnp.asarray(LRELU_GAIN, x.dtype)


def _log2(resolution: int) -> int:
    if resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
    return int(math.log2(resolution))


def num_ws_for(resolution: int) -> int:
    """Number of per-layer styles of the synthesis network: 2 * log2(R) - 2 ([SG2] code).

    The 4x4 block has one conv (w[0]) and its to_rgb (w[1]); every block at
    r = 8 .. R has two convs (w[2i-1], w[2i]) and a to_rgb (w[2i+1]), where
    i = log2(r) - 2. As in [SG2], a to_rgb shares its w index with the next
    block's first conv. 32 px: 8 styles; 256 px: 14; 512 px: 16.
    """
    return 2 * _log2(resolution) - 2


# ----------------------------------------------------------------------------
# Mapping network
# ----------------------------------------------------------------------------


class MappingNetwork(nn.Module):
    """Conditional mapping network z, labels -> w ([StyleGAN] sec. 2; [ADA] official code).

    x = concat[pixel_norm(z), pixel_norm(embed(labels))], with
    embed = EqualizedDense(w_dim) (lr 1); then `num_layers` EqualizedDense(w_dim,
    lr_multiplier) each followed by lrelu*sqrt(2). Either input may be absent
    (z_dim = 0 in D's label mapping: pass `z=None`; K = 0: pass `labels=None`).

    Note: an all-zero label row embeds to the bias (0 at init), which
    `pixel_norm` keeps at ~0 (its eps avoids the division by zero).

    Call: z [B, Z] or None, labels [B, K] or None -> w [B, w_dim] in `dtype`.
    """

    w_dim: int = 512
    num_layers: int = 8
    lr_multiplier: float = 0.01
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array | None, labels: jax.Array | None) -> jax.Array:
        parts = []
        if z is not None:
            if z.ndim != 2:
                raise ValueError(f"z must be [B, Z], got shape {z.shape}")
            parts.append(pixel_norm(z.astype(jnp.float32)))
        if labels is not None and labels.shape[-1] > 0:
            if labels.ndim != 2:
                raise ValueError(f"labels must be [B, K] (multi-hot), got shape {labels.shape}")
            y = EqualizedDense(self.w_dim, dtype=jnp.float32, param_dtype=self.param_dtype, name="embed")(
                labels.astype(jnp.float32)
            )
            parts.append(pixel_norm(y))
        if not parts:
            raise ValueError("MappingNetwork needs z or labels")
        x = jnp.concatenate(parts, axis=-1).astype(self.dtype)
        for i in range(self.num_layers):
            x = EqualizedDense(
                self.w_dim,
                lr_multiplier=self.lr_multiplier,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=f"dense_{i}",
            )(x)
            x = _lrelu(x)
        return x


# ----------------------------------------------------------------------------
# Synthesis network
# ----------------------------------------------------------------------------


class SynthesisLayer(nn.Module):
    """One style-modulated 3x3 conv layer of [SG2] fig. 2(d).

    style s = affine(w) (EqualizedDense(C_in, bias_init=1): styles start at 1);
    y = ModulatedConv(s) (modulation + demodulation, [SG2] eq. 1-3); with `up`
    its convolution is the reference's upsampling one (modulate, stride-2
    transposed convolution, FIR filter, demodulate); then noise (`NoiseInput`, learned
    strength, 0 at init), bias, lrelu*sqrt(2).

    Call: x [B, H, W, C_in], w [B, w_dim] -> [B, H', W', features] (H' = 2H if `up`).
    """

    features: int
    up: bool = False
    kernel_size: int = 3
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array, noise_mode: str = "random") -> jax.Array:
        x = x.astype(self.dtype)
        style = EqualizedDense(
            x.shape[-1], bias_init=1.0, dtype=jnp.float32, param_dtype=self.param_dtype, name="affine"
        )(w.astype(jnp.float32))
        y = ModulatedConv(
            self.features,
            kernel_size=self.kernel_size,
            demodulate=True,
            up=self.up,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="conv",
        )(x, style)
        y = NoiseInput(dtype=self.dtype, param_dtype=self.param_dtype, name="noise")(y, noise_mode=noise_mode)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
        return _lrelu(y + bias.astype(self.dtype))


class ToRGB(nn.Module):
    """1x1 modulated conv to image channels, no demodulation, plus bias ([SG2] fig. 7 "skip", tRGB).

    Call: x [B, H, W, C_in], w [B, w_dim] -> [B, H, W, channels] (linear, no activation).
    """

    channels: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        style = EqualizedDense(
            x.shape[-1], bias_init=1.0, dtype=jnp.float32, param_dtype=self.param_dtype, name="affine"
        )(w.astype(jnp.float32))
        y = ModulatedConv(
            self.channels, kernel_size=1, demodulate=False, dtype=self.dtype, param_dtype=self.param_dtype, name="conv"
        )(x.astype(self.dtype), style)
        bias = self.param("bias", nn.initializers.zeros, (self.channels,), self.param_dtype)
        return y + bias.astype(self.dtype)


class SynthesisNetwork(nn.Module):
    """Skip-architecture synthesis network ([SG2] sec. 4, fig. 7 "skip"; fig. 2(d) layers).

    block_4: learned constant [4, 4, nf(4)] ("const"), one SynthesisLayer
    ("conv1", w[0]), to_rgb (w[1]). block_r for r = 8 .. R: SynthesisLayer
    with 2x FIR upsampling ("conv0", w[2i-1]), SynthesisLayer ("conv1",
    w[2i]), to_rgb (w[2i+1]), i = log2(r) - 2; nf(r) = `feature_maps(r,
    fmap_base, fmap_max)` channels. The image is accumulated as
    rgb = upsample2d(rgb) + to_rgb_r(h) (skip connections of the output).

    Call: ws [B, num_ws, w_dim] (or [B, w_dim], broadcast to every layer)
      -> images [B, R, R, C] float32.
    """

    resolution: int
    channels: int = 1
    fmap_base: int = 8192
    fmap_max: int = 512
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, ws: jax.Array, noise_mode: str = "random") -> jax.Array:
        num_ws = num_ws_for(self.resolution)
        if ws.ndim == 2:
            ws = jnp.broadcast_to(ws[:, None, :], (ws.shape[0], num_ws, ws.shape[-1]))
        if ws.ndim != 3 or ws.shape[1] != num_ws:
            raise ValueError(f"ws must be [B, w_dim] or [B, {num_ws}, w_dim], got shape {ws.shape}")
        b = ws.shape[0]

        def nf(r: int) -> int:
            return feature_maps(r, self.fmap_base, self.fmap_max)

        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        const = self.param("const", nn.initializers.normal(1.0), (4, 4, nf(4)), self.param_dtype)
        x = jnp.broadcast_to(const.astype(self.dtype)[None], (b, 4, 4, nf(4)))
        x = SynthesisLayer(nf(4), name="block_4_conv1", **kw)(x, ws[:, 0], noise_mode)
        rgb = ToRGB(self.channels, name="to_rgb_4", **kw)(x, ws[:, 1])
        for log_r in range(3, _log2(self.resolution) + 1):
            r, i = 2**log_r, log_r - 2
            x = SynthesisLayer(nf(r), up=True, name=f"block_{r}_conv0", **kw)(x, ws[:, 2 * i - 1], noise_mode)
            x = SynthesisLayer(nf(r), name=f"block_{r}_conv1", **kw)(x, ws[:, 2 * i], noise_mode)
            rgb = upsample2d(rgb) + ToRGB(self.channels, name=f"to_rgb_{r}", **kw)(x, ws[:, 2 * i + 1])
        return rgb.astype(jnp.float32)


# ----------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------


class Generator(nn.Module):
    """Class-conditional StyleGAN2 generator: mapping (z, labels) -> w, skip synthesis w -> image.

    Parameters live under "mapping_network" (`MappingNetwork`: "embed",
    "dense_0" ..) and "synthesis_network" (`SynthesisNetwork`: "const",
    "block_4_conv1", "to_rgb_4", "block_8_conv0", "block_8_conv1",
    "to_rgb_8", ...).

    Methods (use with `G.apply(params, ..., method="mapping")` etc.):

    * `mapping(z, labels) -> w [B, w_dim]` float32.
    * `synthesis(w, noise_mode="random") -> images [B, R, R, C]` float32;
      w is [B, w_dim] (same style for every layer) or [B, num_ws, w_dim]
      (one style per layer, e.g. for style mixing, [StyleGAN] sec. 3.2).
    * `__call__(z, labels, truncation_psi=1.0, noise_mode="random",
      w_avg=None) = synthesis(truncate(mapping(z, labels)))`.

    Truncation ([StyleGAN] sec. 5.3): w' = w_avg + psi * (w - w_avg). The
    training state holds only params (no running w_avg buffer, unlike the
    reference code), so with psi != 1 pass `w_avg` ([w_dim] or [B, w_dim],
    e.g. from `estimate_w_avg`), or it is taken as the (stop-gradient) mean of
    the current batch's w — a crude estimate meant only for large batches.
    psi == 1.0 (the default, a python float) skips truncation entirely.

    noise_mode: "random" draws per-pixel noise from the "noise" RNG stream
    (zero when the stream is absent); "const" uses zero noise.
    """

    resolution: int
    num_labels: int
    channels: int = 1
    latent_dim: int = 512
    fmap_base: int = 8192
    fmap_max: int = 512
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01

    @property
    def num_ws(self) -> int:
        """Number of per-layer styles, `num_ws_for(resolution)`."""
        return num_ws_for(self.resolution)

    def setup(self):
        _log2(self.resolution)
        self.mapping_network = MappingNetwork(
            w_dim=self.w_dim,
            num_layers=self.mapping_layers,
            lr_multiplier=self.mapping_lr_multiplier,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        self.synthesis_network = SynthesisNetwork(
            resolution=self.resolution,
            channels=self.channels,
            fmap_base=self.fmap_base,
            fmap_max=self.fmap_max,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )

    def mapping(self, z: jax.Array, labels: jax.Array) -> jax.Array:
        """z [B, Z], labels [B, K] -> w [B, w_dim] float32."""
        if z.shape[-1] != self.latent_dim or labels.shape[-1] != self.num_labels:
            raise ValueError(
                f"expected z [B, {self.latent_dim}] and labels [B, {self.num_labels}]; got {z.shape}, {labels.shape}"
            )
        return self.mapping_network(z, labels).astype(jnp.float32)

    def synthesis(self, w: jax.Array, noise_mode: str = "random") -> jax.Array:
        """w [B, w_dim] or [B, num_ws, w_dim] -> images [B, R, R, C] float32."""
        return self.synthesis_network(w, noise_mode)

    def __call__(
        self,
        z: jax.Array,
        labels: jax.Array,
        truncation_psi: float | jax.Array = 1.0,
        noise_mode: str = "random",
        w_avg: jax.Array | None = None,
    ) -> jax.Array:
        """z [B, Z], labels [B, K] -> images [B, R, R, C] float32 (see class docstring)."""
        w = self.mapping(z, labels)
        if not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1.0):
            if w_avg is None:
                w_avg = jax.lax.stop_gradient(jnp.mean(w, axis=0))
            w_avg = jnp.asarray(w_avg, jnp.float32)
            w = w_avg + jnp.asarray(truncation_psi, jnp.float32) * (w - w_avg)
        return self.synthesis(w, noise_mode)


def _as_variables(g_params) -> dict:
    """Accept either the variables dict {"params": ...} or the bare params tree of a Generator."""
    return g_params if "params" in g_params else {"params": g_params}


def estimate_w_avg(generator: Generator, g_params, labels: jax.Array, rng: jax.Array) -> jax.Array:
    """Mean of mapped latents for truncation: E_z[mapping(z, labels)] -> [w_dim] float32.

    One z ~ N(0, I) per label row of `labels` [N, K] (pass the label rows of
    interest, e.g. one label combination repeated, for a class-wise w_avg, or
    the training label distribution for the global one as [StyleGAN]'s
    running average). `g_params`: the variables dict {"params": ...} or the
    bare params tree.
    """
    z = jax.random.normal(rng, (labels.shape[0], generator.latent_dim), jnp.float32)
    w = generator.apply(_as_variables(g_params), z, labels, method="mapping")
    return jnp.mean(w, axis=0)


# ----------------------------------------------------------------------------
# Discriminator
# ----------------------------------------------------------------------------


class Discriminator(nn.Module):
    """Residual StyleGAN2 discriminator with projection conditioning ([SG2] fig. 7 "resnet"; [ADA]).

    from_rgb_R (1x1 EqualizedConv to nf(R), lrelu); block_r for r = R .. 8:
      h = lrelu(conv3x3_nf(r)(x)); h = lrelu(conv3x3_nf(r/2), down=2 (h));
      skip = conv1x1_nf(r/2), down=2, no bias (x);  x = (h + skip) / sqrt(2).
    "down=2" is the reference's ``conv2d_resample`` order (`layers.conv2d_resample`):
    the FIR filter, then the convolution with stride 2 (for the 1x1 skip:
    `downsample2d`, then the 1x1 convolution); bias and lrelu come after it.
    At 4x4 ("block_4"): minibatch stddev (group `mbstd_group_size`, 1 channel),
    conv3x3 nf(4) lrelu, flatten, dense nf(4) lrelu, dense cmap_dim -> out.

    Conditioning ([ADA] official code, projection discriminator of Miyato &
    Koyama 2018): cmap = MappingNetwork(z=None, labels) [B, cmap_dim]
    ("label_mapping"; `mapping_layers` layers, lr x`mapping_lr_multiplier`),
    logits = sum(out * cmap, -1) / sqrt(cmap_dim). `out` ("projection_out") and `cmap` are also
    sown to the "intermediates" collection (for tests and diagnostics).

    Call: images [B, R, R, C], labels [B, K] -> (logits [B] float32, None).
    B must be divisible by min(mbstd_group_size, B).
    """

    resolution: int
    num_labels: int
    channels: int = 1
    fmap_base: int = 8192
    fmap_max: int = 512
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    mbstd_group_size: int = 4
    cmap_dim: int = 0  # 0: nf(4), as [ADA]'s code (cmap_dim = channels at 4x4)
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array) -> tuple[jax.Array, None]:
        res_log2 = _log2(self.resolution)
        r_full = self.resolution
        if images.ndim != 4 or images.shape[1:] != (r_full, r_full, self.channels):
            raise ValueError(f"images must be [B, {r_full}, {r_full}, {self.channels}], got {images.shape}")
        if labels.shape != (images.shape[0], self.num_labels):
            raise ValueError(f"labels must be [B, {self.num_labels}], got {labels.shape}")

        def nf(r: int) -> int:
            return feature_maps(r, self.fmap_base, self.fmap_max)

        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = _lrelu(EqualizedConv(nf(r_full), kernel_size=1, name=f"from_rgb_{r_full}", **kw)(images.astype(self.dtype)))
        for log_r in range(res_log2, 2, -1):
            r = 2**log_r
            h = _lrelu(EqualizedConv(nf(r), name=f"block_{r}_conv0", **kw)(x))
            h = _lrelu(EqualizedConv(nf(r // 2), down=True, name=f"block_{r}_conv1", **kw)(h))
            skip = EqualizedConv(nf(r // 2), kernel_size=1, use_bias=False, down=True, name=f"block_{r}_skip", **kw)(x)
            x = (h + skip) * jnp.asarray(1.0 / math.sqrt(2.0), self.dtype)
        # Epilogue at 4x4.
        x = MinibatchStdDev(group_size=self.mbstd_group_size, num_channels=1, dtype=self.dtype)(x)
        x = _lrelu(EqualizedConv(nf(4), name="block_4_conv", **kw)(x))
        x = x.reshape(x.shape[0], -1)
        x = _lrelu(EqualizedDense(nf(4), name="block_4_dense", **kw)(x))
        cmap_dim = self.cmap_dim or nf(4)
        out = EqualizedDense(cmap_dim, name="out", **kw)(x).astype(jnp.float32)
        cmap = MappingNetwork(
            w_dim=cmap_dim,
            num_layers=self.mapping_layers,
            lr_multiplier=self.mapping_lr_multiplier,
            name="label_mapping",
            **kw,
        )(None, labels).astype(jnp.float32)
        self.sow("intermediates", "projection_out", out)
        self.sow("intermediates", "cmap", cmap)
        logits = jnp.sum(out * cmap, axis=-1) / math.sqrt(cmap_dim)
        return logits, None


# ----------------------------------------------------------------------------
# Path-length regularisation
# ----------------------------------------------------------------------------


def path_length_penalty(
    generator: Generator,
    g_params,
    z: jax.Array,
    labels: jax.Array,
    rng: jax.Array,
    pl_mean: jax.Array,
    decay: float = 0.01,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Path-length penalty of [SG2] sec. 3.2, eq. 4; pure and jit-able, differentiable w.r.t. `g_params`.

    E_{w, y ~ N(0, I)} (||J_w^T y||_2 - a)^2, with J_w = d g(w) / d w the
    Jacobian of the synthesis network and a the running mean of the lengths:

    1. w = mapping(z, labels), broadcast to ws [B, num_ws, w_dim] (the
       gradient is taken w.r.t. the per-layer styles, as the reference code).
    2. images = synthesis(ws) with noise from `rng`; y ~ N(0, I) / sqrt(R*R),
       the image-space normalisation of the reference code (so lengths do not
       scale with resolution).
    3. J^T y = vjp of synthesis at ws applied to y (i.e. grad_ws sum(images * y)).
    4. lengths_b = sqrt(mean_layers(sum_w_dim((J^T y)^2))) [B] (reference code:
       ``pl_grads.square().sum(2).mean(1).sqrt()``).
    5. new_pl_mean = pl_mean + decay * (mean(lengths) - pl_mean)
       (the EMA "a" of eq. 4; stop-gradient), penalty = mean((lengths - new_pl_mean)^2).

    The caller weights it (pl_weight 2, lazily every 4 G steps x4 in [SG2]
    sec. 3.1) and may use a smaller batch (the reference's pl_batch_shrink).

    Args:
      generator: the Generator module.
      g_params: its params — the bare params tree (as the training state holds
        it) or the variables dict {"params": ...}; the penalty is
        differentiable w.r.t. it.
      z: [B, Z] latents; labels: [B, K] labels.
      rng: key for y and the synthesis noise.
      pl_mean: [] running mean of the lengths (start at 0.0).
      decay: EMA rate (0.01 in [SG2]).
    Returns: (penalty [], new_pl_mean [] float32, lengths [B] float32).
    """
    k_noise, k_y = jax.random.split(rng)
    variables = _as_variables(g_params)
    w = generator.apply(variables, z, labels, method="mapping")
    ws = jnp.broadcast_to(w[:, None, :], (w.shape[0], generator.num_ws, w.shape[-1]))

    def synth(ws_):
        return generator.apply(variables, ws_, method="synthesis", rngs={"noise": k_noise})

    images, vjp = jax.vjp(synth, ws)
    r, c = images.shape[1], images.shape[2]
    y = jax.random.normal(k_y, images.shape, jnp.float32) / math.sqrt(r * c)
    (grads,) = vjp(y)
    lengths = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads.astype(jnp.float32)), axis=2), axis=1))  # [B]
    pl_mean = jnp.asarray(pl_mean, jnp.float32)
    new_pl_mean = jax.lax.stop_gradient(pl_mean + decay * (jnp.mean(lengths) - pl_mean))
    penalty = jnp.mean(jnp.square(lengths - new_pl_mean))
    return penalty, new_pl_mean, lengths
