"""Multi-label classifier steps: class-weighted BCE, random flips inside the step, jitted once on the mesh.

The study's classifier: one sigmoid per label, class-weighted
binary cross-entropy, Adam 1e-4, random horizontal flips. Steps are pure
(`(state, batch, rng) -> (state, metrics)`, docs/ARCHITECTURE.md, "State, steps and checkpoints"): the
per-step key is `fold_in(rng, state.step)`, so a resumed run flips exactly
as an uninterrupted one, and the flip decisions are drawn for the global
batch inside the sharded computation (the same on 1 or N devices).

BatchNorm has no axis_name: with the batch sharded over `data`, XLA computes
the batch statistics over the global batch, so the step on N devices equals
the step on 1 device.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from medgan.models import classifiers
from medgan.sharding import batch_sharding, replicated
from medgan.train import faults, state as state_lib
from medgan.train.state import ClassifierState


def constant_labels(labels: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """Names of the labels that are never, or always, positive in the training labels [N, K].

    A fold keeps k label combinations, so most findings are constant in it:
    `positive_weights` gives them weight 1, their logits learn the constant,
    and their test AUC is undefined and excluded from the mean.
    """
    positives = np.asarray(labels).sum(axis=0)
    return [name for name, p in zip(class_names, positives) if p in (0, len(labels))]


def positive_weights(
    labels: np.ndarray, class_names: tuple[str, ...] | None = None, *, strict: bool = False
) -> np.ndarray:
    """pos_weight_k = negatives_k / positives_k over the training split's labels [N, K] -> float32 [K].

    Computed once on the host from the fold's training labels. With this weight
    the positives of label k contribute as much total loss as its negatives
    (the `pos_weight` of torch's BCEWithLogitsLoss, used by the study's code).

    Degenerate labels (no positive, or no negative, training example) are
    common in benchmark folds of few label combinations: their weight is set
    to 1 (for a label that is never positive the weight multiplies zero
    anyway; for one that is always positive, negatives / positives = 0 would
    switch its loss off) and they are logged; their test AUC is undefined.

    Raises:
      ValueError: labels is not a non-empty [N, K] array; with strict=True,
        also for degenerate labels (named).
    """
    labels = np.asarray(labels, np.float64)
    if labels.ndim != 2 or not len(labels):
        raise ValueError(f"labels must be a non-empty [N, K] array, got shape {labels.shape}")
    positives = labels.sum(axis=0)
    negatives = len(labels) - positives
    names = class_names or tuple(str(k) for k in range(labels.shape[1]))
    degenerate = (positives == 0) | (negatives == 0)
    if degenerate.any():
        named = [names[k] for k in np.flatnonzero(degenerate)]
        if strict:
            raise ValueError(f"labels {named} have no positive or no negative training example")
        logging.warning("labels %s have no positive or no negative training example: pos_weight 1", named)
    weights = np.where(degenerate, 1.0, negatives / np.where(positives == 0, 1.0, positives))
    return weights.astype(np.float32)


def class_weighted_bce(
    logits: jax.Array, labels: jax.Array, pos_weight: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
    """Mean over valid rows and labels of -[w_k y log s(x) + (1 - y) log(1 - s(x))], s = sigmoid.

    Args:
      logits: [B, K] float.
      labels: [B, K] multi-hot {0, 1} (soft labels in [0, 1] also work).
      pos_weight: [K] weight of the positive term per label (`positive_weights`).
      mask: [B] bool, False rows (eval padding) contribute nothing; None = all.

    Returns:
      float32 [] = sum_{b valid, k} loss_bk / (K * #valid rows); 0 when no row is valid.

    Stable for large |x|: log s(x) = log_sigmoid(x), log(1 - s(x)) = log_sigmoid(-x).
    """
    logits = logits.astype(jnp.float32)
    labels = labels.astype(jnp.float32)
    per_entry = -(pos_weight * labels * jax.nn.log_sigmoid(logits) + (1.0 - labels) * jax.nn.log_sigmoid(-logits))
    if mask is None:
        return per_entry.mean()
    weights = mask.astype(jnp.float32)[:, None]
    return (per_entry * weights).sum() / jnp.maximum(weights.sum() * logits.shape[1], 1.0)


def random_flip(rng: jax.Array, images: jax.Array) -> jax.Array:
    """Mirrors each image of [B, H, W, C] left-right with p = 0.5 (the study's augmentation)."""
    flip = jax.random.bernoulli(rng, 0.5, (images.shape[0],))
    return jnp.where(flip[:, None, None, None], images[:, :, ::-1, :], images)


def train_step(
    state: ClassifierState,
    batch: Mapping[str, jax.Array],
    rng: jax.Array,
    pos_weight: jax.Array,
    *,
    flip: bool = False,
) -> tuple[ClassifierState, dict[str, jax.Array]]:
    """One Adam update on a global batch {"image": [B,H,W,C], "labels": [B,K][, "mask": [B]]}.

    Args:
      rng: the run's base key; this step uses fold_in(rng, state.step).
      pos_weight: [K] (`positive_weights`).
      flip: random horizontal flips of the batch (static).

    Returns:
      (state with step + 1, {"loss", "grad_norm", "learning_rate", "skipped": float32 []}),
      the metrics measured before the update (loss of the batch at the old params).
      A non-finite loss or gradient leaves params, BatchNorm statistics and
      optimiser state unchanged and sets "skipped" to 1 (`train/faults`).
    """
    images = batch["image"]
    if flip:
        images = random_flip(jax.random.fold_in(rng, state.step), images)
    mask = batch.get("mask")

    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats}, images, train=True, mutable=["batch_stats"]
        )
        return class_weighted_bce(logits, batch["labels"], pos_weight, mask), updates["batch_stats"]

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    grad_norm = optax.tree.norm(grads)
    ok = faults.all_finite(loss, grad_norm)
    updated = (optax.apply_updates(state.params, updates), batch_stats, opt_state)
    params, batch_stats, opt_state = faults.guarded(ok, updated, (state.params, state.batch_stats, state.opt_state))
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
    metrics = {
        "loss": loss,
        "grad_norm": grad_norm,
        "learning_rate": state_lib.learning_rate(state),
        faults.SKIPPED: 1.0 - ok.astype(jnp.float32),
    }
    return new_state, metrics


