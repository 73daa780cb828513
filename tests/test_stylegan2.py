"""StyleGAN2: shapes at every resolution, tiny forward passes, mapping/synthesis, noise, projection D, path length.

Compile time dominates these tests on CPU, so XLA's optimisation passes are
switched off for this module (`jax_disable_most_optimizations`, restored
afterwards): same maths, ~3x faster compiles. Exact-behaviour tests use 16 px.
"""

import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medgan.models import stylegan2
from medgan.models.stylegan2 import Discriminator, Generator, num_ws_for, path_length_penalty

K = 4
B = 4
TINY_G = dict(latent_dim=32, fmap_base=256, fmap_max=32, w_dim=32, mapping_layers=2)
TINY_D = dict(fmap_base=256, fmap_max=32, mapping_layers=2)


def inputs(b=B, z_dim=32, seed=0):
    z = jax.random.normal(jax.random.key(seed), (b, z_dim))
    labels = jnp.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 1]], jnp.float32)[:b]
    return z, labels


@pytest.fixture(scope="module", autouse=True)
def _fast_compiles():
    old = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)


def test_num_ws():
    assert [num_ws_for(r) for r in (8, 32, 256, 512)] == [4, 8, 14, 16]
    with pytest.raises(ValueError):
        num_ws_for(48)


@pytest.mark.parametrize("resolution", [32, 64, 256, 512])
def test_eval_shape_default_widths(resolution):
    g = Generator(resolution, K)
    d = Discriminator(resolution, K)
    z, labels = inputs(z_dim=512)
    keys = {"params": jax.random.key(0), "noise": jax.random.key(1)}
    g_params = jax.eval_shape(g.init, keys, z, labels)
    img = jax.eval_shape(lambda p: g.apply(p, z, labels, rngs={"noise": jax.random.key(2)}), g_params)
    assert img.shape == (B, resolution, resolution, 1) and img.dtype == jnp.float32
    assert g_params["params"]["synthesis_network"]["const"].shape == (4, 4, 512)
    assert f"to_rgb_{resolution}" in g_params["params"]["synthesis_network"]
    x = jnp.zeros((B, resolution, resolution, 1))
    d_params = jax.eval_shape(d.init, jax.random.key(0), x, labels)
    logits, class_logits = jax.eval_shape(lambda p: d.apply(p, x, labels), d_params)
    assert logits.shape == (B,) and logits.dtype == jnp.float32 and class_logits is None
    assert f"from_rgb_{resolution}" in d_params["params"] and "label_mapping" in d_params["params"]


# --- real forward at 32 px, tiny widths -----------------------------------------


@pytest.fixture(scope="module")
def forward32():
    g = Generator(32, K, **TINY_G)
    d = Discriminator(32, K, **TINY_D)
    z, labels = inputs()
    keys = {"params": jax.random.key(1), "noise": jax.random.key(2)}
    img, g_vars = jax.jit(g.init_with_output)(keys, z, labels)
    d_init = jax.jit(lambda k, x, y: d.init_with_output(k, x, y, mutable=True))
    (logits, class_logits), d_vars = d_init(jax.random.key(3), img, labels)
    return img, g_vars, logits, class_logits, d_vars


def test_forward_32_shapes_finite(forward32):
    img, g_vars, logits, class_logits, d_vars = forward32
    assert img.shape == (B, 32, 32, 1) and img.dtype == jnp.float32
    assert np.isfinite(np.asarray(img)).all() and float(jnp.std(img)) > 0.05
    assert logits.shape == (B,) and logits.dtype == jnp.float32 and np.isfinite(np.asarray(logits)).all()
    assert class_logits is None
    for leaf in jax.tree_util.tree_leaves(g_vars["params"]) + jax.tree_util.tree_leaves(d_vars["params"]):
        assert leaf.dtype == jnp.float32
    # descriptive, deterministic parameter names
    synth = g_vars["params"]["synthesis_network"]
    expected = {"const", "block_4_conv1", "to_rgb_4"}
    for r in (8, 16, 32):
        expected |= {f"block_{r}_conv0", f"block_{r}_conv1", f"to_rgb_{r}"}
    assert set(synth) == expected
    assert set(g_vars["params"]["mapping_network"]) == {"embed", "dense_0", "dense_1"}
    assert set(synth["block_8_conv0"]) == {"affine", "conv", "noise", "bias"}


