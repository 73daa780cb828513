"""Progressive GAN of the study ([PGGAN]), conditional: labels concatenated to z, AC-GAN head.

The study's first GAN (docs/ARCHITECTURE.md, "The GANs of the study"): a progressive GAN whose
generator receives the multi-hot label vector concatenated to the latent, and
whose discriminator has an auxiliary-classifier (AC-GAN, Odena et al. 2017)
head next to the critic score. Trained with WGAN-GP + drift
(`medgan.train.losses.wgan_gp_d_loss`, `acgan_loss`).

References:

* [PGGAN] Karras, Aila, Laine, Lehtinen 2018, "Progressive Growing of GANs for
  Improved Quality, Stability, and Variation" (ICLR). Sec. 2 and fig. 2:
  progressive growing and the fade-in of new layers (weight alpha); sec. 3
  minibatch standard deviation; sec. 4.1 equalized learning rate; sec. 4.2
  pixelwise feature normalisation in G; appendix A.1, table 2: the network
  layout (nearest-neighbour 2x upsampling, 3x3 convs, leaky ReLU 0.2, 1x1
  toRGB/fromRGB, 2x2 average pooling, 4x4 epilogue with minibatch stddev).
  The reference code (tkarras/progressive_growing_of_gans, networks.py) is
  followed where the paper is silent (the dense layer's gain sqrt(2)/4, the
  label outputs appended to the score, the lod blending of real images).

Conventions (as in `layers.py` / `classifiers.py`):

* Images are [B, H, W, C] (NHWC) float, real images in [-1, 1]; z is [B, Z]
  N(0, 1); labels are [B, K] float multi-hot (several 1s allowed).
* `dtype` is the compute dtype (bf16 supported); parameters are float32
  (`param_dtype`); the outputs are always float32.
* No batch statistics (no BatchNorm). Note that the minibatch-stddev layer of
  D ([PGGAN] sec. 3), required by the contract, is the one deliberate
  exception to "examples are independent": each logit depends on the other
  members of its stddev group (as in the reference implementation).

Progressive growing in a fixed-shape world
------------------------------------------

Both networks are built for the final resolution R and take/produce
[B, R, R, C] images at every phase, so losses, Frechet distances and
synthesis see one interface. The module field `stage` (s, a power of two,
8 <= s <= R; 0 means R) selects the current phase and the call argument
`alpha` (python float or traced f32 []) the fade-in weight of the newest
block ([PGGAN] sec. 2, fig. 2 (b)):

* G: img_s = lerp(up(toRGB_{s/2}(h_{s/2})), toRGB_s(h_s), alpha), then
  nearest-upsampled from s to R (a stage-s image shown at R px).
* D: the input is average-pooled to s, x_s' = lerp(up(pool(x_s)), x_s, alpha)
  (reals and fakes get the same low-pass during fade-in, like the reference
  code's lod blending of reals), and
  h = lerp(fromRGB_{s/2}(pool(x_s')), block_s(fromRGB_s(x_s')), alpha).

Here lerp(a, b, t) = (1 - t) a + t b, so alpha = 1 gives b and alpha = 0 gives
a exactly. Parameter names do not depend on `stage` ("block_16",
"to_rgb_16", "from_rgb_16", ...) and `init` ALWAYS creates the parameters of
every resolution, whatever `stage`; a smaller stage applied to the full tree
uses a subset (flax ignores the rest). Growing is therefore just a change of
`stage`, with all weights kept. `alpha` is traced, so one compiled function
per stage serves the whole fade-in.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from medgan.models.layers import (
    LRELU_GAIN,
    EqualizedConv,
    EqualizedDense,
    MinibatchStdDev,
    feature_maps,
    pixel_norm,
)

Dtype = Any

__all__ = [
    "Generator",
    "Discriminator",
    "phase_schedule",
    "phase_stages",
    "upscale2d",
    "downscale2d",
    "LRELU_SLOPE",
]

# Leaky ReLU slope of G and D ([PGGAN] appendix A.1).
LRELU_SLOPE = 0.2


# ----------------------------------------------------------------------------
# Resampling of [PGGAN] (nearest-neighbour up, box-filter down) and helpers
# ----------------------------------------------------------------------------


def upscale2d(x: jax.Array, factor: int = 2) -> jax.Array:
    """Nearest-neighbour upsampling by an integer `factor` ([PGGAN] appendix A.1, "upsample").

    Each pixel is replicated into a factor x factor patch (the reference
    code's `upscale2d`). [B, H, W, C] -> [B, factor*H, factor*W, C], in x.dtype.
    """
    if factor == 1:
        return x
    b, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
    return x.reshape(b, h * factor, w * factor, c)


def downscale2d(x: jax.Array, factor: int = 2) -> jax.Array:
    """Average pooling over non-overlapping factor x factor patches ([PGGAN] appendix A.1, "downsample").

    The box filter of the reference code's `downscale2d`; the mean is taken
    in float32 and cast back. It inverts `upscale2d` (up to float32 rounding
    of the patch sum): downscale2d(upscale2d(x, f), f) ~= x. [B, H, W, C] (H, W divisible by
    `factor`) -> [B, H/factor, W/factor, C], in x.dtype.
    """
    if factor == 1:
        return x
    b, h, w, c = x.shape
    if h % factor or w % factor:
        raise ValueError(f"downscale2d: H, W of {x.shape} not divisible by {factor}")
    y = x.astype(jnp.float32).reshape(b, h // factor, factor, w // factor, factor, c)
    return jnp.mean(y, axis=(2, 4)).astype(x.dtype)


def _lerp(a: jax.Array, b: jax.Array, t, dtype: Dtype) -> jax.Array:
    """(1 - t) a + t b in float32, cast to `dtype`: t = 1 -> b, t = 0 -> a exactly (finite a, b)."""
    t = jnp.asarray(t, jnp.float32)
    return ((1.0 - t) * a.astype(jnp.float32) + t * b.astype(jnp.float32)).astype(dtype)


def _lrelu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, LRELU_SLOPE)


def _is_power_of_two(n: int) -> bool:
    return isinstance(n, int) and n > 0 and n & (n - 1) == 0


def _resolved_stage(resolution: int, stage: int, name: str) -> int:
    """The phase resolution s (stage 0 -> resolution); ValueError unless 8 <= s <= R, powers of two."""
    if not _is_power_of_two(resolution) or resolution < 8:
        raise ValueError(f"{name}.resolution must be a power of two >= 8, got {resolution}")
    s = resolution if stage == 0 else stage
    if not _is_power_of_two(s) or not 8 <= s <= resolution:
        raise ValueError(f"{name}.stage must be 0 or a power of two in [8, {resolution}], got {stage}")
    return s


def _check_alpha(alpha) -> bool:
    """Validates a concrete alpha in [0, 1]; returns True iff alpha is the python/concrete constant 1."""
    if isinstance(alpha, (int, float)):
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        return float(alpha) == 1.0
    if jnp.shape(alpha) != ():
        raise ValueError(f"alpha must be a scalar, got shape {jnp.shape(alpha)}")
    return False


def _resolutions(low: int, high: int) -> list[int]:
    """[low, 2 low, ..., high] (powers of two)."""
    out, r = [], low
    while r <= high:
        out.append(r)
        r *= 2
    return out


# ----------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------


class _GBlock(nn.Module):
    """One generator block at `res` px ([PGGAN] appendix A.1, table 2, left).

    res = 4 (input [B, Z + K], the normalised latent with the labels):
      EqualizedDense -> [B, 4, 4, nf(4)], lrelu, pixel norm, conv3x3, lrelu, pixel norm.
      The dense gain sqrt(2)/4 is the reference code's (networks.py, G_paper).
    res >= 8 (input [B, res/2, res/2, nf(res/2)]):
      nearest 2x upsample, 2 x (conv3x3 -> nf(res), lrelu 0.2, pixel norm).
    Output [B, res, res, nf(res)] in `dtype`.
    """

    res: int
    features: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        if self.res == 4:
            x = EqualizedDense(16 * self.features, gain=LRELU_GAIN / 4, name="dense", **kw)(x)
            x = x.reshape(x.shape[0], 4, 4, self.features)
            x = pixel_norm(_lrelu(x))
            x = EqualizedConv(self.features, 3, gain=LRELU_GAIN, name="conv", **kw)(x)
            return pixel_norm(_lrelu(x))
        x = upscale2d(x.astype(self.dtype))
        x = pixel_norm(_lrelu(EqualizedConv(self.features, 3, gain=LRELU_GAIN, name="conv0", **kw)(x)))
        return pixel_norm(_lrelu(EqualizedConv(self.features, 3, gain=LRELU_GAIN, name="conv1", **kw)(x)))


class Generator(nn.Module):
    """Conditional progressive-GAN generator ([PGGAN] sec. 2, appendix A.1; labels concatenated to z).

    z is pixel-normalised ([PGGAN] sec. 4.2 applied to the latent) and then
    concatenated with the labels, [B, Z + K]; "block_4" maps it with a dense
    layer to 4x4 x nf(4) and a 3x3 conv; "block_r" (r = 8, ..., s) doubles the
    resolution (nearest), with two 3x3 convs, leaky ReLU 0.2 and pixel norm;
    "to_rgb_r" is a 1x1 conv (linear, gain 1) to C channels at every r.
    Widths nf(r) = `layers.feature_maps(r, fmap_base, fmap_max)`; all layers
    use the equalized learning rate ([PGGAN] sec. 4.1).

    Output at phase s = `stage` with fade weight `alpha` ([PGGAN] fig. 2):
    lerp(upscale2d(to_rgb_{s/2}(h_{s/2})), to_rgb_s(h_s), alpha), then
    nearest-upsampled to R; linear (no tanh). See the module docstring.

    Fields:
      resolution: R, final image size, power of two >= 8.
      num_labels: K, length of the multi-hot label vector.
      channels: C, image channels.
      latent_dim: Z.
      fmap_base, fmap_max: width schedule (see `layers.feature_maps`).
      stage: current phase resolution s (0 = R); 8 <= s <= R, power of two.
      dtype, param_dtype: compute / parameter dtypes.

    Call: z [B, Z] float32, labels [B, K] float32, alpha (float or traced
    f32 [] in [0, 1], default 1.0) -> images [B, R, R, C] float32.
    `init` creates the parameters of all resolutions 4..R whatever `stage`.
    """

    resolution: int
    num_labels: int
    channels: int = 1
    latent_dim: int = 512
    fmap_base: int = 8192
    fmap_max: int = 512
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    stage: int = 0

    def _nf(self, res: int) -> int:
        return feature_maps(res, self.fmap_base, self.fmap_max)

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array, alpha=1.0) -> jax.Array:
        s = _resolved_stage(self.resolution, self.stage, "Generator")
        stable = _check_alpha(alpha)
        if z.ndim != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"Generator: z must be [B, {self.latent_dim}], got {z.shape}")
        if labels.shape != (z.shape[0], self.num_labels):
            raise ValueError(f"Generator: labels must be [B, K] = {(z.shape[0], self.num_labels)}, got {labels.shape}")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        initializing = self.is_initializing()
        # Init builds every resolution so that the parameter tree does not depend on `stage`.
        top = self.resolution if initializing else s

        x = jnp.concatenate([pixel_norm(z.astype(jnp.float32)), labels.astype(jnp.float32)], axis=-1)
        h = x.astype(self.dtype)  # [B, Z + K]
        feats = {}
        for r in _resolutions(4, top):
            h = _GBlock(r, self._nf(r), name=f"block_{r}", **kw)(h)  # [B, r, r, nf(r)]
            feats[r] = h

        rgb_layers = {}  # each submodule is constructed once (flax names must be unique)

        def to_rgb(r: int) -> jax.Array:  # [B, r, r, C]
            if r not in rgb_layers:
                rgb_layers[r] = EqualizedConv(self.channels, 1, gain=1.0, name=f"to_rgb_{r}", **kw)
            return rgb_layers[r](feats[r])

        if initializing:
            for r in _resolutions(4, self.resolution):
                to_rgb(r)
        new = to_rgb(s)
        if stable:  # alpha == 1 exactly: the previous branch would get weight 0
            img = new.astype(jnp.float32)
        else:
            img = _lerp(upscale2d(to_rgb(s // 2)), new, alpha, jnp.float32)
        return upscale2d(img, self.resolution // s)  # [B, R, R, C] float32


# ----------------------------------------------------------------------------
# Discriminator
# ----------------------------------------------------------------------------


class _DBlock(nn.Module):
    """One discriminator block at `res` >= 8 px ([PGGAN] appendix A.1, table 2, right).

    conv3x3 -> nf(res), lrelu, conv3x3 -> nf(res/2), lrelu, 2x2 average pool.
    [B, res, res, nf(res)] -> [B, res/2, res/2, nf(res/2)] in `dtype`.
    """

    res: int
    features: int
    out_features: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = _lrelu(EqualizedConv(self.features, 3, gain=LRELU_GAIN, name="conv0", **kw)(x))
        x = _lrelu(EqualizedConv(self.out_features, 3, gain=LRELU_GAIN, name="conv1", **kw)(x))
        return downscale2d(x)


class _DEpilogue(nn.Module):
    """The 4x4 discriminator block ([PGGAN] appendix A.1, sec. 3): minibatch stddev, conv3x3, dense, dense.

    [B, 4, 4, nf(4)] -> mbstd [B, 4, 4, nf(4) + 1] -> conv3x3 nf(4), lrelu ->
    flatten, dense nf(4), lrelu -> dense 1 + K (linear, gain 1) -> [B, 1 + K]
    float32: column 0 is the critic score, columns 1.. the AC-GAN class
    logits (the reference code's `combo_out`).
    """

    features: int
    outputs: int
    mbstd_group_size: int = 4
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = MinibatchStdDev(self.mbstd_group_size, dtype=self.dtype)(x)
        x = _lrelu(EqualizedConv(self.features, 3, gain=LRELU_GAIN, name="conv", **kw)(x))
        x = x.reshape(x.shape[0], -1)
        x = _lrelu(EqualizedDense(self.features, gain=LRELU_GAIN, name="dense", **kw)(x))
        return EqualizedDense(self.outputs, gain=1.0, name="out", **kw)(x).astype(jnp.float32)


class Discriminator(nn.Module):
    """Progressive-GAN critic with an AC-GAN head ([PGGAN] sec. 2, 3, appendix A.1; Odena et al. 2017).

    "from_rgb_r" (1x1 conv -> nf(r), leaky ReLU) at every resolution r;
    "block_r" (r = s, ..., 8) halves the resolution (two 3x3 convs, 2x2 average
    pool); "block_4" is the epilogue (minibatch stddev ([PGGAN] sec. 3),
    conv3x3, dense, dense -> 1 + K). Widths `layers.feature_maps`, equalized
    learning rate ([PGGAN] sec. 4.1), no normalisation.

    Input at phase s = `stage` with fade weight `alpha` ([PGGAN] fig. 2 (b)):
    x_s = downscale2d(images, R/s); x_s' = lerp(upscale2d(downscale2d(x_s)),
    x_s, alpha) (the same low-pass for reals and fakes);
    h = lerp(from_rgb_{s/2}(downscale2d(x_s')), block_s(from_rgb_s(x_s')), alpha),
    then blocks s/2, ..., 8 and the epilogue. See the module docstring.

    The labels do not enter the critic score: conditioning is the auxiliary
    classifier (class_logits, trained with `losses.acgan_loss`). They are
    accepted (and shape-checked) for the common model interface.

    Fields: as `Generator` (resolution, num_labels, channels, fmap_base,
    fmap_max, dtype, param_dtype, stage) plus mbstd_group_size (G of
    `layers.MinibatchStdDev`; B must be divisible by min(G, B)).

    Call: images [B, R, R, C], labels [B, K], alpha (float or traced f32 [])
    -> (logits [B] float32, class_logits [B, K] float32).
    `init` creates the parameters of all resolutions whatever `stage`.
    """

    resolution: int
    num_labels: int
    channels: int = 1
    fmap_base: int = 8192
    fmap_max: int = 512
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    mbstd_group_size: int = 4
    stage: int = 0

    def _nf(self, res: int) -> int:
        return feature_maps(res, self.fmap_base, self.fmap_max)

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array, alpha=1.0) -> tuple[jax.Array, jax.Array]:
        s = _resolved_stage(self.resolution, self.stage, "Discriminator")
        stable = _check_alpha(alpha)
        R, C = self.resolution, self.channels
        if images.ndim != 4 or images.shape[1:] != (R, R, C):
            raise ValueError(f"Discriminator: images must be [B, {R}, {R}, {C}], got {images.shape}")
        if labels.shape != (images.shape[0], self.num_labels):
            raise ValueError(
                f"Discriminator: labels must be [B, K] = {(images.shape[0], self.num_labels)}, got {labels.shape}"
            )
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)

        layers = {}  # each submodule is constructed once (flax names must be unique)

        def from_rgb(r: int, x: jax.Array) -> jax.Array:  # [B, r, r, C] -> [B, r, r, nf(r)]
            name = f"from_rgb_{r}"
            if name not in layers:
                layers[name] = EqualizedConv(self._nf(r), 1, gain=LRELU_GAIN, name=name, **kw)
            return _lrelu(layers[name](x))

        def block(r: int, x: jax.Array) -> jax.Array:  # [B, r, r, nf(r)] -> [B, r/2, r/2, nf(r/2)]
            name = f"block_{r}"
            if name not in layers:
                layers[name] = _DBlock(r, self._nf(r), self._nf(r // 2), name=name, **kw)
            return layers[name](x)

        x = images.astype(self.dtype)
        if self.is_initializing():
            # Create the from_rgb / block parameters of every resolution (outputs discarded),
            # so that the parameter tree does not depend on `stage`.
            for r in _resolutions(4, R):
                xr = downscale2d(x, R // r)
                hr = from_rgb(r, xr)
                if r >= 8 and r > s:
                    block(r, hr)

        x_s = downscale2d(x, R // s)  # [B, s, s, C]
        if stable:
            h = block(s, from_rgb(s, x_s))
        else:
            x_s = _lerp(upscale2d(downscale2d(x_s)), x_s, alpha, self.dtype)
            old = from_rgb(s // 2, downscale2d(x_s))
            new = block(s, from_rgb(s, x_s))
            h = _lerp(old, new, alpha, self.dtype)  # [B, s/2, s/2, nf(s/2)]
        for r in _resolutions(8, s // 2)[::-1]:
            h = block(r, h)
        out = _DEpilogue(self._nf(4), 1 + self.num_labels, self.mbstd_group_size, name="block_4", **kw)(h)
        return out[:, 0], out[:, 1:]


# ----------------------------------------------------------------------------
# Growth schedule (host side)
# ----------------------------------------------------------------------------


def phase_stages(start: int, resolution: int) -> list[int]:
    """The phase resolutions [start, 2 start, ..., resolution] of progressive growing ([PGGAN] sec. 2).

    Both must be powers of two with 8 <= start <= resolution (ValueError otherwise).
    """
    if not _is_power_of_two(resolution) or resolution < 8:
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
    if not _is_power_of_two(start) or not 8 <= start <= resolution:
        raise ValueError(f"start must be a power of two in [8, {resolution}], got {start}")
    return _resolutions(start, resolution)


def phase_schedule(step: int, *, start: int, resolution: int, steps_per_phase: int) -> tuple[int, float]:
    """(stage, alpha) at global training `step` ([PGGAN] sec. 2: fade-in, then stabilisation).

    With P = steps_per_phase and stages = `phase_stages(start, resolution)`:

    * steps [0, P): (start, 1.0) -- the first stage has no fade-in;
    * for the i-th following stage s (i = 1, 2, ...), with t0 = P + 2 (i - 1) P:
      steps [t0, t0 + P) fade in with alpha = (step - t0) / P (0 -> 1 linearly),
      steps [t0 + P, t0 + 2P) stabilise at (s, 1.0);
    * from P + 2 (len(stages) - 1) P on: (resolution, 1.0) forever.

    Pure python (host side); the stage picks the compiled function and alpha
    is passed to it as a traced scalar. ValueError for step < 0 or P < 1.
    """
    stages = phase_stages(start, resolution)
    if steps_per_phase < 1:
        raise ValueError(f"steps_per_phase must be >= 1, got {steps_per_phase}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    P = int(steps_per_phase)
    if step < P:
        return stages[0], 1.0
    i, t = divmod(step - P, 2 * P)
    if i + 1 >= len(stages):
        return stages[-1], 1.0
    return stages[i + 1], (t / P if t < P else 1.0)
