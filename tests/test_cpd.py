"""Tests of medgan.models.cpd: skip generator with conditional pixel norm, resnet projection discriminator."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medgan.models import cpd
from medgan.train import losses

K = 3
TINY = dict(fmap_base=256, fmap_max=32)
B = 4
R = 32
Z = 32


def _inputs(seed=0, b=B, r=R, c=1):
    kz, ky, kx = jax.random.split(jax.random.PRNGKey(seed), 3)
    z = jax.random.normal(kz, (b, Z))
    labels = (jax.random.uniform(ky, (b, K)) < 0.5).astype(jnp.float32)
    labels = labels.at[0].set(jnp.array([1.0, 1.0, 0.0]))  # at least one multi-hot row
    images = jax.random.uniform(kx, (b, r, r, c), minval=-1.0, maxval=1.0)
    return z, labels, images


def _tiny_g(**kw):
    return cpd.Generator(resolution=R, num_labels=K, latent_dim=Z, **TINY, **kw)


def _tiny_d(**kw):
    return cpd.Discriminator(resolution=R, num_labels=K, **TINY, **kw)


def _params(module, *args, seed=0):
    """Parameters of `module` without compiling its init (XLA-compiling the RNG of init costs seconds).

    The tree comes from `jax.eval_shape(module.init, ...)`; the values follow the
    layers' own initialisers at lr_multiplier 1 (kernels and `const` N(0, 1),
    biases 0), drawn with numpy. The real init is compiled once, in
    `test_forward_tiny_finite_const_input`.
    """
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        if path[-1].key == "bias":
            return jnp.zeros(leaf.shape, leaf.dtype)
        return jnp.asarray(rng.standard_normal(leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.fixture(scope="module")
def g_and_params():
    """(jitted G.apply, params) of the tiny 32 px generator."""
    g = _tiny_g()
    z, labels, _ = _inputs()
    params = _params(g, z, labels, seed=1)
    return jax.jit(g.apply), params


@pytest.fixture(scope="module")
def d_and_params():
    """(jitted D.apply, params) of the tiny 32 px discriminator."""
    d = _tiny_d()
    _, labels, images = _inputs()
    params = _params(d, images, labels, seed=2)
    return jax.jit(d.apply, static_argnames=("capture_intermediates",)), params


# --- shapes at all resolutions with default widths (abstract evaluation only) ----


@pytest.mark.parametrize("resolution,c", [(32, 1), (64, 3), (256, 1), (512, 1)])
def test_eval_shape_default_widths(resolution, c):
    b = 4
    z = jax.ShapeDtypeStruct((b, 512), jnp.float32)
    y = jax.ShapeDtypeStruct((b, K), jnp.float32)
    x = jax.ShapeDtypeStruct((b, resolution, resolution, c), jnp.float32)
    key = jax.random.PRNGKey(0)

    g = cpd.Generator(resolution=resolution, num_labels=K, channels=c)
    out, g_vars = jax.eval_shape(lambda z, y: g.init_with_output(key, z, y), z, y)
    assert out.shape == (b, resolution, resolution, c) and out.dtype == jnp.float32
    assert set(g_vars) == {"params"}
    res = cpd.resolutions(resolution)
    expected = {f"block_{r}" for r in res} | {f"to_rgb_{r}" for r in res}
    assert set(g_vars["params"]) == expected
    assert g_vars["params"][f"block_{resolution}"]["conv1"]["kernel"].shape[-1] == g.nf(resolution)

    d = cpd.Discriminator(resolution=resolution, num_labels=K, channels=c)
    (logits, cls), d_vars = jax.eval_shape(lambda x, y: d.init_with_output(key, x, y), x, y)
    assert logits.shape == (b,) and logits.dtype == jnp.float32
    assert cls is None
    expected = {f"from_rgb_{resolution}", "epilogue_4"} | {f"block_{r}" for r in cpd.resolutions(resolution)[1:]}
    assert set(d_vars["params"]) == expected
    assert d_vars["params"]["epilogue_4"]["out"]["kernel"].shape[-1] == K


def test_rejects_bad_resolution_and_shapes(g_and_params, d_and_params):
    z, labels, images = _inputs()
    with pytest.raises(ValueError, match="power of two"):
        cpd.Generator(resolution=48, num_labels=K, latent_dim=Z).init(jax.random.PRNGKey(0), z, labels)
    g_apply, gp = g_and_params
    with pytest.raises(ValueError, match="labels"):
        g_apply(gp, z, labels[:, :2])
    d_apply, dp = d_and_params
    with pytest.raises(ValueError, match="images"):
        d_apply(dp, images[:, :16, :16], labels)


# --- real forward at 32 px, tiny widths ---------------------------------------------


def test_forward_tiny_finite_const_input(d_and_params):
    """The constant-input variant (the default dense-input G is the fixture's)."""
    d_apply, dp = d_and_params
    z, labels, _ = _inputs()
    g = _tiny_g(const_input=True)
    init = jax.jit(lambda z, y: g.init_with_output({"params": jax.random.key(1, impl="unsafe_rbg")}, z, y))
    fake, gp = init(z, labels)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(gp))
    assert "const" in gp["params"]["block_4"] and "layer0" not in gp["params"]["block_4"]
    assert fake.shape == (B, R, R, 1) and fake.dtype == jnp.float32
    assert np.all(np.isfinite(fake)) and float(jnp.std(fake)) > 0
    logits, cls = d_apply(dp, fake, labels)
    assert logits.shape == (B,) and np.all(np.isfinite(logits)) and cls is None


