"""The generic train loop: resume == uninterrupted (SIGTERM mid-run), best checkpoint, plateau control,
metrics files."""

import glob
import itertools
import os
import signal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import decode_index

from medgan import sharding
from medgan.data import pipeline
from medgan.train import classifier_step, loop, state as state_lib

K = 4  # CodedSource labels


class TinyCNN(nn.Module):
    @nn.compact
    def __call__(self, x, *, train):
        x = nn.Conv(4, (3, 3), strides=2, use_bias=False)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        return nn.Dense(K)(nn.relu(x).mean(axis=(1, 2)))


def _classifier_run(prepared, fold, mesh, consumed, pos_weight):
    """(state, step_fn, batches, evaluate, controller) of a tiny classifier run on the coded cohort."""
    state = state_lib.create_classifier_state(
        TinyCNN(), state_lib.adam(1e-2), jax.random.key(0), (1, 16, 16, 1), mesh
    )
    train, evaluate_batch = classifier_step.make_steps(mesh, flip=True)
    key = jax.random.key(1)

    def step_fn(state, batch):
        return train(state, batch, key, pos_weight)

    def batches(start_step):
        stream = pipeline.train_batches(
            prepared.dataset_dir, fold.ids["train"], global_batch_size=8, mesh=mesh, seed=0, start_step=start_step
        )
        for batch in stream:  # record which images each step consumed
            consumed.append(sorted(decode_index(im)[0] for im in np.asarray(batch["image"])))
            yield batch

    val = pipeline.EvalBatches(prepared.dataset_dir, fold.ids["val"] + fold.ids["test"], global_batch_size=8, mesh=mesh)

    def evaluate(state):
        losses = []
        for batch in val:
            out = evaluate_batch(state, batch)
            logits = jnp.log(out["scores"]) - jnp.log1p(-out["scores"])
            losses.append(classifier_step.class_weighted_bce(logits, out["labels"], pos_weight, out["mask"]))
        return {"val_loss": float(np.mean(losses))}

    controller = loop.PlateauController(
        # min_delta 1: no evaluation counts as an improvement, so the LR drops at every evaluation after the first
        metric="val_loss", mode="min", scale_learning_rate=state_lib.scale_learning_rate, plateau_patience=1,
        early_stop_patience=None,
        min_delta=1.0,
    )
    return state, step_fn, batches, evaluate, controller


def _run(workdir, prepared, fold, consumed, hooks=()):
    mesh = sharding.make_mesh()
    pos_weight = jnp.ones(K)
    state, step_fn, batches, evaluate, controller = _classifier_run(prepared, fold, mesh, consumed, pos_weight)
    result = loop.train_loop(
        workdir=workdir, state=state, step_fn=step_fn, make_batches=batches, num_steps=8, checkpoint_every=3,
        log_every=2, eval_every=2, evaluate=evaluate, controller=controller, best_metric="val_loss",
        best_mode="min", hooks=hooks,
    )
    return result, controller


def _host(state):
    return jax.tree.map(np.asarray, jax.device_get((state.step, state.params, state.batch_stats, state.opt_state)))


def test_a_run_preempted_by_sigterm_resumes_to_exactly_the_uninterrupted_result(coded_dataset, tmp_path):
    prepared, fold = coded_dataset
    consumed_full = []
    full, full_controller = _run(tmp_path / "full", prepared, fold, consumed_full)
    assert (full.reason, full.steps) == (loop.FINISHED, 8)
    assert full_controller.lr_factor < 1  # the plateau schedule acted, so its state must survive the resume

    def sigterm_at_5(step, state):
        if step == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    consumed = []
    first, _ = _run(tmp_path / "split", prepared, fold, consumed, hooks=[sigterm_at_5])
    assert (first.reason, first.steps) == (loop.PREEMPTED, 5)
    assert signal.getsignal(signal.SIGTERM) is not None  # the loop's handler is gone again
    assert 5 in [int(d) for d in os.listdir(tmp_path / "split" / loop.CHECKPOINT_DIR) if d.isdigit()]
    second, controller = _run(tmp_path / "split", prepared, fold, consumed)
    assert (second.reason, second.steps) == (loop.FINISHED, 8)

    # The data stream resumed at batch 6: the same images in the same steps.
    assert len(consumed_full) == 8 and consumed[:5] + consumed[-3:] == consumed_full
    assert len(consumed) == 8
    # Bit-identical state, learning rate (plateau drops) and controller state.
    jax.tree.map(np.testing.assert_array_equal, _host(second.state), _host(full.state))
    assert controller.state_dict() == full_controller.state_dict()
    assert (second.best_step, second.best_metrics) == (full.best_step, full.best_metrics)
    # A run that has finished does nothing when started again.
    again, _ = _run(tmp_path / "split", prepared, fold, consumed)
    assert (again.reason, again.steps) == (loop.FINISHED, 8) and len(consumed) == 8
    # TensorBoard events with train, eval and progress scalars.
    tags = _event_tags(tmp_path / "full")
    assert {"train/loss", "train/grad_norm", "train/learning_rate", "eval/val_loss", "steps_per_sec"} <= tags