def test_discriminator_projection_conditioning(forward32):
    """logits = sum(out * cmap, -1) / sqrt(cmap_dim), cmap = label mapping; cmap_dim defaults to nf(4)."""
    img, _, logits, _, d_vars = forward32
    inter = d_vars["intermediates"]
    out, cmap = inter["projection_out"][0], inter["cmap"][0]
    assert out.shape == cmap.shape == (B, 32)
    np.testing.assert_allclose(
        np.asarray(logits), np.asarray(jnp.sum(out * cmap, -1) / math.sqrt(32)), rtol=1e-5, atol=1e-6
    )
    assert float(jnp.max(jnp.abs(cmap[0] - cmap[1]))) > 1e-4  # different labels -> different embeddings


def test_bf16_compute_gives_float32_outputs():
    g = Generator(8, K, dtype=jnp.bfloat16, **TINY_G)
    d = Discriminator(8, K, dtype=jnp.bfloat16, **TINY_D)
    z, labels = inputs()
    img, g_vars = jax.jit(g.init_with_output)({"params": jax.random.key(1), "noise": jax.random.key(2)}, z, labels)
    assert img.dtype == jnp.float32 and img.shape == (B, 8, 8, 1) and np.isfinite(np.asarray(img)).all()
    (logits, _), d_vars = jax.jit(d.init_with_output)(jax.random.key(3), img, labels)
    assert logits.dtype == jnp.float32 and np.isfinite(np.asarray(logits)).all()
    for leaf in jax.tree_util.tree_leaves(g_vars["params"]) + jax.tree_util.tree_leaves(d_vars["params"]):
        assert leaf.dtype == jnp.float32


# --- exact behaviour at 16 px -----------------------------------------------------

G16 = Generator(16, K, **TINY_G)
CALL = jax.jit(lambda p, z, y, k: G16.apply(p, z, y, rngs={"noise": k}))
CALL_NO_RNG = jax.jit(lambda p, z, y: G16.apply(p, z, y))
MAPPING = jax.jit(lambda p, z, y: G16.apply(p, z, y, method="mapping"))
SYNTH = jax.jit(lambda p, w, k: G16.apply(p, w, method="synthesis", rngs={"noise": k}))


@pytest.fixture(scope="module")
def g16():
    z, labels = inputs()
    variables = jax.jit(G16.init)({"params": jax.random.key(1), "noise": jax.random.key(2)}, z, labels)
    return variables, z, labels


def _set_noise_strength(variables, value):
    def f(path, leaf):
        names = [getattr(k, "key", None) for k in path]
        return jnp.full_like(leaf, value) if names[-2:] == ["noise", "strength"] else leaf

    return jax.tree_util.tree_map_with_path(f, variables)


def test_mapping_and_synthesis_compose_to_call(g16):
    variables, z, labels = g16
    variables = _set_noise_strength(variables, 0.3)  # noise must also be drawn identically
    key = jax.random.key(5)
    w = MAPPING(variables, z, labels)
    assert w.shape == (B, 32) and w.dtype == jnp.float32
    via_call, via_methods = CALL(variables, z, labels, key), SYNTH(variables, w, key)
    np.testing.assert_allclose(np.asarray(via_call), np.asarray(via_methods), atol=1e-6)
    # labels enter through the mapping network: other labels, other images
    other = CALL(variables, z, labels[::-1], key)
    assert float(jnp.max(jnp.abs(other - CALL(variables, z, labels, key)))) > 1e-3