def test_forward_tiny_finite_default(g_and_params, d_and_params):
    g_apply, gp = g_and_params
    d_apply, dp = d_and_params
    z, labels, images = _inputs()
    assert "layer0" in gp["params"]["block_4"]  # dense input from z by default
    fake = g_apply(gp, z, labels, rngs={"noise": jax.random.PRNGKey(5)})  # noise stream accepted, unused
    assert fake.shape == (B, R, R, 1) and fake.dtype == jnp.float32
    assert np.all(np.isfinite(fake)) and float(jnp.std(fake)) > 0
    for x in (fake, images):
        logits, cls = d_apply(dp, x, labels)
        assert logits.shape == (B,) and logits.dtype == jnp.float32 and cls is None
        assert np.all(np.isfinite(logits))


def test_bf16_compute_gives_f32_outputs(g_and_params, d_and_params):
    z, labels, images = _inputs()
    g_apply, gp = g_and_params
    d_apply, dp = d_and_params
    g16 = _tiny_g(dtype=jnp.bfloat16)
    d16 = _tiny_d(dtype=jnp.bfloat16)
    fake16, logits16 = jax.jit(lambda gp, dp: (g16.apply(gp, z, labels), d16.apply(dp, images, labels)[0]))(gp, dp)
    assert fake16.dtype == jnp.float32 and logits16.dtype == jnp.float32
    assert np.all(np.isfinite(fake16)) and np.all(np.isfinite(logits16))
    # params are float32 whatever the compute dtype
    p16 = jax.eval_shape(g16.init, jax.random.PRNGKey(1), z, labels)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(p16))
    # bf16 roughly tracks f32
    fake32 = g_apply(gp, z, labels)
    assert float(jnp.max(jnp.abs(fake16 - fake32))) < 0.1 * float(jnp.max(jnp.abs(fake32))) + 0.1


# --- generator conditioning ---------------------------------------------------------


def test_generator_depends_on_labels(g_and_params):
    g_apply, gp = g_and_params
    z, labels, _ = _inputs()
    a = g_apply(gp, z, labels)
    b = g_apply(gp, z, 1.0 - labels)
    assert float(jnp.max(jnp.abs(a - b))) > 1e-4
    assert np.all(np.max(np.abs(np.asarray(a - b)), axis=(1, 2, 3)) > 0)  # every example changes


