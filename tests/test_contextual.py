"""The contextual lesion GAN: shapes at the study's sizes, the lesion channel's rules, fade-in, and its step."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medgan import sharding
from medgan.models import contextual
from medgan.models.contextual import COMBINED, INPUT, LESION, ContextualSpec
from medgan.train import contextual_step, losses

TINY = ContextualSpec(resolution=32, base_filters=4, max_filters=32, centre_filters=16, attention_resolution=8,
                      border=3, d_filter_factor=2)


def _images(seed, b=4, r=32):
    return np.tanh(np.random.default_rng(seed).normal(size=(b, r, r, 1))).astype(np.float32)


@pytest.mark.parametrize("stage", [128, 256])
def test_the_study_sizes_have_the_papers_shapes(stage):
    spec = ContextualSpec()  # 256 px, 16 filters doubling, 4 x 4 x 2048 centre, 1 x 1 x 4 code, attention at 32
    generator = contextual.ContextualGenerator(spec, stage=stage)
    discriminator = contextual.ContextualDiscriminator(spec, stage=stage)
    images = jax.ShapeDtypeStruct((2, 256, 256, 1), jnp.float32)
    scalars = jax.ShapeDtypeStruct((2, spec.scalar_count()), jnp.float32)
    g_vars = jax.eval_shape(generator.init, jax.random.key(0), images, scalars)
    out = jax.eval_shape(lambda v, x, z: generator.apply(v, x, z, 0.5), g_vars, images, scalars)
    assert out.shape == (2, 256, 256, 3) and spec.scalar_count() == 12
    params = g_vars["params"]
    assert params["enc_256"]["Conv_0"]["kernel"].shape == (3, 3, 2, 16)  # image + scalar -> 16 filters
    assert params["enc_8"]["Conv_0"]["kernel"].shape[-1] == 512  # doubling per block down to 4 x 4
    assert params["centre"]["Conv_0"]["kernel"].shape[-1] == 2048
    assert params["embedding"]["kernel"].shape == (4 * 4 * 2048, 4)
    assert "enc_attention_32" in params and "dec_attention_32" in params
    d_vars = jax.eval_shape(discriminator.init, jax.random.key(0), images)
    assert d_vars["params"]["block_256"]["Conv_0"]["kernel"].shape == (3, 3, 1, 128)  # 8x the filters
    assert "Conv_0/kernel/u" in d_vars["batch_stats"]["block_256"]["sn"]  # spectrally normalised
    logits = jax.eval_shape(lambda v, x: discriminator.apply(v, x, 0.5), d_vars, images)
    assert logits.shape == (2, len(contextual.D_CLASSES))


@pytest.mark.parametrize("stage, alpha", [(16, 1.0), (32, 0.3), (32, 1.0)])
def test_the_lesion_is_zero_in_the_border_and_the_combined_image_is_input_plus_lesion(stage, alpha):
    generator = contextual.ContextualGenerator(TINY, stage=stage)
    x = jnp.asarray(_images(0))
    scalars = contextual.generator_scalars(jax.random.key(1), 4, TINY)
    variables = contextual.ContextualGenerator(TINY).init(jax.random.key(0), x, scalars)  # both phases' params
    out = np.asarray(generator.apply(variables, x, scalars, alpha))
    lesion = out[..., LESION]
    assert np.all(lesion[:, :3] == 0) and np.all(lesion[:, -3:] == 0)
    assert np.all(lesion[:, :, :3] == 0) and np.all(lesion[:, :, -3:] == 0)
    assert np.any(lesion[:, 3:-3, 3:-3] != 0) and np.all(np.abs(lesion) <= 1)
    np.testing.assert_allclose(out[..., COMBINED], out[..., INPUT] + lesion, atol=1e-6)
    if stage == 32 and alpha == 1.0:
        np.testing.assert_array_equal(out[..., INPUT], np.asarray(x)[..., 0])
    other = np.asarray(generator.apply(variables, x, -scalars, alpha))
    assert np.abs(other[..., LESION] - lesion).max() > 1e-4  # the scalars vary the lesion


def test_the_fade_blends_the_two_phases_linearly():
    x = jnp.asarray(_images(1))
    scalars = contextual.generator_scalars(jax.random.key(2), 4, TINY)
    variables = contextual.ContextualGenerator(TINY).init(jax.random.key(0), x, scalars)
    grown = contextual.ContextualGenerator(TINY, stage=32)
    before = np.asarray(grown.apply(variables, x, scalars, 0.0))
    low = np.asarray(contextual.ContextualGenerator(TINY, stage=16).apply(variables, x, scalars))
    np.testing.assert_allclose(before, low, atol=1e-5)  # alpha 0 is the previous phase exactly
    after = np.asarray(grown.apply(variables, x, scalars, 1.0))
    assert contextual_step.fade_alpha(99, 100, 3000) == 0.0
    assert contextual_step.fade_alpha(100 + 750, 100, 3000) == 0.25
    assert contextual_step.fade_alpha(100 + 3000, 100, 3000) == contextual_step.fade_alpha(10**6, 100, 3000) == 1.0
    np.testing.assert_allclose(before[..., INPUT], np.asarray(
        jnp.repeat(jnp.repeat(x.reshape(4, 16, 2, 16, 2).mean((2, 4)), 2, 1), 2, 2)), atol=1e-6)
    assert np.abs(after - before).max() > 1e-3


def test_the_dragan_penalty_and_the_semi_supervised_loss_have_their_known_values():
    # D(x) = w . x has gradient w everywhere: penalty (|w| - 1)^2 wherever it is taken.
    w = jnp.full((2, 2, 1), 0.25)
    penalty = losses.dragan_penalty(lambda x: jnp.sum(x * w, axis=(1, 2, 3)), jnp.ones((3, 2, 2, 1)),
                                    jax.random.key(0))
    assert float(penalty) == pytest.approx((0.5 - 1.0) ** 2, rel=1e-4)
    logits = jnp.log(jnp.array([[0.5, 0.25, 0.125, 0.125]]))
    assert float(losses.real_fake_logit(logits)[0]) == pytest.approx(np.log(0.75 / 0.25), rel=1e-5)
    loss = losses.semi_supervised_d_loss({"real": logits, "benign": logits}, {"benign": 0.5},
                                         {"real": 0, "benign": 2})
    assert float(loss) == pytest.approx(-np.log(0.5) - 0.5 * np.log(0.125), rel=1e-5)


def _batches(n, b=8):
    return [{key: _images(10 * i + k, b) for k, key in enumerate(contextual_step.BATCH_KEYS)} for i in range(n)]


def _run(mesh, hp, batches, stage=0, alpha=1.0, spec=TINY):
    state = contextual_step.create_state(spec, hp, jax.random.key(0), mesh)
    step = contextual_step.ContextualStep(spec, hp, mesh)
    rng = jax.device_put(jax.random.key(1), sharding.replicated(mesh))
    metrics = []
    for b in batches:
        state, m = step(state, jax.device_put(b, sharding.batch_sharding(mesh)), rng, np.float32(alpha), stage)
        metrics.append(jax.device_get(m))
    return jax.device_get(state), metrics


def test_a_step_is_finite_moves_both_networks_and_8_devices_equal_1():
    hp = contextual_step.ContextualHyperparameters(g_steps=2)  # masses: two G updates per D update
    batches = _batches(2)
    state8, metrics8 = _run(sharding.make_mesh(), hp, batches, stage=32, alpha=0.5)
    state1, metrics1 = _run(sharding.make_mesh(jax.devices()[:1]), hp, batches, stage=32, alpha=0.5)
    for m in metrics8:
        assert all(np.isfinite(v) for v in m.values()), m
        assert m["skipped"] == 0 and m["dragan"] > 0
    assert int(state8.step) == 2
    init = jax.device_get(contextual_step.create_state(TINY, hp, jax.random.key(0), sharding.make_mesh()))
    for name in ("g_params", "d_params", "d_stats"):
        moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                             getattr(state8, name), getattr(init, name))
        assert max(jax.tree.leaves(moved)) > 0, name
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5),
                     getattr(state8, name), getattr(state1, name))
    for a, b in zip(metrics8, metrics1):
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=2e-4, atol=2e-5, err_msg=key)


def test_without_spectral_norm_d_keeps_no_power_iteration_state_and_its_logits_follow_the_kernels_scale():
    plain = dataclasses.replace(TINY, spectral_norm=False)
    images = _images(3)
    sn_vars = contextual.ContextualDiscriminator(TINY).init(jax.random.key(0), images)
    plain_vars = contextual.ContextualDiscriminator(plain).init(jax.random.key(0), images)
    assert "batch_stats" in sn_vars and "batch_stats" not in plain_vars
    # Spectral normalisation divides each kernel by its largest singular value, so scaling every kernel
    # leaves the normalised D's logits as they were and changes the plain D's.
    scaled = jax.tree_util.tree_map_with_path(
        lambda path, leaf: 3.0 * leaf if "kernel" in jax.tree_util.keystr(path) else leaf, sn_vars["params"])
    sn_d, plain_d = contextual.ContextualDiscriminator(TINY), contextual.ContextualDiscriminator(plain)
    np.testing.assert_allclose(sn_d.apply({**sn_vars, "params": scaled}, images),
                               sn_d.apply(sn_vars, images), rtol=1e-4, atol=1e-5)
    assert not np.allclose(plain_d.apply({"params": scaled}, images), plain_d.apply({"params": sn_vars["params"]},
                                                                                     images), atol=1e-3)
    state, metrics = _run(sharding.make_mesh(jax.devices()[:1]), contextual_step.ContextualHyperparameters(),
                          _batches(2), spec=plain)
    assert all(np.isfinite(v) for m in metrics for v in m.values())
    assert state.d_stats == {} and int(state.step) == 2
    init = contextual_step.create_state(plain, contextual_step.ContextualHyperparameters(), jax.random.key(0),
                                        sharding.make_mesh(jax.devices()[:1]))
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), state.d_params,
                         jax.device_get(init.d_params))
    assert max(jax.tree.leaves(moved)) > 0


def test_the_batch_stream_resumes_where_it_stopped_and_follows_the_growth_schedule():
    images = _images(5, b=20)
    roles = {key: np.arange(5 * k, 5 * k + 5) for k, key in enumerate(contextual_step.BATCH_KEYS)}
    mesh = sharding.make_mesh(jax.devices()[:1])
    stream = contextual_step.batches(images, roles, 4, mesh, 7, TINY, grow_steps=2, fade_steps=4, start_step=0)
    first = [next(stream) for _ in range(6)]
    resumed = next(contextual_step.batches(images, roles, 4, mesh, 7, TINY, 2, 4, start_step=3))
    for key in contextual_step.BATCH_KEYS:
        np.testing.assert_array_equal(np.asarray(resumed["batch"][key]), np.asarray(first[3]["batch"][key]))
        rows = {int(np.argmax(np.all(images == x, axis=(1, 2, 3)))) for x in np.asarray(first[0]["batch"][key])}
        assert rows <= set(roles[key].tolist())  # each role draws only its own patches
    assert [(item["stage"], item["alpha"]) for item in first] == [(16, 1.0), (16, 1.0), (32, 0.0), (32, 0.25),
                                                                 (32, 0.5), (32, 0.75)]


@pytest.mark.slow
def test_the_job_trains_each_lesion_model_and_writes_its_generator_and_samples(tmp_path):
    from medgan import configuration, main

    patches = configuration.base_config("mammo_patches")
    patches.mammo.update(phantom_patients=8, height=256, patch=32, per_lesion=2, normals_per_image=4)
    prepared = main.run_job(patches, str(tmp_path / "patches"))
    config = configuration.base_config("train_contextual")
    config.mammo.update(patch=32, patches_dir=prepared["patches_dir"])
    config.contextual.update(lesion="removal", base_filters=4, max_filters=16, centre_filters=16,
                             attention_resolution=8, border=3, d_filter_factor=2, global_batch_size=8,
                             num_steps=3, grow_steps=1, fade_steps=1, checkpoint_every=3, sample_every=3,
                             log_every=1)
    result = main.run_job(config, str(tmp_path / "gan"))
    assert result["steps"] == 3 and result["skipped_steps"] == 0 and result["lesion"] == "removal"
    assert result["hyperparameters"]["g_steps"] == 1 and min(result["roles"].values()) > 0
    assert (tmp_path / "gan" / result["samples"]).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "gan" / "generator").is_dir() and 0 <= result["kept_after_post_processing"] <= 1