def test_noise_only_matters_when_strengths_nonzero(g16):
    variables, z, labels = g16
    key = jax.random.key(6)
    off = CALL(variables, z, labels, key)  # init strengths are 0
    np.testing.assert_array_equal(np.asarray(off), np.asarray(CALL_NO_RNG(variables, z, labels)))
    noisy_vars = _set_noise_strength(variables, 0.5)
    noisy = CALL(noisy_vars, z, labels, key)
    assert float(jnp.max(jnp.abs(noisy - off))) > 1e-3
    assert float(jnp.max(jnp.abs(noisy - CALL(noisy_vars, z, labels, jax.random.key(7))))) > 1e-3
    # without the "noise" stream the noise is zero whatever the strengths
    np.testing.assert_array_equal(np.asarray(CALL_NO_RNG(noisy_vars, z, labels)), np.asarray(off))


def test_truncation_psi_zero_gives_w_avg_image(g16):
    variables, z, labels = g16
    w_avg = stylegan2.estimate_w_avg(G16, variables, jnp.tile(labels, (4, 1)), jax.random.key(8))
    assert w_avg.shape == (32,)
    trunc = jax.jit(lambda p, z, y, wa: G16.apply(p, z, y, truncation_psi=0.0, noise_mode="const", w_avg=wa))
    img = trunc(variables, z, labels, w_avg)
    ref = SYNTH(variables, jnp.broadcast_to(w_avg, (B, 32)), jax.random.key(0))  # noise strengths are 0
    np.testing.assert_allclose(np.asarray(img), np.asarray(ref), atol=1e-5)


def test_path_length_penalty_ema_and_gradients(g16):
    variables, z, labels = g16
    pl_mean = jnp.float32(1.5)

    def loss(p):
        penalty, new_mean, lengths = path_length_penalty(G16, p, z, labels, jax.random.key(9), pl_mean, decay=0.01)
        return penalty, (new_mean, lengths)

    (penalty, (new_mean, lengths)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables)
    assert lengths.shape == (B,) and np.isfinite(np.asarray(lengths)).all() and float(jnp.min(lengths)) > 0
    expected_mean = 1.5 + 0.01 * (float(jnp.mean(lengths)) - 1.5)
    assert float(new_mean) == pytest.approx(expected_mean, rel=1e-6)
    assert float(penalty) == pytest.approx(float(jnp.mean(jnp.square(lengths - new_mean))), rel=1e-5)
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(np.isfinite(np.asarray(g)).all() for g in leaves)
    flat = flax.traverse_util.flatten_dict(grads["params"], sep="/")
    assert float(jnp.max(jnp.abs(flat["synthesis_network/block_16_conv1/conv/kernel"]))) > 0
    assert float(jnp.max(jnp.abs(flat["mapping_network/dense_1/kernel"]))) > 0
    # the bare params tree (as the training state holds it) is accepted too
    assert stylegan2._as_variables(variables["params"]) == {"params": variables["params"]}
    assert stylegan2._as_variables(variables) is variables


def test_upsampling_layer_equals_modulated_conv_of_the_upsampled_input_inside_the_borders():
    """SynthesisLayer(up) modulates, transposes (stride 2), filters, demodulates ([SG2] code's conv2d_resample);
    away from the borders that equals the stride-1 layer on the FIR-upsampled input with the same parameters."""
    from medgan.models.layers import upsample2d
    from medgan.models.stylegan2 import SynthesisLayer

    x = jax.random.normal(jax.random.key(7), (2, 8, 8, 4))
    w = jax.random.normal(jax.random.key(8), (2, 16))
    layer = SynthesisLayer(6, up=True)
    params = jax.jit(layer.init)(jax.random.key(9), x, w)
    y = layer.apply(params, x, w, noise_mode="const")
    ref = SynthesisLayer(6).apply(params, upsample2d(x), w, noise_mode="const")
    assert y.shape == ref.shape == (2, 16, 16, 6)
    np.testing.assert_allclose(np.asarray(y)[:, 1:-1, 1:-1], np.asarray(ref)[:, 1:-1, 1:-1], atol=1e-4)
