"""Train state and the pure, sharded step of the contextual lesion GAN (models/contextual.py).

One call is one discriminator update followed by `g_steps` generator
updates on the same global batch (the mammography study, Sec. 2, "Training
details": two G updates per D update for masses, one otherwise):

* D, semi-supervised ([SSGAN]): softmax cross-entropy of its four logits
  against the class of each group of the batch: real lesions of the kind
  being drawn ("real"; class 0), G's combined images (1), benign lesions (2)
  and normal tissue (3), the last two weighted by `aux_weight`, plus
  `dragan_lambda` times DRAGAN's gradient penalty on the real-versus-fake
  logit around the real lesions (`losses.dragan_penalty`).
* G: cross-entropy of D's logits on its combined images against
  `target_class` (0: "a real lesion of this kind").

For removal the same step is trained with the groups re-cast by the caller:
"real" normal tissue, "base" the lesion patches G must clear, and the benign
and normal slots holding lesion patches, so D learns what a lesion looks like
and G must leave none.

Batch (global, sharded over `data`): {"base": G's input patches, "real",
"benign", "normal"}: each [B, R, R, 1] float32 in [-1, 1]. The state is
replicated and donated; randomness is fold_in(key, state.step). D's spectral
normalisation runs one power iteration per D update, on the D loss's
forward pass. A non-finite loss or gradient skips the whole update
(`train/faults`).

[SSGAN] Odena 2016, "Semi-supervised learning with generative adversarial networks".
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from medgan import sharding
from medgan.models import contextual
from medgan.models.contextual import ContextualSpec
from medgan.sharding import batch_sharding, replicated
from medgan.train import faults, losses

GROUPS = ("real", "fake", "benign", "normal")  # in the order of contextual.D_CLASSES
BATCH_KEYS = ("base", "real", "benign", "normal")


@dataclasses.dataclass(frozen=True)
class ContextualHyperparameters:
    """What the step needs besides the networks (hashable: part of the jit cache key).

    The study's text lost its learning rates and betas; the defaults are
    SAGAN's two time-scale rule (G 1e-4, D 4e-4, Adam betas 0 and 0.9, Zhang
    et al. 2019 Sec. 5), DRAGAN's lambda 10 and perturbation 0.5 std (Kodali
    et al. 2017), and an auxiliary weight 0.5 for benign and normal patches.
    """

    g_learning_rate: float = 1e-4
    d_learning_rate: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    dragan_lambda: float = 10.0
    dragan_spread: float = 0.5
    aux_weight: float = 0.5
    g_steps: int = 1
    target_class: int = 0


@flax.struct.dataclass
class ContextualState:
    """Array-only train state, replicated over the mesh. d_stats: spectral normalisation's power-iteration vectors."""

    step: jax.Array
    g_params: Any
    d_params: Any
    d_stats: Any
    g_opt_state: optax.OptState
    d_opt_state: optax.OptState


def optimizers(hp: ContextualHyperparameters) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    return (optax.adam(hp.g_learning_rate, b1=hp.beta1, b2=hp.beta2),
            optax.adam(hp.d_learning_rate, b1=hp.beta1, b2=hp.beta2))


def networks(spec: ContextualSpec, stage: int = 0) -> tuple[contextual.ContextualGenerator,
                                                             contextual.ContextualDiscriminator]:
    return contextual.ContextualGenerator(spec, stage=stage), contextual.ContextualDiscriminator(spec, stage=stage)


def create_state(spec: ContextualSpec, hp: ContextualHyperparameters, rng: jax.Array, mesh: Mesh) -> ContextualState:
    """Both networks (every phase's parameters) and their Adam states, initialised in one jit, replicated."""
    g_tx, d_tx = optimizers(hp)
    generator, discriminator = networks(spec)

    def init(rng):
        g_key, d_key = jax.random.split(rng)
        images = jnp.zeros((2, spec.resolution, spec.resolution, 1), jnp.float32)
        g_params = generator.init(g_key, images, jnp.zeros((2, spec.scalar_count())))["params"]
        d_vars = discriminator.init(d_key, images)
        return ContextualState(step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_vars["params"],
                               d_stats=d_vars.get("batch_stats", {}), g_opt_state=g_tx.init(g_params),
                               d_opt_state=d_tx.init(d_vars["params"]))

    return jax.jit(init, out_shardings=replicated(mesh))(rng)