def eval_step(state: ClassifierState, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Scores of a global batch at running BatchNorm statistics.

    Returns:
      {"scores": sigmoid probabilities [B, K] f32, "labels": [B, K], "mask": [B] bool}
      (mask all True when the batch has none). Padding rows have arbitrary
      scores: drop them with the mask on the host (e.g. before computing AUC).
    """
    logits = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats}, batch["image"], train=False)
    mask = batch.get("mask")
    if mask is None:
        mask = jnp.ones(logits.shape[:1], bool)
    return {"scores": jax.nn.sigmoid(logits.astype(jnp.float32)), "labels": batch["labels"], "mask": mask}


def binary_classifier(model: str, size: int, learning_rate: float, mesh: Mesh, seed: int, *, pretrained: str = ""):
    """(description, state replicated on `mesh`, the steps' key) of a one-logit classifier of [B, size, size, 1].

    The grey input is tiled to RGB so ImageNet layouts fit; with `pretrained`
    (a Keras weights file) the feature extractor starts from it.
    """
    description = classifiers.describe(model, 1, dtype="float32", tile_to_rgb=True, stem="",
                                       style="keras" if pretrained else "torchvision")
    module = classifiers.classifier_from(description)
    init_key, step_key = jax.random.split(jax.random.key(seed))
    state = state_lib.create_classifier_state(module, state_lib.adam(learning_rate), init_key, (1, size, size, 1),
                                              mesh)
    if pretrained:
        state = state_lib.with_keras_weights(state, module, pretrained, mesh)
    return description, state, step_key


def make_steps(mesh: Mesh, *, flip: bool = False):
    """(train, evaluate): `train_step` and `eval_step` jitted once with explicit shardings.

    train(state, batch, rng, pos_weight) -> (state, metrics): state, rng and
    pos_weight replicated, batch sharded over `data`; the state argument is
    donated (its buffers are reused for the new state: do not touch the old
    one after the call). evaluate(state, batch) -> {"scores", "labels",
    "mask"} sharded over `data`.

    Call with positional arguments (in_shardings apply to positional ones); the
    loop's `(state, batch) -> (state, metrics)` step is
    `lambda state, batch: train(state, batch, rng, pos_weight)`.
    """
    repl, data = replicated(mesh), batch_sharding(mesh)
    train = jax.jit(
        functools.partial(train_step, flip=flip),
        in_shardings=(repl, data, repl, repl),
        out_shardings=(repl, repl),
        donate_argnums=0,
    )
    evaluate = jax.jit(eval_step, in_shardings=(repl, data), out_shardings=data)
    return train, evaluate