def _event_tags(logdir):
    import tensorflow as tf

    files = glob.glob(str(logdir / "events.out.tfevents*"))
    assert files, f"no TensorBoard event file in {logdir}"
    return {v.tag for f in files for event in tf.compat.v1.train.summary_iterator(f) for v in event.summary.value}


def _scripted(tmp_path, values, **kwargs):
    """A loop over a fixed batch whose evaluation returns values[step] (no data pipeline)."""
    mesh = sharding.make_mesh()
    state = state_lib.create_classifier_state(TinyCNN(), state_lib.adam(1e-2), jax.random.key(0), (1, 8, 8, 1), mesh)
    train, _ = classifier_step.make_steps(mesh)
    rng = np.random.default_rng(0)
    batch = jax.device_put(
        {"image": rng.normal(size=(8, 8, 8, 1)).astype(np.float32),
         "labels": (rng.random((8, K)) < 0.5).astype(np.float32)},
        sharding.batch_sharding(mesh),
    )
    state_steps = []

    def evaluate(state):
        step = int(state.step)
        state_steps.append(step)
        return {"auc": values[step], "other": 1.0}

    result = loop.train_loop(
        workdir=tmp_path, state=state, step_fn=lambda s, b: train(s, b, jax.random.key(0), jnp.ones(K)),
        make_batches=lambda start: itertools.repeat(batch), num_steps=max(values), log_every=3, eval_every=2,
        evaluate=evaluate, **kwargs,
    )
    return result, state_steps


def test_the_best_checkpoint_by_the_metric_is_kept_besides_the_latest(tmp_path):
    values = {2: 0.5, 4: 0.9, 6: 0.3, 8: 0.2}
    result, evaluated = _scripted(tmp_path, values, checkpoint_every=100, best_metric="auc", best_mode="max")
    assert evaluated == [2, 4, 6, 8] and result.reason == loop.FINISHED
    assert sorted(int(d) for d in os.listdir(tmp_path / loop.CHECKPOINT_DIR) if d.isdigit()) == [4, 8]
    assert result.best_step == 4 and result.best_metrics == {"auc": 0.9, "other": 1.0} and result.best_value == 0.9
    assert int(result.best_state.step) == 4 and int(result.state.step) == 8
    assert result.steps_run == 8 and result.timed_steps == 7 and result.images_per_second(8) > 0
    manager = loop.checkpoint_manager(tmp_path / loop.CHECKPOINT_DIR, best_metric="auc")
    best, _ = loop.restore(manager, result.state, manager.best_step())
    assert int(best.step) == 4
    assert best.params["Dense_0"]["kernel"].sharding == result.state.params["Dense_0"]["kernel"].sharding
    manager.close()


def test_successive_loops_in_one_process_each_run_the_steps_asked_for(tmp_path):
    """A trained state handed to a fresh work directory continues at its own step.

    Each call asks for `state.step + 4`: the loop must run 4 steps, start the
    batch stream at the state's step and end with the state at that total
    (counting from 0 in every fresh directory ran 4, 8, 12, ... steps, the
    slowdown of successive loops once seen in the benchmark).
    """
    mesh = sharding.make_mesh()
    state = state_lib.create_classifier_state(TinyCNN(), state_lib.adam(1e-2), jax.random.key(0), (1, 8, 8, 1), mesh)
    train, _ = classifier_step.make_steps(mesh)
    batch = jax.device_put(
        {"image": np.zeros((8, 8, 8, 1), np.float32), "labels": np.zeros((8, K), np.float32)},
        sharding.batch_sharding(mesh),
    )
    starts = []

    def batches(start_step):
        starts.append(start_step)
        return itertools.repeat(batch)

    for call in range(3):
        result = loop.train_loop(
            workdir=tmp_path / f"call{call}", state=state,
            step_fn=lambda s, b: train(s, b, jax.random.key(0), jnp.ones(K)), make_batches=batches,
            num_steps=int(state.step) + 4, checkpoint_every=2, log_every=2, progress_desc=None,
        )
        state = result.state
        assert (result.steps_run, result.steps, int(state.step)) == (4, 4 * (call + 1), 4 * (call + 1))
    assert starts == [0, 4, 8]