def generate(spec: ContextualSpec, g_params: Any, base: jax.Array, rng: jax.Array, alpha: Any = 1.0,
             stage: int = 0) -> jax.Array:
    """G's output [B, R, R, 3] = [lesion, input, combined] for base patches [B, R, R, 1]."""
    scalars = contextual.generator_scalars(rng, base.shape[0], spec)
    return contextual.ContextualGenerator(spec, stage=stage).apply({"params": g_params}, base, scalars, alpha)


def train_step(state: ContextualState, batch: dict[str, jax.Array], rng: jax.Array, alpha: jax.Array, *,
               spec: ContextualSpec, hp: ContextualHyperparameters, stage: int = 0
               ) -> tuple[ContextualState, dict[str, jax.Array]]:
    """One D update and `hp.g_steps` G updates (module docstring); returns the new state and scalar metrics."""
    g_tx, d_tx = optimizers(hp)
    _, discriminator = networks(spec, stage)
    keys = jax.random.split(jax.random.fold_in(rng, state.step), 2 + hp.g_steps)
    classes = {group: n for n, group in enumerate(GROUPS)}
    weights = {"benign": hp.aux_weight, "normal": hp.aux_weight}

    def d_logits(d_params, d_stats, images, update):
        variables = {"params": d_params, "batch_stats": d_stats}
        if update:
            return discriminator.apply(variables, images, alpha, True, mutable=["batch_stats"])
        return discriminator.apply(variables, images, alpha, False)

    # --- discriminator ------------------------------------------------------
    fake = jax.lax.stop_gradient(generate(spec, state.g_params, batch["base"], keys[0], alpha, stage))
    seen = jnp.concatenate([batch["real"], fake[..., contextual.COMBINED:], batch["benign"], batch["normal"]])

    def d_loss_fn(d_params):
        logits, updated = d_logits(d_params, state.d_stats, seen, True)
        by_group = dict(zip(GROUPS, jnp.split(logits, 4)))
        loss = losses.semi_supervised_d_loss(by_group, weights, classes)
        penalty = losses.dragan_penalty(
            lambda x: losses.real_fake_logit(d_logits(d_params, updated.get("batch_stats", {}), x, False)),
            batch["real"], jax.random.fold_in(keys[1], 0), hp.dragan_spread)
        correct = {g: jnp.mean(jnp.argmax(v, -1) == classes[g]) for g, v in by_group.items()}
        aux = {"dragan": penalty, **{f"d_accuracy_{g}": c for g, c in correct.items()}}
        return loss + hp.dragan_lambda * penalty, (aux, updated.get("batch_stats", {}))

    (d_loss, (d_aux, d_stats)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d_params)
    d_updates, d_opt_state = d_tx.update(d_grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, d_updates)

    # --- generator (g_steps updates against the new D) ----------------------
    def g_loss_fn(g_params, key):
        out = generate(spec, g_params, batch["base"], key, alpha, stage)
        logits = d_logits(d_params, d_stats, out[..., contextual.COMBINED:], False)
        loss = -jnp.mean(jax.nn.log_softmax(logits, -1)[:, hp.target_class])
        return loss, jnp.mean(jnp.abs(out[..., contextual.LESION]))

    g_params, g_opt_state = state.g_params, state.g_opt_state
    g_loss = lesion = g_grad_norm = jnp.zeros((), jnp.float32)
    for n in range(hp.g_steps):
        (g_loss, lesion), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g_params, keys[2 + n])
        g_updates, g_opt_state = g_tx.update(g_grads, g_opt_state, g_params)
        g_params = optax.apply_updates(g_params, g_updates)
        g_grad_norm = jnp.maximum(g_grad_norm, optax.tree.norm(g_grads))

    d_grad_norm = optax.tree.norm(d_grads)
    ok = faults.all_finite(d_loss, g_loss, d_grad_norm, g_grad_norm)
    updated = state.replace(g_params=g_params, d_params=d_params, d_stats=d_stats, g_opt_state=g_opt_state,
                            d_opt_state=d_opt_state)
    new_state = faults.guarded(ok, updated, state).replace(step=state.step + 1)
    metrics = {"d_loss": d_loss, "g_loss": g_loss, "d_grad_norm": d_grad_norm, "g_grad_norm": g_grad_norm,
               "lesion_abs_mean": lesion, "alpha": jnp.asarray(alpha, jnp.float32),
               faults.SKIPPED: 1.0 - ok.astype(jnp.float32), **d_aux}
    return new_state, metrics


