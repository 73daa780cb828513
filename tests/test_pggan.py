"""Progressive GAN: shapes at full size (traced only), tiny forward passes, exact fade-in / growth behaviour.

Full-size nets are only traced (jax.eval_shape); everything that runs uses
tiny widths (fmap_base=256, fmap_max=32, latent_dim=32) at 32 px, batch 4.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.errors import ScopeParamNotFoundError

from medgan.models.pggan import (
    Discriminator,
    Generator,
    downscale2d,
    phase_schedule,
    phase_stages,
    upscale2d,
)

KEY = jax.random.key(0)
K = 3
B = 4
TINY = dict(fmap_base=256, fmap_max=32)


def inputs(latent_dim=32, seed=0):
    kz, ky = jax.random.split(jax.random.key(seed))
    z = jax.random.normal(kz, (B, latent_dim))
    labels = (jax.random.uniform(ky, (B, K)) < 0.5).astype(jnp.float32)
    return z, labels


def tiny_models(**kw):
    return Generator(32, K, latent_dim=32, **TINY, **kw), Discriminator(32, K, **TINY, **kw)


@pytest.fixture(scope="module")
def tiny_params():
    G, D = tiny_models()
    z, labels = inputs()
    gp = jax.jit(G.init)(KEY, z, labels)
    dp = jax.jit(D.init)(jax.random.key(1), jnp.zeros((B, 32, 32, 1)), labels)
    return gp, dp


def tree_paths(tree):
    return {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)}


# --- full-size shapes (no compute) ----------------------------------------------


@pytest.mark.parametrize("resolution", [32, 64, 256, 512])
def test_default_width_shapes(resolution):
    G, D = Generator(resolution, K), Discriminator(resolution, K)
    z = jax.ShapeDtypeStruct((B, 512), jnp.float32)
    labels = jax.ShapeDtypeStruct((B, K), jnp.float32)
    images = jax.ShapeDtypeStruct((B, resolution, resolution, 1), jnp.float32)
    gp = jax.eval_shape(G.init, KEY, z, labels)
    dp = jax.eval_shape(D.init, KEY, images, labels)
    out = jax.eval_shape(G.apply, gp, z, labels)
    assert (out.shape, out.dtype) == ((B, resolution, resolution, 1), jnp.float32)
    logits, class_logits = jax.eval_shape(D.apply, dp, images, labels)
    assert (logits.shape, logits.dtype) == ((B,), jnp.float32)
    assert (class_logits.shape, class_logits.dtype) == ((B, K), jnp.float32)
    res = [4 * 2**i for i in range(int(np.log2(resolution)) - 1)]
    assert set(gp["params"]) == {f"block_{r}" for r in res} | {f"to_rgb_{r}" for r in res}
    assert set(dp["params"]) == {f"block_{r}" for r in res} | {f"from_rgb_{r}" for r in res}
    # [PGGAN] widths: 512 up to 32 px, then halving; nf(4) = 512.
    assert gp["params"]["block_4"]["dense"]["kernel"].shape == (512 + K, 16 * 512)
    assert gp["params"][f"to_rgb_{resolution}"]["kernel"].shape == (1, 1, min(512, 8192 // (resolution // 2)), 1)
    assert dp["params"]["block_4"]["out"]["kernel"].shape == (512, 1 + K)
    # a smaller stage traces with the full tree
    out8 = jax.eval_shape(G.clone(stage=8).apply, gp, z, labels, alpha=0.5)
    assert out8.shape == (B, resolution, resolution, 1)


# --- tiny forward passes -----------------------------------------------------------


def test_tiny_forward_finite(tiny_params):
    G, D = tiny_models()
    gp, dp = tiny_params
    z, labels = inputs()
    images = G.apply(gp, z, labels, rngs={"noise": KEY})  # the noise stream is ignored
    assert images.shape == (B, 32, 32, 1) and images.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(images))) and float(jnp.std(images)) > 0
    logits, class_logits = D.apply(dp, images, labels)
    assert logits.shape == (B,) and class_logits.shape == (B, K)
    assert bool(jnp.all(jnp.isfinite(logits))) and bool(jnp.all(jnp.isfinite(class_logits)))
    # labels condition G
    assert not np.allclose(G.apply(gp, z, 1.0 - labels), images)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((gp, dp)))


def test_bf16_compute_gives_float32_outputs(tiny_params):
    G, D = tiny_models(dtype=jnp.bfloat16)
    gp, dp = tiny_params
    z, labels = inputs()
    images = G.apply(gp, z, labels, alpha=jnp.float32(0.5))
    assert images.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(images)))
    ref = tiny_models()[0].apply(gp, z, labels, alpha=jnp.float32(0.5))
    assert float(jnp.max(jnp.abs(images - ref))) < 0.1 * float(jnp.max(jnp.abs(ref))) + 0.05
    logits, class_logits = D.clone(stage=16).apply(dp, images, labels, alpha=0.3)
    assert logits.dtype == jnp.float32 and class_logits.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(logits)))


# --- fade-in and growth ----------------------------------------------------------------


def test_resampling_helpers():
    x = jax.random.normal(KEY, (2, 4, 4, 3))
    up = upscale2d(x, 4)
    assert up.shape == (2, 16, 16, 3)
    np.testing.assert_array_equal(up[:, 4:8, 8:12], jnp.broadcast_to(x[:, 1:2, 2:3], (2, 4, 4, 3)))
    np.testing.assert_allclose(downscale2d(up, 4), x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(downscale2d(x)[:, 0, 0], jnp.mean(x[:, :2, :2], axis=(1, 2)), rtol=1e-6)


def test_generator_fade_start_equals_previous_stage(tiny_params):
    gp, _ = tiny_params
    z, labels = inputs()
    G = tiny_models()[0]
    at16 = G.clone(stage=16).apply(gp, z, labels, alpha=0.0)
    at8 = G.clone(stage=8).apply(gp, z, labels, alpha=1.0)
    np.testing.assert_array_equal(at16, at8)
    # and the 8 px image is constant on 4x4 patches (nearest upsample to 32 px)
    np.testing.assert_array_equal(at8, upscale2d(at8[:, ::4, ::4], 4))
    # alpha = 1 at stage 16 is the 16 px image; the full stage is different
    at16_1 = G.clone(stage=16).apply(gp, z, labels, alpha=1.0)
    np.testing.assert_array_equal(at16_1, upscale2d(at16_1[:, ::2, ::2], 2))
    assert not np.allclose(at16_1, at16)
    # the traced alpha gives the same values as the python constants
    np.testing.assert_allclose(G.clone(stage=16).apply(gp, z, labels, alpha=jnp.float32(1.0)), at16_1, atol=1e-6)
    mid = G.clone(stage=16).apply(gp, z, labels, alpha=0.25)
    np.testing.assert_allclose(mid, 0.75 * at16 + 0.25 * at16_1, atol=1e-5)


def test_discriminator_fade_start_equals_previous_stage(tiny_params):
    _, dp = tiny_params
    _, labels = inputs()
    images = jax.random.uniform(jax.random.key(3), (B, 32, 32, 1), minval=-1, maxval=1)
    D = tiny_models()[1]
    at16 = D.clone(stage=16).apply(dp, images, labels, alpha=0.0)
    at8 = D.clone(stage=8).apply(dp, images, labels, alpha=1.0)
    for a, b in zip(at16, at8):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # D at stage s only sees the s-px content: detail above 8 px does not change the stage-8 score
    detail = images - upscale2d(downscale2d(images, 4), 4)
    smooth = D.clone(stage=8).apply(dp, images - detail, labels)
    np.testing.assert_allclose(smooth[0], at8[0], rtol=1e-5, atol=1e-5)


def test_alpha_compiles_once(tiny_params):
    gp, dp = tiny_params
    z, labels = inputs()
    G, D = (m.clone(stage=16) for m in tiny_models())
    traces = []

    @jax.jit
    def step(gp, dp, z, labels, alpha):
        traces.append(1)
        images = G.apply(gp, z, labels, alpha=alpha)
        return images, D.apply(dp, images, labels, alpha=alpha)[0]

    outs = [step(gp, dp, z, labels, jnp.float32(a)) for a in (0.0, 0.3, 1.0)]
    assert len(traces) == 1
    assert not np.allclose(outs[0][0], outs[1][0]) and not np.allclose(outs[1][0], outs[2][0])
    np.testing.assert_allclose(outs[0][0], G.clone(stage=8).apply(gp, z, labels), atol=1e-6)


def test_param_tree_independent_of_stage_and_subset_used(tiny_params):
    gp, dp = tiny_params
    z, labels = inputs()
    G, D = tiny_models()
    images = jnp.zeros((B, 32, 32, 1))
    # init at any stage creates the same (full) tree
    assert tree_paths(jax.eval_shape(G.clone(stage=8).init, KEY, z, labels)) == tree_paths(gp)
    assert tree_paths(jax.eval_shape(D.clone(stage=8).init, KEY, images, labels)) == tree_paths(dp)
    # a stage-8 fade-in run uses exactly a subset: pruned trees give identical outputs
    g_used = {k: gp["params"][k] for k in ("block_4", "block_8", "to_rgb_4", "to_rgb_8")}
    d_used = {k: dp["params"][k] for k in ("block_4", "block_8", "from_rgb_4", "from_rgb_8")}
    G8, D8 = G.clone(stage=8), D.clone(stage=8)
    alpha = jnp.float32(0.4)
    full = G8.apply(gp, z, labels, alpha=alpha)
    np.testing.assert_array_equal(G8.apply({"params": g_used}, z, labels, alpha=alpha), full)
    for a, b in zip(D8.apply({"params": d_used}, full, labels, alpha=alpha), D8.apply(dp, full, labels, alpha=alpha)):
        np.testing.assert_array_equal(a, b)
    # the pruned tree is not enough for the next stage (it needs block_16 / to_rgb_16)
    with pytest.raises(ScopeParamNotFoundError):
        G.clone(stage=16).apply({"params": g_used}, z, labels)


def test_invalid_stage_and_alpha(tiny_params):
    gp, _ = tiny_params
    z, labels = inputs()
    G = tiny_models()[0]
    for stage in (4, 12, 64):
        with pytest.raises(ValueError, match="stage"):
            G.clone(stage=stage).apply(gp, z, labels)
    with pytest.raises(ValueError, match="alpha"):
        G.apply(gp, z, labels, alpha=1.5)
    with pytest.raises(ValueError, match="labels"):
        G.apply(gp, z, labels[:, :2])


# --- schedule --------------------------------------------------------------------------


def test_phase_stages():
    assert phase_stages(8, 32) == [8, 16, 32]
    assert phase_stages(32, 32) == [32]
    for bad in ((4, 32), (12, 32), (64, 32)):
        with pytest.raises(ValueError):
            phase_stages(*bad)


def test_phase_schedule_exact_values():
    sched = lambda t: phase_schedule(t, start=8, resolution=32, steps_per_phase=4)  # noqa: E731
    expected = [
        (8, 1.0), (8, 1.0), (8, 1.0), (8, 1.0),  # first stage: no fade
        (16, 0.0), (16, 0.25), (16, 0.5), (16, 0.75),  # fade in 16
        (16, 1.0), (16, 1.0), (16, 1.0), (16, 1.0),  # stabilise 16
        (32, 0.0), (32, 0.25), (32, 0.5), (32, 0.75),  # fade in 32
        (32, 1.0), (32, 1.0), (32, 1.0), (32, 1.0),  # stabilise 32
        (32, 1.0),
    ]
    assert [sched(t) for t in range(len(expected))] == expected
    assert sched(10**9) == (32, 1.0)
    assert phase_schedule(0, start=32, resolution=32, steps_per_phase=1) == (32, 1.0)
    assert phase_schedule(5, start=32, resolution=32, steps_per_phase=1) == (32, 1.0)
    with pytest.raises(ValueError):
        phase_schedule(-1, start=8, resolution=32, steps_per_phase=4)
    with pytest.raises(ValueError):
        phase_schedule(0, start=8, resolution=32, steps_per_phase=0)
