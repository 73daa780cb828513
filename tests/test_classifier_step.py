"""Classifier steps: weighted BCE exact values, masking, learning, 8 devices == 1 device, one compilation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medgan import sharding
from medgan.train import classifier_step, state as state_lib

K = 3


class TinyCNN(nn.Module):
    """conv -> BatchNorm -> relu -> global mean -> dense: the smallest net with batch_stats."""

    num_classes: int = K

    @nn.compact
    def __call__(self, x, *, train):
        # a bias before BatchNorm has zero gradient: Adam would amplify its noise
        x = nn.Conv(4, (3, 3), use_bias=False)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.relu(x)
        return nn.Dense(self.num_classes)(x.mean(axis=(1, 2)))


def _state(mesh, lr=1e-2):
    return state_lib.create_classifier_state(
        TinyCNN(), state_lib.adam(lr), jax.random.key(0), (1, 8, 8, 1), mesh
    )


def _batch(seed=0, b=16):
    rng = np.random.default_rng(seed)
    labels = (rng.random((b, K)) < 0.4).astype(np.float32)
    # Label-dependent images so the loss can fall.
    images = (
        rng.normal(size=(b, 8, 8, 1)).astype(np.float32) * 0.3 + labels[:, :1, None, None] - labels[:, 1:2, None, None]
    )
    return {"image": images, "labels": labels}


def _put(batch, mesh):
    return jax.device_put(batch, sharding.batch_sharding(mesh))


def _host(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def test_positive_weights_are_negatives_over_positives_and_name_degenerate_labels():
    labels = np.array([[1, 0, 1, 0], [0, 0, 1, 0], [0, 1, 1, 0], [0, 0, 1, 0]])
    with pytest.raises(ValueError, match=r"\['c', 'd'\]"):  # c: no negative, d: no positive
        classifier_step.positive_weights(labels, ("a", "b", "c", "d"), strict=True)
    np.testing.assert_array_equal(classifier_step.positive_weights(labels), [3.0, 3.0, 1.0, 1.0])
    np.testing.assert_allclose(classifier_step.positive_weights(labels[:, :2]), [3.0, 3.0])
    np.testing.assert_allclose(classifier_step.positive_weights(np.array([[1, 1], [0, 1], [0, 0]])), [2.0, 0.5])


def test_class_weighted_bce_exact_on_a_2x2_case():
    logits = jnp.array([[0.0, 2.0], [-1.0, 0.5]])
    labels = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    pos_weight = jnp.array([3.0, 0.5])
    s = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    expected = (
        -3.0 * np.log(s(0.0))  # positive, weight 3
        - np.log(1 - s(2.0))  # negative: weight 1
        - np.log(1 - s(-1.0))
        - 0.5 * np.log(s(0.5))
    ) / 4
    np.testing.assert_allclose(classifier_step.class_weighted_bce(logits, labels, pos_weight), expected, rtol=1e-6)
    # Stable far out: log(1 - s(100)) = -100, no inf.
    big = classifier_step.class_weighted_bce(jnp.array([[100.0]]), jnp.array([[0.0]]), jnp.array([1.0]))
    np.testing.assert_allclose(big, 100.0, rtol=1e-6)


def test_masked_rows_do_not_contribute():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(4, K)), (rng.random((4, K)) < 0.5).astype(np.float32)
    w = jnp.array([1.0, 2.0, 3.0])
    mask = jnp.array([True, False, True, False])
    masked = classifier_step.class_weighted_bce(logits, labels, w, mask)
    np.testing.assert_allclose(masked, classifier_step.class_weighted_bce(logits[::2], labels[::2], w), rtol=1e-6)
    garbage = logits.copy()
    garbage[1::2] = 1e6
    np.testing.assert_allclose(classifier_step.class_weighted_bce(garbage, labels, w, mask), masked, rtol=1e-6)
    assert float(classifier_step.class_weighted_bce(logits, labels, w, jnp.zeros(4, bool))) == 0.0


def test_train_steps_lower_the_loss_on_a_fixed_batch():
    mesh = sharding.make_mesh()
    train, _ = classifier_step.make_steps(mesh, flip=False)
    state = _state(mesh)
    batch = _put(_batch(), mesh)
    w = jnp.ones(K)
    losses = []
    for _ in range(6):
        state, metrics = train(state, batch, jax.random.key(1), w)
        losses.append(float(metrics["loss"]))
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert int(state.step) == 6
    assert train._cache_size() == 1  # make_steps' jit compiled once for the 6 calls
    np.testing.assert_allclose(float(metrics["learning_rate"]), 1e-2, rtol=1e-6)
    assert float(metrics["grad_norm"]) > 0


@pytest.mark.parametrize("flip", [False, True])
def test_eight_devices_give_the_same_params_and_batch_stats_as_one(flip):
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = sharding.make_mesh(devices)
        train, _ = classifier_step.make_steps(mesh, flip=flip)
        state = _state(mesh)
        for seed in range(3):
            state, _ = train(state, _put(_batch(seed), mesh), jax.random.key(7), jnp.array([1.0, 2.0, 0.5]))
        results.append(_host((state.params, state.batch_stats, state.opt_state)))
    assert len(jax.devices()) == 8
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), *results)


def test_flips_follow_the_step_and_are_reproducible():
    mesh = sharding.make_mesh()
    images = jnp.arange(4 * 2 * 2, dtype=jnp.float32).reshape(4, 2, 2, 1)
    key = jax.random.key(3)
    a = classifier_step.random_flip(jax.random.fold_in(key, 5), images)
    np.testing.assert_array_equal(a, classifier_step.random_flip(jax.random.fold_in(key, 5), images))
    flipped = [bool((np.asarray(a[i]) != np.asarray(images[i])).any()) for i in range(4)]
    for i, f in enumerate(flipped):
        np.testing.assert_array_equal(a[i], images[i, :, ::-1] if f else images[i])
    many = classifier_step.random_flip(key, jnp.tile(images[:1], (64, 1, 1, 1)))
    share = float((np.asarray(many)[:, 0, 0, 0] != 0).mean())
    assert 0.3 < share < 0.7
    del mesh


def test_the_train_step_compiles_once_and_lr_scaling_does_not_recompile():
    mesh = sharding.make_mesh()
    traces = []

    def counting_step(state, batch, rng, pos_weight):
        traces.append(1)  # Python side effect: runs only when jax traces
        return classifier_step.train_step(state, batch, rng, pos_weight, flip=True)

    repl, data = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    train = jax.jit(counting_step, in_shardings=(repl, data, repl, repl), out_shardings=(repl, repl), donate_argnums=0)
    state = _state(mesh)
    w = jnp.ones(K)
    for seed in range(4):
        state, metrics = train(state, _put(_batch(seed), mesh), jax.random.key(0), w)
    state = state_lib.scale_learning_rate(state, 0.1)
    np.testing.assert_allclose(float(state_lib.learning_rate(state)), 1e-3, rtol=1e-6)
    for seed in range(3):
        state, metrics = train(state, _put(_batch(seed), mesh), jax.random.key(0), w)
    np.testing.assert_allclose(float(metrics["learning_rate"]), 1e-3, rtol=1e-6)
    assert len(traces) == 1
    assert train._cache_size() == 1


def test_state_is_created_replicated_and_scaling_needs_an_injected_lr():
    import optax

    mesh = sharding.make_mesh()
    state = _state(mesh)
    for leaf in jax.tree.leaves(state):
        assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 8
    assert state.step.dtype == jnp.int32 and set(state.batch_stats["BatchNorm_0"]) == {"mean", "var"}
    plain = state_lib.create_classifier_state(TinyCNN(), optax.adam(1e-4), jax.random.key(0), (1, 8, 8, 1), mesh)
    with pytest.raises(TypeError, match="inject_hyperparams"):
        state_lib.scale_learning_rate(plain, 0.1)


def test_eval_step_returns_sigmoid_scores_and_the_mask():
    mesh = sharding.make_mesh()
    _, evaluate = classifier_step.make_steps(mesh)
    state = _state(mesh)
    batch = _batch()
    batch["mask"] = np.arange(16) < 11
    out = _host(evaluate(state, _put(batch, mesh)))
    assert out["scores"].shape == (16, K) and ((out["scores"] > 0) & (out["scores"] < 1)).all()
    np.testing.assert_array_equal(out["mask"], batch["mask"])
    logits = TinyCNN().apply({"params": state.params, "batch_stats": state.batch_stats}, batch["image"], train=False)
    np.testing.assert_allclose(out["scores"], jax.nn.sigmoid(logits), rtol=1e-5, atol=1e-6)