class ContextualStep:
    """`step(state, batch, rng, alpha, stage) -> (state, metrics)`, jitted once per growth phase.

    State, rng and alpha replicated, the batch sharded over `data`, the state
    donated. alpha is traced, so the 3,000-iteration fade compiles once.
    """

    def __init__(self, spec: ContextualSpec, hp: ContextualHyperparameters, mesh: Mesh):
        self.spec, self.hp, self.mesh = spec, hp, mesh
        self._jitted: dict[int, Any] = {}

    def jitted(self, stage: int):
        stage = self.spec.stage_of(stage)
        if stage not in self._jitted:
            repl, data = replicated(self.mesh), batch_sharding(self.mesh)
            self._jitted[stage] = jax.jit(
                functools.partial(train_step, spec=self.spec, hp=self.hp, stage=stage),
                in_shardings=(repl, data, repl, repl), out_shardings=(repl, repl), donate_argnums=0)
        return self._jitted[stage]

    def __call__(self, state: ContextualState, batch, rng: jax.Array, alpha, stage: int = 0):
        return self.jitted(stage)(state, batch, rng, alpha)


def fade_alpha(step: int, grow_step: int, fade_steps: int) -> float:
    """The weight of the newest layers after `step` updates: 0 before growing, rising linearly to 1 over `fade_steps`.

    The study grows from 128 to 256 px and fades over 3,000 iterations (Sec. 2, "Progressive growing").
    """
    if step < grow_step:
        return 0.0
    return 1.0 if fade_steps <= 0 else min(1.0, (step - grow_step) / fade_steps)


def schedule(step: int, spec: ContextualSpec, grow_steps: int, fade_steps: int) -> tuple[int, float]:
    """(stage, alpha) of the update after `step` updates: half size for `grow_steps`, then the fade, then full."""
    if step < grow_steps:
        return spec.resolution // 2, 1.0
    return spec.resolution, fade_alpha(step, grow_steps, fade_steps)


def batches(images: np.ndarray, roles: dict[str, np.ndarray], global_batch_size: int, mesh: Mesh, seed: int,
            spec: ContextualSpec, grow_steps: int, fade_steps: int, start_step: int):
    """The loop's batch stream from `start_step` on: items {"batch", "stage", "alpha", "step"}.

    images: float32 [N, R, R, 1] in [-1, 1]. The batch of step s draws each
    role's rows with replacement from a generator seeded by (seed, s), so a
    resumed run reads exactly what an uninterrupted one did. Every process
    draws the same global batch and places its own shards.
    """
    rows = batch_sharding(mesh)
    step = start_step
    while True:
        rng = np.random.default_rng([seed, step])
        batch = {key: sharding.global_from_host(images[rng.choice(roles[key], global_batch_size)], rows)
                 for key in BATCH_KEYS}
        stage, alpha = schedule(step, spec, grow_steps, fade_steps)
        yield {"batch": batch, "stage": stage, "alpha": alpha, "step": step}
        step += 1


class PhasedContextualSteps:
    """The loop's `step_fn`: each item goes to the jitted step of its stage, with its fade weight."""

    def __init__(self, step: ContextualStep, rng: jax.Array, mesh: Mesh):
        self.step, self.rng = step, sharding.replicate(rng, mesh)
        self.stage, self.alpha = step.spec.resolution, 1.0

    def __call__(self, state, item):
        self.stage, self.alpha = item["stage"], item["alpha"]
        return self.step(state, item["batch"], self.rng, np.float32(self.alpha), self.stage)


def make_sampler(spec: ContextualSpec, mesh: Mesh, global_batch_size: int):
    """`sample(g_params, base [N, R, R, 1], rng, alpha, stage) -> np.ndarray [N, R, R, 3]` on every process.

    Jitted once per stage; `base` (a host array every process holds, any N)
    goes through in global batches of `global_batch_size` sharded over `data`
    (`sharding.host_map`). Batch b draws its scalars from fold_in(rng, b).
    """
    repl = replicated(mesh)
    compiled = {}

    def sample(g_params, base, rng, alpha=1.0, stage=0):
        stage = spec.stage_of(stage)
        if stage not in compiled:
            compiled[stage] = jax.jit(lambda p, x, key, a: generate(spec, p, x, key, a, stage),
                                      in_shardings=(repl, batch_sharding(mesh), repl, repl),
                                      out_shardings=batch_sharding(mesh))
        rng, counter = sharding.replicate(rng, mesh), iter(range(len(base)))
        return sharding.host_map(
            lambda batch: compiled[stage](g_params, batch, jax.random.fold_in(rng, next(counter)), np.float32(alpha)),
            np.asarray(base, np.float32), mesh, global_batch_size)

    return sample
