"""GAN building blocks (ProGAN / StyleGAN2 style), flax.linen, NHWC.

Conventions (as in `classifiers.py`):

* Images are [B, H, W, C] (NHWC); vectors are [B, F].
* `dtype` is the compute dtype (e.g. jnp.bfloat16); parameters are created in
  `param_dtype` (float32). Runtime weight scales are applied in float32 to the
  stored parameters, then the result is cast to `dtype`.

References:

* [PGGAN] Karras, Aila, Laine, Lehtinen 2018, "Progressive Growing of GANs for
  Improved Quality, Stability, and Variation" (ICLR): sec. 3 minibatch
  standard deviation, sec. 4.1 equalized learning rate, sec. 4.2 pixelwise
  feature vector normalization.
* [SG2] Karras, Laine, Aittala, Hellsten, Lehtinen, Aila 2020, "Analyzing and
  Improving the Image Quality of StyleGAN" (CVPR): sec. 2.2 eq. 1-3
  weight modulation / demodulation; the [1,3,3,1] FIR resampling filter
  (used in the up/down-sampling of sec. 4 / appendix B, following
  Zhang 2019 "Making convolutional networks shift-invariant again").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from medgan.models.strided_conv import conv_stride2

Dtype = Any

# Gain for layers followed by leaky ReLU / ReLU (He et al. 2015): with
# equalized LR the output variance equals the input variance times gain**2,
# so sqrt(2) compensates the halving of the second moment by a (leaky) ReLU.
LRELU_GAIN = math.sqrt(2.0)


def equalized_scale(fan_in: int, gain: float = 1.0, lr_multiplier: float = 1.0) -> float:
    """Runtime weight multiplier c = gain * lr_multiplier / sqrt(fan_in) ([PGGAN] sec. 4.1).

    Weights are stored as N(0, 1/lr_multiplier**2) and multiplied by `c` at
    every call, so the effective weight is N(0, (gain/sqrt(fan_in))**2) (He
    initialisation) while the optimiser sees unit-scale parameters. With
    `lr_multiplier` < 1 (StyleGAN mapping network: 0.01) the effective
    learning rate of the layer is multiplied by `lr_multiplier`.
    """
    if fan_in <= 0:
        raise ValueError(f"fan_in must be positive, got {fan_in}")
    return gain * lr_multiplier / math.sqrt(fan_in)


def _normal_init(stddev: float):
    def init(key, shape, dtype=jnp.float32):
        return stddev * jax.random.normal(key, shape, dtype)

    return init


def _equalized_kernel(module: nn.Module, shape: tuple[int, ...], fan_in: int) -> jax.Array:
    """The runtime kernel of an equalized layer: stored N(0, 1/lr^2) weights x `equalized_scale`.

    Called inside the compact `__call__` of `module` (fields gain, lr_multiplier,
    dtype, param_dtype), where it creates the "kernel" parameter of `shape`.
    """
    kernel = module.param("kernel", _normal_init(1.0 / module.lr_multiplier), shape, module.param_dtype)
    scale = equalized_scale(fan_in, module.gain, module.lr_multiplier)
    return (kernel.astype(jnp.float32) * scale).astype(module.dtype)


def _add_equalized_bias(module: nn.Module, y: jax.Array) -> jax.Array:
    """y + bias x lr_multiplier when `module.use_bias`; the stored bias is bias_init / lr_multiplier."""
    if not module.use_bias:
        return y
    bias = module.param(
        "bias",
        nn.initializers.constant(module.bias_init / module.lr_multiplier),
        (module.features,),
        module.param_dtype,
    )
    return y + (bias.astype(jnp.float32) * module.lr_multiplier).astype(module.dtype)


class EqualizedDense(nn.Module):
    """Dense layer with equalized learning rate ([PGGAN] sec. 4.1).

    Stored kernel [F_in, features] ~ N(0, 1/lr_multiplier**2); at runtime
    y = x @ (kernel * c) + bias * lr_multiplier with
    c = `equalized_scale(F_in, gain, lr_multiplier)`. The stored bias is
    `bias_init / lr_multiplier` so the effective initial bias is `bias_init`.

    Input [..., F_in] -> output [..., features].
    """

    features: int
    gain: float = 1.0
    lr_multiplier: float = 1.0
    use_bias: bool = True
    bias_init: float = 0.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        w = _equalized_kernel(self, (fan_in, self.features), fan_in)
        y = jnp.dot(x.astype(self.dtype), w)
        return _add_equalized_bias(self, y)


class EqualizedConv(nn.Module):
    """2-D convolution with equalized learning rate ([PGGAN] sec. 4.1).

    Stored kernel [k, k, C_in, features] ~ N(0, 1/lr_multiplier**2), scaled at
    runtime by `equalized_scale(k*k*C_in, gain, lr_multiplier)`; odd
    `kernel_size`. Stride 1 with "SAME" zero padding, or with `up` / `down`
    the 2x FIR-resampling convolution of [SG2]'s code (`conv2d_resample`:
    filter then stride-2 convolution; stride-2 transposed convolution then
    filter), borders padded with `pad_mode`. The bias is added last.

    Input [B, H, W, C_in] -> output [B, H', W', features], H' = H, 2H (up) or H/2 (down).
    """

    features: int
    kernel_size: int = 3
    gain: float = 1.0
    lr_multiplier: float = 1.0
    use_bias: bool = True
    bias_init: float = 0.0
    up: bool = False
    down: bool = False
    pad_mode: str = "edge"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"EqualizedConv expects [B, H, W, C], got shape {x.shape}")
        k, c_in = self.kernel_size, x.shape[-1]
        w = _equalized_kernel(self, (k, k, c_in, self.features), k * k * c_in)
        y = conv2d_resample(x.astype(self.dtype), w, up=self.up, down=self.down, pad_mode=self.pad_mode)
        return _add_equalized_bias(self, y)


def pixel_norm(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """x / sqrt(mean_c x**2 + eps) over the last (channel) axis ([PGGAN] sec. 4.2, eq. for b_{x,y}).

    Computed in float32, returned in x.dtype. [..., C] -> [..., C].
    """
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + eps)
    return y.astype(x.dtype)


class PixelNorm(nn.Module):
    """Pixelwise feature vector normalisation ([PGGAN] sec. 4.2); no parameters.

    Normalises each pixel's channel vector to unit mean square.
    [B, H, W, C] (or [B, C]) -> same shape, `dtype`.
    """

    eps: float = 1e-8
    dtype: Dtype = jnp.float32

    def __call__(self, x: jax.Array) -> jax.Array:
        return pixel_norm(x.astype(self.dtype), self.eps)


class ConditionalPixelNorm(nn.Module):
    """Class-conditional pixel norm (the study's variant of [PGGAN] sec. 4.2).

    y = pixel_norm(x) * (1 + gamma) + beta, with [gamma, beta] (each [B, C])
    = EqualizedDense(2C)(concat[z, labels]), broadcast over H, W. The gain is
    parameterised as 1 + gamma so that gamma = beta = 0 is the plain PixelNorm.

    Args (call):
      x: [B, H, W, C] or [B, C] features.
      z: [B, Z] latent.
      labels: [B, K] float one-/multi-hot labels, or [B] int class ids
        (one-hot encoded with `num_classes`, which is then required).
    """

    num_classes: int | None = None
    eps: float = 1e-8
    lr_multiplier: float = 1.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, z: jax.Array, labels: jax.Array) -> jax.Array:
        if labels.ndim == 1:
            if self.num_classes is None:
                raise ValueError("integer labels [B] need num_classes; or pass [B, K] one-hot labels")
            labels = jax.nn.one_hot(labels, self.num_classes)
        if labels.ndim != 2 or z.ndim != 2 or labels.shape[0] != x.shape[0] or z.shape[0] != x.shape[0]:
            raise ValueError(f"expected z [B, Z], labels [B, K] with B={x.shape[0]}; got {z.shape}, {labels.shape}")
        c = x.shape[-1]
        cond = jnp.concatenate([z.astype(self.dtype), labels.astype(self.dtype)], axis=-1)
        gb = EqualizedDense(
            2 * c, lr_multiplier=self.lr_multiplier, dtype=self.dtype, param_dtype=self.param_dtype, name="affine"
        )(cond)
        gamma, beta = jnp.split(gb, 2, axis=-1)
        shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
        y = pixel_norm(x.astype(self.dtype), self.eps)
        return y * (1 + gamma.reshape(shape)) + beta.reshape(shape)


class MinibatchStdDev(nn.Module):
    """Minibatch standard deviation layer ([PGGAN] sec. 3; grouped form of [SG2]'s code).

    The batch is split into groups of G = min(group_size, B) samples; sample
    b belongs to group b % (B // G) (strided, as in the reference code). For
    each group: the (biased) std over the G samples of every feature and
    pixel, sqrt(var + eps), averaged over H, W and the channels of each of
    `num_channels` channel slices; the value is appended as `num_channels`
    constant feature maps to every sample of the group.

    [B, H, W, C] -> [B, H, W, C + num_channels].
    Raises ValueError if B is not divisible by G (no silent fallback).
    """

    group_size: int = 4
    num_channels: int = 1
    eps: float = 1e-8
    dtype: Dtype = jnp.float32

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"MinibatchStdDev expects [B, H, W, C], got shape {x.shape}")
        b, h, w, c = x.shape
        g = min(self.group_size, b)
        f = self.num_channels
        if b % g:
            raise ValueError(f"batch size {b} is not divisible by the minibatch-stddev group size {g}")
        if c % f:
            raise ValueError(f"channels {c} not divisible by num_channels {f}")
        y = x.astype(jnp.float32).reshape(g, b // g, h, w, f, c // f)
        y = y - jnp.mean(y, axis=0)
        y = jnp.sqrt(jnp.mean(jnp.square(y), axis=0) + self.eps)  # [B/G, H, W, F, C/F]
        y = jnp.mean(y, axis=(1, 2, 4))  # [B/G, F]
        y = jnp.tile(y, (g, 1))  # row b -> group b % (B/G)
        y = jnp.broadcast_to(y[:, None, None, :], (b, h, w, f))
        return jnp.concatenate([x.astype(self.dtype), y.astype(self.dtype)], axis=-1)


class ModulatedConv(nn.Module):
    """Modulated (and demodulated) convolution ([SG2] sec. 2.2, eq. 1-3).

    With the equalized-LR kernel w [k, k, C_in, features] (scaled at runtime
    by `equalized_scale(k*k*C_in, gain)`) and per-sample styles s [B, C_in]:

      eq. 1 (modulation):   w'_ijk = s_i * w_ijk
      eq. 3 (demodulation): w''_ijk = w'_ijk / sqrt(sum_{i,k} w'_ijk**2 + eps)

    Implemented without per-sample kernels (the "non-fused" path of the
    reference code, mathematically identical): y = conv(x * s, w) * d, with
    d_j = 1/sqrt(sum_{i,k} (s_i w_ijk)**2 + eps). For i.i.d. unit-variance
    input the output then has unit std per channel (eq. 2).

    The style affine (an EqualizedDense with bias_init=1) is left to the
    caller. No bias, no noise (add them outside). Stride 1 with "SAME" zero
    padding, or with `up` / `down` the FIR-resampling convolution
    `conv2d_resample` in the reference's order: modulate, resample-convolve,
    demodulate (the styles and d are constant over pixels, so the resampling
    leaves eq. 1-3 unchanged).

    Call: x [B, H, W, C_in], style [B, C_in] -> [B, H', W', features],
    H' = H, 2H (up) or H/2 (down).
    """

    features: int
    kernel_size: int = 3
    demodulate: bool = True
    gain: float = 1.0
    eps: float = 1e-8
    up: bool = False
    down: bool = False
    pad_mode: str = "edge"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, style: jax.Array) -> jax.Array:
        if x.ndim != 4 or style.shape != (x.shape[0], x.shape[-1]):
            raise ValueError(f"expected x [B, H, W, C] and style [B, C]; got {x.shape}, {style.shape}")
        k, c_in = self.kernel_size, x.shape[-1]
        kernel = self.param("kernel", _normal_init(1.0), (k, k, c_in, self.features), self.param_dtype)
        w = kernel.astype(jnp.float32) * equalized_scale(k * k * c_in, self.gain)
        s = style.astype(jnp.float32)
        y = conv2d_resample(
            (x.astype(jnp.float32) * s[:, None, None, :]).astype(self.dtype),
            w,
            up=self.up,
            down=self.down,
            pad_mode=self.pad_mode,
        )
        if self.demodulate:
            # sum_{i,k} (s_i w_ijk)^2 = sum_i s_i^2 * sum_k w_ijk^2  -> [B, features]
            d = jax.lax.rsqrt(jnp.square(s) @ jnp.sum(jnp.square(w), axis=(0, 1)) + self.eps)
            y = y * d[:, None, None, :].astype(self.dtype)
        return y


# --- FIR resampling ([SG2]; filter [1,3,3,1], Zhang 2019) ---------------------

FIR_KERNEL = (1.0, 3.0, 3.0, 1.0)
_PAD_MODES = {"zeros": "constant", "edge": "edge", "reflect": "symmetric"}


def _fir_taps(kernel: Sequence[float], gain: float) -> tuple[float, float, float, float]:
    """The 1-D taps f = flip(k) / sum(k) * gain, applied as a correlation (i.e. k as a convolution)."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 1 or k.shape[0] != 4:
        raise ValueError(f"only length-4 separable FIR filters are supported, got {kernel}")
    return tuple(float(t) for t in (k / k.sum() * gain)[::-1])


def _pad1(x: jax.Array, axis: int, pad_mode: str) -> jax.Array:
    if pad_mode not in _PAD_MODES:
        raise ValueError(f"pad_mode must be one of {sorted(_PAD_MODES)}, got {pad_mode!r}")
    widths = [(0, 0)] * x.ndim
    widths[axis] = (1, 1)
    return jnp.pad(x, widths, mode=_PAD_MODES[pad_mode])


def _take(x: jax.Array, axis: int, start: int, stop: int, step: int = 1) -> jax.Array:
    return jax.lax.slice_in_dim(x, start, stop, step, axis=axis)


def _up_1d(x: jax.Array, axis: int, taps, pad_mode: str) -> jax.Array:
    # Zero insertion + 4-tap filter, written out: with xp = pad(x) (xp[j] = x[j-1]),
    # out[2i] = f0 xp[i] + f2 xp[i+1] and out[2i+1] = f1 xp[i+1] + f3 xp[i+2].
    n = x.shape[axis]
    xp = _pad1(x, axis, pad_mode)
    f0, f1, f2, f3 = (jnp.asarray(t, x.dtype) for t in taps)
    even = f0 * _take(xp, axis, 0, n) + f2 * _take(xp, axis, 1, n + 1)
    odd = f1 * _take(xp, axis, 1, n + 1) + f3 * _take(xp, axis, 2, n + 2)
    out = jnp.stack([even, odd], axis=axis + 1)
    return out.reshape(x.shape[:axis] + (2 * n,) + x.shape[axis + 1:])


def _down_1d(x: jax.Array, axis: int, taps, pad_mode: str) -> jax.Array:
    # Filter + stride 2, written out: out[i] = sum_t f_t xp[2i + t], xp = pad(x).
    n = x.shape[axis]
    xp = _pad1(x, axis, pad_mode)
    return sum(jnp.asarray(t, x.dtype) * _take(xp, axis, s, s + n - 1, 2) for s, t in enumerate(taps))


def _fir_valid_1d(x: jax.Array, axis: int, taps) -> jax.Array:
    # The 4-tap filter without padding or stride: out[i] = sum_t f_t x[i + t].
    n = x.shape[axis] - len(taps) + 1
    return sum(jnp.asarray(t, x.dtype) * _take(x, axis, s, s + n) for s, t in enumerate(taps))


def _pad_hw(x: jax.Array, pad: int, pad_mode: str) -> jax.Array:
    if pad_mode not in _PAD_MODES:
        raise ValueError(f"pad_mode must be one of {sorted(_PAD_MODES)}, got {pad_mode!r}")
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=_PAD_MODES[pad_mode])


def upsample2d(x: jax.Array, kernel: Sequence[float] = FIR_KERNEL, pad_mode: str = "edge") -> jax.Array:
    """2x FIR upsampling ([SG2] resampling filter [1,3,3,1]): zero-insertion, then the filter x4.

    With [1,3,3,1] this is bilinear (half-pixel) interpolation:
    out[2i] = x[i-1]/4 + 3x[i]/4, out[2i+1] = 3x[i]/4 + x[i+1]/4 per axis.
    Borders: the input is padded by one pixel with `pad_mode` before
    zero-insertion; "zeros" is the reference code's zero padding, "edge"
    (default) / "reflect" keep constant images constant.

    The separable filter is applied per axis as shifted slices and adds
    rather than as a depthwise convolution: the same numbers, and far cheaper
    (with its gradient) on CPUs, where XLA's grouped, dilated convolutions are slow.
    [B, H, W, C] -> [B, 2H, 2W, C], in x.dtype.
    """
    taps = _fir_taps(kernel, gain=2.0)  # gain 4 in 2-D: one zero-inserted sample in four is non-zero
    return _up_1d(_up_1d(x, 1, taps, pad_mode), 2, taps, pad_mode)


def downsample2d(x: jax.Array, kernel: Sequence[float] = FIR_KERNEL, pad_mode: str = "edge") -> jax.Array:
    """2x FIR downsampling ([SG2] resampling filter [1,3,3,1]): low-pass filter, then stride 2.

    Output pixel i is centred between input pixels 2i and 2i+1. The input is
    padded by one pixel with `pad_mode` ("zeros" = reference code; "edge"
    default / "reflect" keep constant images constant). Separable, as slices
    and adds (see `upsample2d`).
    [B, H, W, C] (H, W even) -> [B, H/2, W/2, C], in x.dtype.
    """
    if x.shape[1] % 2 or x.shape[2] % 2:
        raise ValueError(f"downsample2d needs even H and W, got shape {x.shape}")
    taps = _fir_taps(kernel, gain=1.0)
    return _down_1d(_down_1d(x, 1, taps, pad_mode), 2, taps, pad_mode)


_CONV_DIMS = ("NHWC", "HWIO", "NHWC")


def _transposed_conv2x(x: jax.Array, w: jax.Array) -> jax.Array:
    """conv(zero_insert(x), w), the stride-2 transposed convolution, as four sub-pixel convolutions.

    With z the zero-inserted input (z[2m] = x[m], z[2m+1] = 0) and the odd
    k x k kernel w centred (a = (k-1)/2 zeros around z), output row
    j = 2m + p (phase p) is sum_d w_d z[j + d - a]: only the taps with
    p + d - a even meet a sample, x[m + (p + d - a)/2]. Each of the 2 x 2
    phases is therefore a stride-1 convolution of x with every other tap of w,
    and the phases are interleaved into pixels: no multiply meets an inserted
    zero, and the gradients are plain convolutions too (XLA's CPU gradient of
    a dilated-input convolution is several times slower).

    x [B, N, M, C_in], w [k, k, C_in, C_out] -> [B, 2N, 2M, C_out] (the last
    row and column lie beyond the transposed convolution's 2N - 1 rows).
    """
    a = (w.shape[0] - 1) // 2

    def phase(p: int) -> tuple[slice, tuple[int, int]]:
        first = (a - p) % 2  # the first tap d with p + d - a even
        e_lo = (p + first - a) // 2
        e_hi = e_lo + len(range(first, w.shape[0], 2)) - 1
        return slice(first, None, 2), (-e_lo, e_hi)

    rows = []
    for py in (0, 1):
        taps_y, pad_y = phase(py)
        cols = []
        for px in (0, 1):
            taps_x, pad_x = phase(px)
            cols.append(
                jax.lax.conv_general_dilated(x, w[taps_y, taps_x], (1, 1), (pad_y, pad_x), dimension_numbers=_CONV_DIMS)
            )
        rows.append(jnp.stack(cols, axis=3))  # [B, N, M, 2 (px), C_out]
    y = jnp.stack(rows, axis=2)  # [B, N, 2 (py), M, 2 (px), C_out]
    b, n, _, m = y.shape[:4]
    return y.reshape(b, 2 * n, 2 * m, w.shape[3])


def conv2d_resample(
    x: jax.Array,
    w: jax.Array,
    *,
    up: bool = False,
    down: bool = False,
    kernel: Sequence[float] = FIR_KERNEL,
    pad_mode: str = "edge",
) -> jax.Array:
    """Convolution with optional 2x FIR up- or downsampling, in the order of [SG2]'s code.

    The order of the official StyleGAN2(-ADA) code's ``conv2d_resample``, which
    touches the full-resolution side only with the cheap FIR filter:

    * ``down``: the [1,3,3,1] filter (stride 1), then the k x k convolution
      with stride 2 (`strided_conv.conv_stride2`, whose higher derivatives
      stay fast on XLA:CPU): a quarter of the multiply-adds of a full-resolution
      convolution followed by `downsample2d`, and no full-resolution output
      activation. With k = 1 it is `downsample2d` then the 1x1 convolution.
    * ``up``: the transposed convolution with stride 2 (zero insertion, then
      the k x k convolution, computed without the inserted zeros by
      `_transposed_conv2x`), then the filter with gain 4: a quarter of the multiply-adds of `upsample2d` followed by
      a full-resolution convolution. With k = 1 it is `upsample2d` then the
      1x1 convolution.
    * neither: the plain stride-1 convolution, "SAME" zero padding.

    The filter and the convolution are both linear and shift-invariant, so
    away from the borders this equals the other order (convolve, then
    resample) with the same filter placement as `upsample2d` /
    `downsample2d` (half-pixel centres). At the borders the input is padded
    once, for filter and convolution together, with `pad_mode` ("zeros" is
    the reference code's zero padding; "edge", the default, keeps a constant
    border constant, as in `upsample2d` / `downsample2d`): ``down`` pads
    (k+1)/2 pixels, ``up`` pads one input pixel before the zero insertion.

    Args:
      x: [B, H, W, C_in] (H, W even with ``down``).
      w: [k, k, C_in, C_out] (HWIO), k odd; cast to x.dtype.
    Returns: [B, H', W', C_out] in x.dtype, H' = H/2 (down), 2H (up) or H.
    """
    if up and down:
        raise ValueError("conv2d_resample: up and down are exclusive")
    if x.ndim != 4 or w.ndim != 4 or w.shape[0] != w.shape[1] or w.shape[0] % 2 == 0 or w.shape[2] != x.shape[-1]:
        raise ValueError(f"expected x [B, H, W, C] and an odd square kernel [k, k, C, F]; got {x.shape}, {w.shape}")
    k, w = w.shape[0], w.astype(x.dtype)

    def conv(v, padding="VALID"):
        return jax.lax.conv_general_dilated(v, w, (1, 1), padding, dimension_numbers=_CONV_DIMS)

    if down:
        if x.shape[1] % 2 or x.shape[2] % 2:
            raise ValueError(f"conv2d_resample(down=True) needs even H and W, got shape {x.shape}")
        if k == 1:
            return conv(downsample2d(x, kernel, pad_mode))
        taps = _fir_taps(kernel, gain=1.0)
        g = _pad_hw(x, (k + 1) // 2, pad_mode)  # [B, H + k + 1, W + k + 1, C_in]
        g = _fir_valid_1d(_fir_valid_1d(g, 1, taps), 2, taps)  # [B, H + k - 2, W + k - 2, C_in]
        return conv_stride2(g, w)
    if up:
        if k == 1:
            return conv(upsample2d(x, kernel, pad_mode))
        taps = _fir_taps(kernel, gain=2.0)
        y = _transposed_conv2x(_pad_hw(x, 1, pad_mode), w)  # [B, 2H + 4, 2W + 4, C_out]
        return _fir_valid_1d(_fir_valid_1d(y[:, :-1, :-1], 1, taps), 2, taps)
    return conv(x, padding="SAME")


# --- widths and noise --------------------------------------------------------


def feature_maps(resolution: int, fmap_base: int = 8192, fmap_max: int = 512, fmap_min: int = 1) -> int:
    """Channels of the blocks working at `resolution` px: min(fmap_max, fmap_base / (resolution / 2)).

    The width schedule of [PGGAN] (and [SG2]'s configs): at fmap_base=8192,
    fmap_max=512 it is 512 up to 32 px, then halves per doubling (64 px: 256,
    256 px: 64, 512 px: 32). Test-sized models shrink fmap_base/fmap_max.
    """
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
    return int(max(fmap_min, min(fmap_max, fmap_base // (resolution // 2))))


class NoiseInput(nn.Module):
    """Per-pixel noise input ([SG2] fig. 2, StyleGAN's B): x + strength * n, n ~ N(0, 1) [B, H, W, 1].

    One learned scalar `strength` (initialised to 0, so noise starts off)
    scales a single-channel noise image broadcast over channels. Noise is
    drawn from the "noise" RNG stream; when the caller provides no such
    stream (deterministic evaluation), or `noise_mode="const"`, n = 0.
    [B, H, W, C] -> [B, H, W, C].
    """

    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, noise_mode: str = "random") -> jax.Array:
        if noise_mode not in ("random", "const"):
            raise ValueError(f"noise_mode must be 'random' or 'const', got {noise_mode!r}")
        strength = self.param("strength", nn.initializers.zeros, (), self.param_dtype)
        if noise_mode == "const" or not self.has_rng("noise"):
            return x.astype(self.dtype)
        b, h, w, _ = x.shape
        noise = jax.random.normal(self.make_rng("noise"), (b, h, w, 1), jnp.float32)
        return (x.astype(jnp.float32) + strength.astype(jnp.float32) * noise).astype(self.dtype)


def projection_score(out: jax.Array, labels: jax.Array) -> jax.Array:
    """Label-projection discriminator score sum_k out_k * labels_k: out [B, K], labels [B, K] -> [B].

    The study's resnet discriminator has one output per label, scored against
    the (multi-hot) condition (a projection discriminator, Miyato & Koyama
    2018, eq. 3, with the embedding being the label vector itself).
    """
    out = jnp.asarray(out)
    return jnp.sum(out * jnp.asarray(labels).astype(out.dtype), axis=-1)
