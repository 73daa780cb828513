"""Classifier train state, created directly on the mesh, with a learning rate that lives in the state.

docs/ARCHITECTURE.md ("State, steps and checkpoints"): the state is a `flax.struct.dataclass`;
everything that changes during training is an array leaf (checkpointed by
orbax, donated to the step), the model's `apply_fn` and the optimiser `tx`
are static fields (part of the jit cache key, never checkpointed).

The optimiser is wrapped in `optax.inject_hyperparams`, so the learning rate
is an array in `opt_state.hyperparams["learning_rate"]`: the plateau schedule
of the study (LR x0.1 when the validation AUC stops improving) multiplies
that array (`scale_learning_rate`) — same shape, dtype and sharding, so the
jitted step is not recompiled, and a restored checkpoint restores the
current learning rate with everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from medgan.sharding import replicated

LEARNING_RATE = 1e-4  # the study's classifier: Adam 1e-4


@flax.struct.dataclass
class ClassifierState:
    """step: int32 [] (optimizer updates done); params / batch_stats: the model's variables; opt_state: tx's state."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: optax.OptState
    apply_fn: Callable = flax.struct.field(pytree_node=False)
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)


def adam(learning_rate: float = LEARNING_RATE, **kwargs) -> optax.GradientTransformation:
    """optax.adam with its learning rate injected as a state array (see the module docstring).

    kwargs go to optax.adam (b1, b2, eps, ...).
    """
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate, **kwargs)


def create_classifier_state(
    model: flax.linen.Module,
    tx: optax.GradientTransformation,
    rng: jax.Array,
    input_shape: Sequence[int],
    mesh: Mesh,
) -> ClassifierState:
    """Initialises model and optimiser directly replicated on `mesh`.

    The whole initialisation runs inside one jit with replicated out_shardings,
    so each device computes its own copy and no host copy of the parameters
    (DenseNet-121: 8M, ResNet-50: 25M) is ever made or transferred.

    Args:
      model: `__call__(x, *, train) -> logits`, variables {"params"[, "batch_stats"]}.
      tx: optimiser; use `adam()` (or any `optax.inject_hyperparams` transform)
        for `scale_learning_rate` to work.
      rng: init key.
      input_shape: one input batch's shape [B, H, W, C] (B = 1 suffices:
        shapes of parameters do not depend on the batch).
      mesh: the device mesh.
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 4:
        raise ValueError(f"input_shape must be [B, H, W, C], got {shape}")

    def init(rng):
        variables = model.init(rng, jnp.zeros(shape, jnp.float32), train=False)
        params = variables["params"]
        return ClassifierState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=tx.init(params),
            apply_fn=model.apply,
            tx=tx,
        )

    return jax.jit(init, out_shardings=replicated(mesh))(rng)


def with_keras_weights(state: ClassifierState, model: flax.linen.Module, path: str, mesh: Mesh) -> ClassifierState:
    """state with the feature extractor of a Keras weights file (head and optimiser untouched), replicated on `mesh`.

    Adam's moments are zeros whatever the parameters, so replacing the
    parameters after initialisation equals initialising with them. Loaded
    leaves are host arrays every process read in full; the head keeps its
    initialised (replicated) array.
    """
    from medgan import sharding
    from medgan.models import keras_weights

    current = {"params": state.params, "batch_stats": state.batch_stats}
    loaded = keras_weights.load_keras_weights(path, model, current)
    loaded = jax.tree.map(lambda new, old: old if new is old else sharding.replicate(new, mesh), loaded, current)
    return state.replace(params=loaded["params"], batch_stats=loaded["batch_stats"])


def learning_rate(state: ClassifierState) -> jax.Array:
    """The current learning rate, float32 [] (an `inject_hyperparams` optimiser is required)."""
    return _hyperparams(state.opt_state)["learning_rate"]


def scale_learning_rate(state: ClassifierState, factor: float) -> ClassifierState:
    """state with its learning rate multiplied by `factor` (e.g. 0.1 on a plateau), without recompiling steps.

    The new rate keeps the old one's shape, dtype and sharding, so the jitted
    train step's cache key does not change.
    """
    hyperparams = _hyperparams(state.opt_state)
    lr = hyperparams["learning_rate"]
    new_lr = _multiply(lr, jnp.asarray(factor, lr.dtype))
    opt_state = state.opt_state._replace(hyperparams={**hyperparams, "learning_rate": new_lr})
    return state.replace(opt_state=opt_state)


@jax.jit
def _multiply(x: jax.Array, factor: jax.Array) -> jax.Array:
    # Under jit the (replicated) sharding of x carries over, also across processes.
    return (x * factor).astype(x.dtype)


def _hyperparams(opt_state: Any) -> dict[str, jax.Array]:
    hyperparams = getattr(opt_state, "hyperparams", None)
    if not isinstance(hyperparams, dict) or "learning_rate" not in hyperparams:
        raise TypeError(
            "the optimiser state has no injected learning rate: build tx with medgan.train.state.adam() "
            f"or optax.inject_hyperparams (got {type(opt_state).__name__})"
        )
    return hyperparams