def test_generator_labels_through_first_layer_and_cpn(g_and_params):
    """Labels enter G through the dense 4x4 input (the study's G_paper) and the CPNs, nowhere else.

    One-hot labels of two classes give [z, labels] the same norm, so the
    pixel norm before the first layer cannot tell them apart: only the label
    rows of the weights can.
    """
    g_apply, gp = g_and_params
    z, _, _ = _inputs()
    first, second = (jnp.zeros((z.shape[0], K)).at[:, k].set(1.0) for k in (0, 1))
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(gp))
    cpn_kernels = [k for k in flat if "affine" in k and k[-1] == "kernel"]
    assert len(cpn_kernels) == 2 * len(cpd.resolutions(R))  # cpn0, cpn1 per block
    dense = ("params", "block_4", "layer0", "kernel")
    assert flat[dense].shape[0] == Z + K  # the first layer reads [z, labels]
    for k in cpn_kernels:
        assert flat[k].shape[0] == Z + K  # conditioned on [z, labels]
        flat[k] = flat[k].at[Z:].set(0.0)
    no_cpn_labels = flax.traverse_util.unflatten_dict(flat)
    # the first layer alone makes every example depend on its label
    a, b = g_apply(no_cpn_labels, z, first), g_apply(no_cpn_labels, z, second)
    assert np.all(np.max(np.abs(np.asarray(a - b)), axis=(1, 2, 3)) > 1e-6)
    # without its label rows too, the two classes give the same images exactly
    flat[dense] = flat[dense].at[Z:].set(0.0)
    no_labels = flax.traverse_util.unflatten_dict(flat)
    np.testing.assert_array_equal(np.asarray(g_apply(no_labels, z, first)), np.asarray(g_apply(no_labels, z, second)))
    # ... while the gradient wrt labels with the original params is non-zero
    grad = jax.jit(jax.grad(lambda y: jnp.sum(g_apply(gp, z, y) ** 2)))(first)
    assert float(jnp.max(jnp.abs(grad))) > 0


def test_generator_examples_independent(g_and_params):
    g_apply, gp = g_and_params
    z, labels, _ = _inputs()
    z2, labels2, _ = _inputs(seed=7)
    # keep example 1, change all the others: example 1's image must not move
    z2, labels2 = z2.at[1].set(z[1]), labels2.at[1].set(labels[1])
    full = g_apply(gp, z, labels)
    other = g_apply(gp, z2, labels2)
    np.testing.assert_allclose(np.asarray(full[1]), np.asarray(other[1]), rtol=1e-6, atol=1e-6)
    assert float(jnp.max(jnp.abs(full[0] - other[0]))) > 1e-4


# --- discriminator projection ----------------------------------------------------


def test_discriminator_projection_exact(d_and_params):
    d_apply, dp = d_and_params
    _, labels, images = _inputs()
    (logits, _), inter = d_apply(
        dp, images, labels, capture_intermediates=lambda mdl, _: mdl.name == "out"
    )
    out = inter["intermediates"]["epilogue_4"]["out"]["__call__"][0]
    assert out.shape == (B, K)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(jnp.sum(out * labels, -1)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(logits), np.asarray(losses.projection_score(out, labels)), rtol=1e-6, atol=1e-6
    )
    # zero labels -> logits exactly zero
    zero, _ = d_apply(dp, images, jnp.zeros_like(labels))
    np.testing.assert_array_equal(np.asarray(zero), np.zeros(B, np.float32))
    # one-hot e_k reads out column k; labels only enter through the projection (linear)
    cols = [d_apply(dp, images, jnp.tile(jax.nn.one_hot(k, K)[None], (B, 1)))[0] for k in range(K)]
    out_from_onehots = jnp.stack(cols, -1)
    np.testing.assert_allclose(np.asarray(out_from_onehots), np.asarray(out), rtol=1e-6, atol=1e-6)
    soft = jnp.full((B, K), 0.3)
    np.testing.assert_allclose(
        np.asarray(d_apply(dp, images, soft)[0]), np.asarray(0.3 * jnp.sum(out, -1)), rtol=1e-5, atol=1e-6
    )


