"""Non-finite updates are skipped, counted, and stop a run that keeps producing them (medgan.train.faults)."""

import itertools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medgan import sharding
from medgan.models import gans
from medgan.train import classifier_step, faults, gan_step, loop, state as state_lib

K = 3


class _Tiny(nn.Module):
    @nn.compact
    def __call__(self, x, *, train):
        x = nn.Conv(4, (3, 3), strides=2)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        return nn.Dense(K)(nn.relu(x).mean(axis=(1, 2)))


def _host(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def _batch(bad: bool, b=8, side=8):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(b, side, side, 1)).astype(np.float32)
    if bad:
        image[3, 2, 2, 0] = np.nan
    return {"image": image, "labels": (rng.random((b, K)) < 0.5).astype(np.float32)}


def test_a_classifier_step_with_a_nan_image_keeps_the_state_and_counts_the_skip():
    mesh = sharding.make_mesh()
    state = state_lib.create_classifier_state(_Tiny(), state_lib.adam(1e-2), jax.random.key(0), (1, 8, 8, 1), mesh)
    train, _ = classifier_step.make_steps(mesh)
    before = _host((state.params, state.batch_stats, state.opt_state))
    state, metrics = train(state, jax.device_put(_batch(bad=True), sharding.batch_sharding(mesh)),
                           jax.random.key(0), jnp.ones(K))
    assert float(metrics[faults.SKIPPED]) == 1.0 and not np.isfinite(float(metrics["loss"]))
    assert int(state.step) == 1
    jax.tree.map(np.testing.assert_array_equal, _host((state.params, state.batch_stats, state.opt_state)), before)
    state, metrics = train(state, jax.device_put(_batch(bad=False), sharding.batch_sharding(mesh)),
                           jax.random.key(0), jnp.ones(K))
    assert float(metrics[faults.SKIPPED]) == 0.0 and int(state.step) == 2
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), _host(state.params), before[0])
    assert all(jax.tree.leaves(changed))


def test_a_gan_step_with_a_nan_image_keeps_everything_but_the_step():
    """The guard is the step's, the same for every model: pggan, the cheapest to compile, stands for all."""
    mesh = sharding.make_mesh()
    spec = gans.make_gan("pggan", resolution=8, num_labels=K, latent_dim=8, fmap_base=64, fmap_max=8, w_dim=8,
                         mapping_layers=1)
    hp = gan_step.GanHyperparameters(augment=spec.default_augment, global_batch_size=8, r1_interval=1)
    state = gan_step.create_gan_state(spec, hp, jax.random.key(0), mesh)
    before = _host(state)
    train = gan_step.make_train_step(spec, hp, mesh)
    state, metrics = train(state, jax.device_put(_batch(bad=True), sharding.batch_sharding(mesh)),
                           jax.random.key(1), np.float32(1.0), 0)
    assert float(metrics[faults.SKIPPED]) == 1.0
    after = _host(state)
    assert int(after.step) == 1
    jax.tree.map(np.testing.assert_array_equal, after.replace(step=before.step), before)


def _scripted_loop(workdir, skipped_at, num_steps, limit, checkpoint_every=4):
    """A loop whose step reports `skipped` at the steps in `skipped_at` (1-based) and NaN losses there."""
    def step_fn(state, batch):
        step = state["step"] + 1
        bad = jnp.isin(step, jnp.asarray(sorted(skipped_at) or [-1]))
        metrics = {"loss": jnp.where(bad, jnp.nan, 1.0), faults.SKIPPED: bad.astype(jnp.float32)}
        return {"step": step, "w": jnp.where(bad, state["w"], state["w"] + 1.0)}, metrics

    return loop.train_loop(
        workdir=workdir, state={"step": jnp.zeros((), jnp.int32), "w": jnp.zeros(())}, step_fn=jax.jit(step_fn),
        make_batches=lambda start: itertools.repeat(None), num_steps=num_steps, checkpoint_every=checkpoint_every,
        log_every=2, progress_desc=None, max_skipped_in_a_row=limit,
    )


def test_scattered_skips_are_counted_and_the_run_finishes(tmp_path):
    result = _scripted_loop(tmp_path, skipped_at={3, 5, 6, 9}, num_steps=12, limit=3)
    assert (result.reason, result.steps, result.skipped_steps) == (loop.FINISHED, 12, 4)
    assert float(result.state["w"]) == 8.0


def test_skips_in_a_row_stop_the_run_without_saving_so_the_last_checkpoint_is_finite(tmp_path):
    with pytest.raises(faults.NonFiniteTraining, match=r"the last 4 updates up to step 10 .* step 8 holds the last"):
        _scripted_loop(tmp_path, skipped_at={7, 8, 9, 10}, num_steps=20, limit=4)
    saved = sorted(int(d) for d in os.listdir(tmp_path / loop.CHECKPOINT_DIR) if d.isdigit())
    assert saved == [8]
    manager = loop.checkpoint_manager(tmp_path / loop.CHECKPOINT_DIR)
    state, _ = loop.restore(manager, {"step": jnp.zeros((), jnp.int32), "w": jnp.zeros(())})
    manager.close()
    assert float(state["w"]) == 6.0  # steps 1-6 updated, 7 and 8 skipped
