"""GAN layers: equalized LR, (conditional) pixel norm, minibatch stddev, modulated conv, FIR resampling,
resampling convolutions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medgan.models.layers import (
    LRELU_GAIN,
    ConditionalPixelNorm,
    EqualizedConv,
    EqualizedDense,
    MinibatchStdDev,
    ModulatedConv,
    PixelNorm,
    conv2d_resample,
    downsample2d,
    equalized_scale,
    upsample2d,
)

KEY = jax.random.key(0)


def normal(seed, shape):
    return jax.random.normal(jax.random.key(seed), shape)


# --- equalized learning rate --------------------------------------------------


def test_equalized_dense_stored_std_and_output_variance():
    x = normal(1, (4096, 256))
    layer = EqualizedDense(128)
    v = layer.init(KEY, x)
    assert v["params"]["kernel"].dtype == jnp.float32
    assert abs(float(jnp.std(v["params"]["kernel"])) - 1.0) < 0.02
    y = layer.apply(v, x)
    assert y.shape == (4096, 128)
    assert abs(float(jnp.var(y)) - 1.0) < 0.1
    # gain sqrt(2) (for leaky ReLU) doubles the variance
    y2 = EqualizedDense(128, gain=LRELU_GAIN).apply(v, x)
    assert abs(float(jnp.var(y2)) - 2.0) < 0.2


def test_equalized_conv_stored_std_and_output_variance():
    x = normal(2, (16, 16, 16, 32))
    layer = EqualizedConv(64, kernel_size=3)
    v = layer.init(KEY, x)
    assert v["params"]["kernel"].shape == (3, 3, 32, 64)
    assert abs(float(jnp.std(v["params"]["kernel"])) - 1.0) < 0.05
    y = layer.apply(v, x)[:, 1:-1, 1:-1]  # interior: SAME zero padding lowers border variance
    assert abs(float(jnp.var(y)) - 1.0) < 0.15


def test_equalized_runtime_scale_exact():
    assert equalized_scale(3 * 3 * 8, gain=2.0, lr_multiplier=0.5) == 2.0 * 0.5 / math.sqrt(72)
    x = normal(3, (2, 5, 5, 8))
    conv = EqualizedConv(4, kernel_size=3, gain=LRELU_GAIN, bias_init=0.3)
    v = conv.init(KEY, x)
    w = np.asarray(v["params"]["kernel"]) * (math.sqrt(2) / math.sqrt(72))
    ref = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + 0.3
    np.testing.assert_allclose(conv.apply(v, x), ref, rtol=1e-5, atol=1e-5)

    xd = normal(4, (3, 10))
    dense = EqualizedDense(6, lr_multiplier=0.01, bias_init=0.5)
    vd = dense.init(KEY, xd)
    # stored: N(0, 1/lr^2) weights, bias_init/lr; runtime: * lr/sqrt(fan_in), * lr
    assert np.allclose(vd["params"]["bias"], 50.0)
    ref = xd @ (np.asarray(vd["params"]["kernel"]) * (0.01 / math.sqrt(10))) + 0.5
    np.testing.assert_allclose(dense.apply(vd, xd), ref, rtol=1e-5, atol=1e-5)


def test_equalized_bf16_compute_f32_params():
    x = normal(5, (2, 4, 4, 3))
    conv = EqualizedConv(5, dtype=jnp.bfloat16)
    v = conv.init(KEY, x)
    assert v["params"]["kernel"].dtype == jnp.float32
    assert conv.apply(v, x).dtype == jnp.bfloat16


# --- pixel norm -----------------------------------------------------------------


def test_pixel_norm_unit_mean_square():
    x = 3.0 * normal(6, (2, 4, 4, 16)) + 1.0
    y = PixelNorm().apply({}, x)
    assert y.shape == x.shape
    np.testing.assert_allclose(jnp.mean(y**2, axis=-1), 1.0, rtol=1e-5)


def test_conditional_pixel_norm():
    x = normal(7, (4, 4, 4, 8))
    z = normal(8, (4, 6))
    cpn = ConditionalPixelNorm(num_classes=3)
    labels_a = jnp.array([0, 0, 0, 0])
    labels_b = jnp.array([0, 1, 2, 0])
    v = cpn.init(KEY, x, z, labels_a)
    ya = cpn.apply(v, x, z, labels_a)
    yb = cpn.apply(v, x, z, labels_b)
    assert ya.shape == x.shape
    np.testing.assert_array_equal(ya, cpn.apply(v, x, z, labels_a))
    np.testing.assert_array_equal(ya[0], yb[0])  # same label, same z and x
    np.testing.assert_array_equal(ya[3], yb[3])
    assert not np.allclose(ya[1], yb[1]) and not np.allclose(ya[2], yb[2])
    # same z and x, different labels -> different outputs
    xs, zs = jnp.repeat(x[:1], 3, 0), jnp.repeat(z[:1], 3, 0)
    y3 = cpn.apply(v, xs, zs, jnp.array([0, 1, 2]))
    assert not np.allclose(y3[0], y3[1]) and not np.allclose(y3[1], y3[2])
    # multi-hot [B, K] float labels equal one-hot of int labels
    np.testing.assert_allclose(cpn.apply(v, x, z, jax.nn.one_hot(labels_b, 3)), yb, rtol=1e-6)
    # zero affine weights -> plain pixel norm
    v0 = jax.tree.map(jnp.zeros_like, v)
    np.testing.assert_allclose(cpn.apply(v0, x, z, labels_b), PixelNorm().apply({}, x), rtol=1e-6)


# --- minibatch stddev ----------------------------------------------------------


def test_minibatch_stddev_exact():
    x = normal(9, (4, 2, 2, 3))
    y = MinibatchStdDev(group_size=2).apply({}, x)
    assert y.shape == (4, 2, 2, 4)
    np.testing.assert_array_equal(y[..., :3], x)
    xn = np.asarray(x, np.float64)
    for b in range(4):
        group = xn[[b % 2, b % 2 + 2]]  # strided groups: {0, 2}, {1, 3}
        expected = np.mean(np.sqrt(np.var(group, axis=0) + 1e-8))
        np.testing.assert_allclose(y[b, ..., 3], expected, rtol=1e-5)
    # group_size > B: one group of the whole batch
    y1 = MinibatchStdDev(group_size=8).apply({}, x)
    np.testing.assert_allclose(y1[0, 0, 0, 3], np.mean(np.sqrt(np.var(xn, axis=0) + 1e-8)), rtol=1e-5)


def test_minibatch_stddev_indivisible_batch_raises():
    with pytest.raises(ValueError, match="not divisible"):
        MinibatchStdDev(group_size=4).apply({}, jnp.zeros((6, 2, 2, 3)))


# --- modulated conv --------------------------------------------------------------


def test_modulated_conv_demodulated_unit_std():
    x = normal(10, (8, 16, 16, 32))
    style = jnp.exp(normal(11, (8, 32)))  # arbitrary positive styles
    mc = ModulatedConv(16)
    v = mc.init(KEY, x, style)
    y = mc.apply(v, x, style)[:, 1:-1, 1:-1]
    std = jnp.std(y, axis=(0, 1, 2))
    assert y.shape[-1] == 16
    np.testing.assert_allclose(std, 1.0, atol=0.1)


def test_modulated_conv_unit_style_no_demod_is_plain_conv():
    x = normal(12, (2, 6, 6, 5))
    mc = ModulatedConv(7, demodulate=False, gain=LRELU_GAIN)
    v = mc.init(KEY, x, jnp.ones((2, 5)))
    w = np.asarray(v["params"]["kernel"]) * equalized_scale(9 * 5, LRELU_GAIN)
    ref = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(mc.apply(v, x, jnp.ones((2, 5))), ref, rtol=1e-5, atol=1e-5)
    # the demodulated path equals explicit per-sample w'' (eq. 1 and 3)
    s = jnp.exp(normal(13, (2, 5)))
    yd = ModulatedConv(7, gain=LRELU_GAIN).apply(v, x, s)
    for b in range(2):
        wb = w * np.asarray(s[b])[None, None, :, None]
        wb = wb / np.sqrt((wb**2).sum(axis=(0, 1, 2), keepdims=True) + 1e-8)
        ref_b = jax.lax.conv_general_dilated(
            x[b : b + 1], wb, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        np.testing.assert_allclose(yd[b : b + 1], ref_b, rtol=1e-4, atol=1e-5)


# --- FIR resampling ------------------------------------------------------------------


def test_fir_shapes_and_constants():
    x = jnp.full((2, 8, 6, 3), 0.7)
    assert upsample2d(x).shape == (2, 16, 12, 3)
    assert downsample2d(x).shape == (2, 4, 3, 3)
    np.testing.assert_allclose(downsample2d(x), 0.7, rtol=1e-6)
    np.testing.assert_allclose(upsample2d(x), 0.7, rtol=1e-6)
    # bf16 in, bf16 out
    assert upsample2d(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
    assert downsample2d(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
    # reference zero padding darkens only the border
    z = downsample2d(x, pad_mode="zeros")
    np.testing.assert_allclose(z[:, 1:-1, 1:-1], 0.7, rtol=1e-6)
    assert float(z[0, 0, 0, 0]) < 0.7


def test_fir_upsample_is_bilinear_and_roundtrip_recovers_smooth_image():
    x1 = jnp.arange(4.0).reshape(1, 4, 1, 1) * jnp.ones((1, 1, 4, 1))
    up = upsample2d(x1)[0, :, 0, 0]
    # out[2i] = x[i-1]/4 + 3x[i]/4, out[2i+1] = 3x[i]/4 + x[i+1]/4 (edge padded)
    np.testing.assert_allclose(up, [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0], rtol=1e-6)
    h = 32
    yy, xx = np.meshgrid(np.arange(h), np.arange(h), indexing="ij")
    img = np.sin(2 * np.pi * yy / h) * np.cos(2 * np.pi * xx / h)
    x = jnp.asarray(img, jnp.float32)[None, :, :, None]
    rec = downsample2d(upsample2d(x))
    assert rec.shape == x.shape
    assert float(jnp.max(jnp.abs(rec - x))) < 0.05


# --- widths and noise --------------------------------------------------------


def test_feature_maps_schedule():
    from medgan.models.layers import feature_maps

    assert [feature_maps(r) for r in (4, 8, 32, 64, 256, 512, 1024)] == [512, 512, 512, 256, 64, 32, 16]
    assert feature_maps(32, fmap_base=256, fmap_max=32) == 16
    with pytest.raises(ValueError, match="power of two"):
        feature_maps(48)


def test_noise_input_random_const_and_without_rng():
    from medgan.models.layers import NoiseInput

    x = normal(3, (2, 8, 8, 4))
    layer = NoiseInput()
    params = {"params": {"strength": jnp.asarray(0.5)}}
    noisy = layer.apply(params, x, rngs={"noise": jax.random.key(1)})
    delta = noisy - x
    # one noise image per sample, broadcast over channels, scaled by strength
    np.testing.assert_allclose(delta[..., 0], delta[..., 3], atol=1e-6)
    assert 0.3 < float(jnp.std(delta)) < 0.7
    np.testing.assert_array_equal(layer.apply(params, x), x)
    np.testing.assert_array_equal(layer.apply(params, x, noise_mode="const", rngs={"noise": jax.random.key(1)}), x)
    init = layer.init(jax.random.key(0), x)
    assert float(init["params"]["strength"]) == 0.0


def _upfirdn_reference(x, kernel, up, pad_mode):
    """Naive numpy 2-D FIR resampling: pad 1, zero-insert (up) or not, convolve with outer(k, k), stride."""
    k = np.asarray(kernel, np.float64)
    k2 = np.outer(k, k) / k.sum() ** 2 * (4.0 if up else 1.0)
    mode = {"zeros": "constant", "edge": "edge", "reflect": "symmetric"}[pad_mode]
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)), mode=mode)
    b, h, w, c = xp.shape
    if up:
        z = np.zeros((b, 2 * h - 1, 2 * w - 1, c))
        z[:, ::2, ::2] = xp
        xp, stride = z, 1
    else:
        stride = 2
    flipped = k2[::-1, ::-1]  # convolution
    oh, ow = (xp.shape[1] - 4) // stride + 1, (xp.shape[2] - 4) // stride + 1
    out = np.zeros((b, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * stride:i * stride + 4, j * stride:j * stride + 4]
            out[:, i, j] = np.einsum("bhwc,hw->bc", patch, flipped)
    return out


@pytest.mark.parametrize("pad_mode", ["zeros", "edge", "reflect"])
def test_fir_resampling_matches_a_naive_2d_reference_for_an_asymmetric_kernel(pad_mode):
    x = normal(7, (2, 6, 8, 3))
    kernel = (1.0, 2.0, 3.0, 4.0)
    np.testing.assert_allclose(upsample2d(x, kernel, pad_mode), _upfirdn_reference(x, kernel, True, pad_mode),
                               atol=1e-5)
    np.testing.assert_allclose(downsample2d(x, kernel, pad_mode), _upfirdn_reference(x, kernel, False, pad_mode),
                               atol=1e-5)


# --- resampling convolutions ---------------------------------------------------------------

_PAD = {"zeros": "constant", "edge": "edge", "reflect": "symmetric"}


def _conv_valid_np(x, w, stride=1):
    """Naive numpy correlation without padding: x [B, H, W, C], w [k, k, C, F] -> [B, H', W', F]."""
    k = w.shape[0]
    oh, ow = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, i, j] = np.einsum("bhwc,hwcf->bf", patch, w)
    return out


def _fir_valid_np(x, kernel, gain):
    """Naive numpy convolution with outer(k, k) / sum(k)**2 * gain per channel, no padding."""
    k = np.asarray(kernel, np.float64)
    k2 = (np.outer(k, k) / k.sum() ** 2 * gain)[::-1, ::-1]
    c = x.shape[-1]
    return _conv_valid_np(x, k2[:, :, None, None] * np.eye(c)[None, None], 1)


def _conv_resample_reference(x, w, up, down, kernel, pad_mode):
    """[SG2]'s conv2d_resample written plainly: pad, filter, stride-2 conv; or pad, zero-insert, conv, filter."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    k = w.shape[0]
    if down:
        p = (k + 1) // 2
        xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode=_PAD[pad_mode])
        return _conv_valid_np(_fir_valid_np(xp, kernel, 1.0), w, stride=2)
    assert up
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=_PAD[pad_mode])
    b, h, wd, c = xp.shape
    z = np.zeros((b, 2 * h - 1, 2 * wd - 1, c))
    z[:, ::2, ::2] = xp
    a = (k - 1) // 2
    z = np.pad(z, ((0, 0), (a, a), (a, a), (0, 0)))
    return _fir_valid_np(_conv_valid_np(z, w), kernel, 4.0)