def test_wgan_gp_losses_finite_with_gradients(g_and_params, d_and_params):
    """The models plug into losses.wgan_gp_d_loss / gradient_penalty and produce finite gradients."""
    g_apply, gp = g_and_params
    d_apply, dp = d_and_params
    z, labels, real = _inputs()

    def d_loss(dp):
        fake = jax.lax.stop_gradient(g_apply(gp, z, labels))
        d_fn = lambda x: d_apply(dp, x, labels)[0]  # noqa: E731
        gpen = losses.gradient_penalty(d_fn, real, fake, jax.random.PRNGKey(3))
        return jnp.mean(d_fn(fake)) - jnp.mean(d_fn(real)) + 10.0 * gpen

    def g_loss(gp):
        return -jnp.mean(d_apply(dp, g_apply(gp, z, labels), labels)[0])

    both = jax.jit(lambda dp, gp: (jax.value_and_grad(d_loss)(dp), jax.value_and_grad(g_loss)(gp)))
    (ld, gd), (lg, gg) = both(dp, gp)
    for v in (ld, lg):
        assert np.isfinite(float(v))
    for tree in (gd, gg):
        leaves = jax.tree_util.tree_leaves(tree)
        assert all(np.all(np.isfinite(x)) for x in leaves)
        assert any(float(jnp.max(jnp.abs(x))) > 0 for x in leaves)


# --- resampling convolutions in the reference's order ---------------------------------


def _interior(x, border):
    return np.asarray(x)[:, border:-border, border:-border]


def test_fir_resampling_blocks_equal_the_full_resolution_order_inside_the_borders():
    """conv1 of D filters then strides, layer0 of G transposes then filters ([SG2] code's conv2d_resample);
    away from the borders both equal the full-resolution convolution with the FIR resampling outside it."""
    from medgan.models.layers import LRELU_GAIN, EqualizedConv, downsample2d, upsample2d

    x = jax.random.normal(jax.random.PRNGKey(5), (2, 16, 16, 4))
    block = cpd.DiscriminatorBlock(4, 6, resample="fir")
    params = _params(block, x, seed=3)
    out = block.apply(params, x)
    assert out.shape == (2, 8, 8, 6)
    ref = _d_block_reference(params["params"], x, downsample2d)
    np.testing.assert_allclose(_interior(out, 1), _interior(ref, 1), atol=1e-4)

    z, labels, _ = _inputs(b=2)
    gblock = cpd.GeneratorBlock(6, resample="fir")
    gparams = _params(gblock, x, z, labels, seed=4)
    y = gblock.apply(gparams, x, z, labels)
    assert y.shape == (2, 32, 32, 6)
    # the same block fed the FIR-upsampled input with a stride-1 layer0
    p = gparams["params"]
    plain = EqualizedConv(6, 3, gain=LRELU_GAIN).apply({"params": p["layer0"]}, upsample2d(x))
    ref = _cpn_tail(p, plain, z, labels)
    np.testing.assert_allclose(_interior(y, 2), _interior(ref, 2), atol=1e-3)