def test_early_stopping_ends_the_run_and_a_restart_does_not_train_on(tmp_path):
    values = {2: 0.5, 4: 0.4, 6: 0.45, 8: 0.3, 10: 0.2}
    def controller():
        return loop.PlateauController(
            metric="auc", scale_learning_rate=state_lib.scale_learning_rate, plateau_patience=1, early_stop_patience=2
        )

    first_controller = controller()
    result, _ = _scripted(tmp_path, values, checkpoint_every=5, controller=first_controller)
    assert (result.reason, result.steps) == (loop.EARLY_STOPPED, 6)
    assert first_controller.lr_factor == pytest.approx(0.01)  # dropped at 4 and at 6
    np.testing.assert_allclose(float(state_lib.learning_rate(result.state)), 1e-4, rtol=1e-5)
    again, evaluated = _scripted(tmp_path, values, checkpoint_every=5, controller=controller())
    assert (again.reason, again.steps, evaluated) == (loop.EARLY_STOPPED, 6, [])


def test_plateau_controller_counts_like_reduce_on_plateau():
    scaled = []
    c = loop.PlateauController(
        metric="m", scale_learning_rate=lambda s, f: scaled.append(f) or s * f, mode="min", plateau_patience=2,
        early_stop_patience=4, min_delta=0.01,
    )
    state, decisions = 1.0, []
    for value in [1.0, 0.995, 0.9, 0.95, 0.95, 0.95, 0.95]:  # 0.995 is within min_delta: no improvement
        state, stop = c(state, {"m": value}, 0)
        decisions.append(stop)
    assert decisions == [False, False, False, False, False, False, True]
    assert scaled == [0.1, 0.1] and state == pytest.approx(0.01) and c.best == 0.9 and c.bad_evals == 4
    restored = loop.PlateauController(metric="m", scale_learning_rate=lambda s, f: s)
    restored.load_state_dict(c.state_dict())
    assert restored.state_dict() == c.state_dict()
    with pytest.raises(KeyError, match="'m'"):
        c(state, {"auc": 1.0}, 0)


_CHILD = r"""
import json, os, signal, sys, time
import flax.linen as nn, jax, jax.numpy as jnp, numpy as np
from medgan import sharding
from medgan.train import classifier_step, loop, state as state_lib

class Net(nn.Module):
    @nn.compact
    def __call__(self, x, *, train):
        return nn.Dense(2)(x.reshape(x.shape[0], -1))

workdir, marker = sys.argv[1], sys.argv[2]
mesh = sharding.make_mesh()
state = state_lib.create_classifier_state(Net(), state_lib.adam(), jax.random.key(0), (1, 4, 4, 1), mesh)
train, _ = classifier_step.make_steps(mesh)
batch = jax.device_put({"image": jnp.ones((2, 4, 4, 1)), "labels": jnp.ones((2, 2))}, sharding.batch_sharding(mesh))
signalled = []

def wait_for_sigterm(step, state):
    if step == 3:  # announce, then wait until the parent's SIGTERM has reached the loop's handler
        handler = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda *a: (signalled.append(1), handler(*a)))
        open(marker, "w").close()
        deadline = time.time() + 60
        while not signalled and time.time() < deadline:
            time.sleep(0.01)

result = loop.train_loop(workdir=workdir, state=state, step_fn=lambda s, b: train(s, b, jax.random.key(0), jnp.ones(2)),
                         make_batches=lambda start: iter(lambda: batch, None), num_steps=1000, checkpoint_every=100,
                         log_every=100, hooks=[wait_for_sigterm])
print(json.dumps({"status": result.reason, "step": result.steps}))
sys.exit(0 if result.reason in (loop.FINISHED, loop.PREEMPTED) else 1)
"""


@pytest.mark.slow
def test_a_real_sigterm_to_a_training_process_saves_and_exits_zero(tmp_path):
    import json
    import subprocess
    import sys
    import time

    script, marker = tmp_path / "child.py", tmp_path / "at_step_3"
    script.write_text(_CHILD)
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}  # one device: a quick start
    child = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "work"), str(marker)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 120
        while not marker.exists() and child.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), child.communicate()[1][-3000:] if child.poll() is not None else "child too slow"
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1]) == {"status": loop.PREEMPTED, "step": 3}
    assert sorted(os.listdir(tmp_path / "work" / loop.CHECKPOINT_DIR)) == ["3"]