@pytest.mark.parametrize("pad_mode", ["zeros", "edge"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_conv_resample_matches_a_naive_reference(k, pad_mode):
    x = normal(20, (2, 6, 8, 3))
    w = normal(21, (k, k, 3, 4))
    kernel = (1.0, 2.0, 3.0, 4.0)  # asymmetric: catches a flipped filter
    for up, down, shape in ((True, False, (2, 12, 16, 4)), (False, True, (2, 3, 4, 4))):
        y = conv2d_resample(x, w, up=up, down=down, kernel=kernel, pad_mode=pad_mode)
        assert y.shape == shape
        np.testing.assert_allclose(y, _conv_resample_reference(x, w, up, down, kernel, pad_mode), atol=1e-4)


def _same_conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("pad_mode", ["zeros", "edge"])
def test_conv_resample_equals_the_full_resolution_order_away_from_the_borders(pad_mode):
    x = normal(22, (2, 12, 12, 3))
    w = normal(23, (3, 3, 3, 5))
    down = conv2d_resample(x, w, down=True, pad_mode=pad_mode)
    old = downsample2d(_same_conv(x, w), pad_mode=pad_mode)
    np.testing.assert_allclose(down[:, 1:-1, 1:-1], old[:, 1:-1, 1:-1], atol=1e-4)
    up = conv2d_resample(x, w, up=True, pad_mode=pad_mode)
    old = _same_conv(upsample2d(x, pad_mode=pad_mode), w)
    np.testing.assert_allclose(up[:, 1:-1, 1:-1], old[:, 1:-1, 1:-1], atol=1e-4)
    # a 1x1 convolution commutes with the filter everywhere
    w1 = normal(24, (1, 1, 3, 5))
    np.testing.assert_allclose(conv2d_resample(x, w1, down=True, pad_mode=pad_mode),
                               downsample2d(_same_conv(x, w1), pad_mode=pad_mode), atol=1e-5)
    np.testing.assert_allclose(conv2d_resample(x, w1, up=True, pad_mode=pad_mode),
                               upsample2d(_same_conv(x, w1), pad_mode=pad_mode), atol=1e-5)


@pytest.mark.parametrize("resolution", [8, 16, 64])
def test_conv_resample_shapes_dtype_and_constant_borders(resolution):
    x = jnp.full((2, resolution, resolution, 3), 0.5, jnp.bfloat16)
    w = jnp.full((3, 3, 3, 2), 1.0 / 27)
    assert conv2d_resample(x, w).shape == (2, resolution, resolution, 2)
    for up, size in ((True, 2 * resolution), (False, resolution // 2)):
        y = conv2d_resample(x, w, up=up, down=not up)
        assert y.shape == (2, size, size, 2) and y.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(y, np.float32), 0.5, rtol=1e-2)  # "edge" keeps a constant constant
    with pytest.raises(ValueError, match="exclusive"):
        conv2d_resample(x, w, up=True, down=True)
    with pytest.raises(ValueError, match="odd square kernel"):
        conv2d_resample(x, jnp.ones((2, 2, 3, 2)), up=True)


def test_equalized_and_modulated_conv_resample_with_their_own_parameters():
    x = normal(25, (2, 8, 8, 4))
    for up, down in ((True, False), (False, True)):
        conv = EqualizedConv(6, gain=LRELU_GAIN, bias_init=0.3, up=up, down=down)
        v = conv.init(KEY, x)
        assert jax.tree.map(jnp.shape, v) == jax.tree.map(jnp.shape, EqualizedConv(6).init(KEY, x))
        w = v["params"]["kernel"] * equalized_scale(9 * 4, LRELU_GAIN)
        np.testing.assert_allclose(conv.apply(v, x), conv2d_resample(x, w, up=up, down=down) + 0.3, atol=1e-5)
    # modulate, upsample-convolve, demodulate: equal to modulated conv of the upsampled input inside the borders
    s = jnp.exp(normal(26, (2, 4)))
    mc = ModulatedConv(5, up=True)
    v = mc.init(KEY, x, s)
    y = mc.apply(v, x, s)
    ref = ModulatedConv(5).apply(v, upsample2d(x), s)
    assert y.shape == (2, 16, 16, 5)
    np.testing.assert_allclose(y[:, 1:-1, 1:-1], ref[:, 1:-1, 1:-1], atol=1e-4)