def test_box_resampling_is_the_studys_nearest_up_and_box_down_everywhere():
    """The study's GAN_cpd (as [PGGAN]): D's conv1 is the 3x3 convolution then the 2x2 mean, its skip the
    1x1 convolution of the 2x2 mean; G's layer0 the 3x3 convolution of the nearest-upsampled input; G's
    image skips nearest-upsample, so with the to_rgb layers above 4 px zeroed the 32 px image is the
    4 px one in 8 x 8 blocks. Exact at every pixel, borders included."""
    from medgan.models.layers import LRELU_GAIN, EqualizedConv
    from medgan.models.pggan import downscale2d, upscale2d

    x = jax.random.normal(jax.random.PRNGKey(5), (2, 16, 16, 4))
    block = cpd.DiscriminatorBlock(4, 6)
    params = _params(block, x, seed=3)
    np.testing.assert_allclose(block.apply(params, x), _d_block_reference(params["params"], x, downscale2d),
                               atol=1e-5)

    z, labels, _ = _inputs(b=2)
    gblock = cpd.GeneratorBlock(6)
    gparams = _params(gblock, x, z, labels, seed=4)
    plain = EqualizedConv(6, 3, gain=LRELU_GAIN).apply({"params": gparams["params"]["layer0"]}, upscale2d(x))
    np.testing.assert_allclose(gblock.apply(gparams, x, z, labels), _cpn_tail(gparams["params"], plain, z, labels),
                               atol=1e-4)

    g = _tiny_g()
    z, labels, _ = _inputs()
    gp = _params(g, z, labels, seed=1)
    zeroed = {"params": {k: (jax.tree_util.tree_map(jnp.zeros_like, v) if k.startswith("to_rgb_") and k != "to_rgb_4"
                             else v) for k, v in gp["params"].items()}}
    out = g.apply(zeroed, z, labels)
    np.testing.assert_array_equal(out, upscale2d(out[:, ::8, ::8], 8))
    assert float(jnp.std(out)) > 0
    fir = _tiny_g(resample="fir").apply(zeroed, z, labels)  # the FIR filter smooths the 8 x 8 blocks
    assert float(jnp.max(jnp.abs(fir - upscale2d(fir[:, ::8, ::8], 8)))) > 0.1 * float(jnp.std(fir))


def _d_block_reference(p, x, down):
    """`DiscriminatorBlock(4, 6)` with its parameters `p`, written out at full resolution with `down` after
    conv1 and before the skip's 1x1 convolution."""
    from medgan.models.layers import LRELU_GAIN, EqualizedConv

    conv = lambda name, k, v: EqualizedConv(6 if name != "conv0" else 4, k, gain=1.0 if name == "skip" else LRELU_GAIN,
                                            use_bias=name != "skip").apply({"params": p[name]}, v)
    h = jax.nn.leaky_relu(conv("conv0", 3, x), 0.2)
    h = jax.nn.leaky_relu(down(conv("conv1", 3, h)), 0.2)
    return (h + conv("skip", 1, down(x))) / np.sqrt(2.0)


def _cpn_tail(p, h, z, labels):
    """cpn0 -> lrelu -> conv1 -> cpn1 -> lrelu of `GeneratorBlock` with its parameters `p`."""
    from medgan.models.layers import LRELU_GAIN, ConditionalPixelNorm, EqualizedConv

    lrelu = lambda v: jax.nn.leaky_relu(v, 0.2)
    h = lrelu(ConditionalPixelNorm().apply({"params": p["cpn0"]}, h, z, labels))
    h = EqualizedConv(h.shape[-1], 3, gain=LRELU_GAIN).apply({"params": p["conv1"]}, h)
    return lrelu(ConditionalPixelNorm().apply({"params": p["cpn1"]}, h, z, labels))


def test_a_generator_description_names_its_resampling_and_older_ones_rebuild_as_trained():
    from medgan import configuration
    from medgan.models import gans

    cfg = configuration.gan_config()
    cfg.model = "cpd"
    description = gans.describe(cfg, 32, K, 1)
    assert (description["resample"], description["mbstd_group_size"]) == ("box", 4)
    assert gans.spec_from(description).generator.resample == "box"
    older = {k: v for k, v in description.items() if k not in ("resample", "mbstd_group_size")}
    spec = gans.spec_from(older)  # written before the keys existed: cpd resampled with the FIR filter
    built = (spec.generator.resample, spec.discriminator.resample, spec.discriminator.mbstd_group_size)
    assert built == ("fir", "fir", 4)
    job = configuration.base_config("train_gan")
    job.gan.resample = "bilinear"
    with pytest.raises(configuration.ConfigError, match=r"config\.gan\.resample='bilinear'"):
        configuration.validate(job)
