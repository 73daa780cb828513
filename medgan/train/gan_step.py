"""GAN train state and the pure, sharded D+G training step shared by all three models.

docs/ARCHITECTURE.md ("State, steps and checkpoints"): `GanState` is a
`flax.struct.dataclass` of arrays only (G and D params, their Adam states, the
generator EMA, the ADA probability and its statistics, the path-length mean);
the networks and hyperparameters are closed over by `make_train_step`, which
jits the step once per model and lazy-regularisation pattern (per growth phase
for the progressive GAN) with the state replicated, the batch sharded over
`data` and the state donated.

One call of the step is one discriminator update followed by one generator
update on the same global batch (the study's 1:1 schedule; n_critic = 1 as in
the progressive GAN's code). Randomness is `fold_in(key, state.step)`, so a
resumed run draws exactly what an uninterrupted one draws.

Per model (`GanSpec`):
* "wgan_gp" (pggan, cpd): L_D = E[D(G(z))] - E[D(x)] + 10 GP + 0.001 E[D(x)^2],
  L_G = -E[D(G(z))]  (Gulrajani et al. 2017 eq. 3; Karras et al. 2018 A.1).
* "nonsaturating" (stylegan2): L_D = softplus(D(G(z))) + softplus(-D(x)) plus,
  every `r1_interval` steps, gamma/2 * R1 * r1_interval (lazy regularisation,
  Karras et al. 2020 sec. 3.1); L_G = softplus(-D(G(z))) plus, optionally and
  every `pl_interval` steps, path-length regularisation (sec. 3.2).
* AC-GAN (pggan): both losses add acgan_weight * CE(class_logits, labels) on
  reals (D) and fakes (D and G) (Odena et al. 2017; the study's label penalty).
  With `acgan_d_fakes` False, D's classifier learns from real images only
  and G is still scored by it (Gong et al. 2019, "Twin Auxiliary
  Classifiers GAN", sec. 3, on AC-GAN's bias): trained on fakes too, D's head
  and G can agree on any feature that tells the labels apart, not the
  finding the labels name.
* ADA (Karras et al. 2020b, sec. 2-3): every image D sees — real and fake, in
  both updates — is augmented with probability p; p follows
  r_t = E[sign(D(x_real))] toward the target every `ada_interval` steps.
* Generator EMA: ema <- beta ema + (1 - beta) g with beta = min(ema_decay,
  (1 + t) / (10 + t)) (the warm-up keeps early samples from averaging in the
  random initialisation); the EMA generator is the one evaluated and shared.

Fake images are conditioned on the labels of the real batch, so G learns the
fold's label distribution, as the study's code does.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from medgan.models.gans import GanSpec
from medgan.sharding import batch_sharding, replicated
from medgan.train import ada, faults, losses


@dataclasses.dataclass(frozen=True)
class GanHyperparameters:
    """Everything the step needs besides the networks (hashable: part of the jit cache key)."""

    g_learning_rate: float = 1e-3
    d_learning_rate: float = 1e-3
    beta1: float = 0.0  # the study's Adam: beta1=0, beta2=0.99
    beta2: float = 0.99
    ema_decay: float = 0.999  # the study's generator EMA
    lambda_gp: float = 10.0
    drift: float = 0.001
    acgan_weight: float = 1.0
    acgan_d_fakes: bool = True  # the study's: D's classifier also learns the fakes' labels
    r1_gamma: float = 1.0
    r1_interval: int = 16
    pl_weight: float = 0.0  # 0: path-length regularisation off
    pl_interval: int = 4
    augment: bool = False
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_speed_images: int = 500_000  # images for p to go 0 -> 1 (ADA: 500k)
    global_batch_size: int = 32

    @classmethod
    def from_config(cls, config: Any, spec: GanSpec) -> GanHyperparameters:
        """From a `config.gan` block; `augment` "" means the model's default (ADA for StyleGAN2)."""
        augment = spec.default_augment if config.augment == "" else config.augment == "ada"
        return cls(
            g_learning_rate=config.g_learning_rate, d_learning_rate=config.d_learning_rate,
            ema_decay=config.ema_decay, lambda_gp=config.lambda_gp, drift=config.drift,
            acgan_weight=config.acgan_weight, acgan_d_fakes=config.acgan_d_fakes, r1_gamma=config.r1_gamma,
            pl_weight=config.pl_weight,
            augment=augment, ada_target=config.ada_target, ada_speed_images=config.ada_speed_images,
            global_batch_size=config.global_batch_size,
        )


@flax.struct.dataclass
class GanState:
    """Array-only train state; every leaf is replicated over the mesh.

    step: int32 [] updates done. ada_p: float32 [] augmentation probability.
    ada_sign_sum / ada_count: float32 [] sum of sign(D(real)) and number of
    terms since the last p update. pl_mean: float32 [] running mean path length.
    """

    step: jax.Array
    g_params: Any
    d_params: Any
    ema_params: Any
    g_opt_state: optax.OptState
    d_opt_state: optax.OptState
    ada_p: jax.Array
    ada_sign_sum: jax.Array
    ada_count: jax.Array
    pl_mean: jax.Array


def optimizers(hp: GanHyperparameters) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """(G, D) Adam with the study's betas."""
    return (
        optax.adam(hp.g_learning_rate, b1=hp.beta1, b2=hp.beta2, eps=1e-8),
        optax.adam(hp.d_learning_rate, b1=hp.beta1, b2=hp.beta2, eps=1e-8),
    )


def init_params(spec: GanSpec, rng: jax.Array, batch_size: int = 4) -> tuple[Any, Any]:
    """(G params, D params) of the full-size networks (every growth stage of a progressive model)."""
    g_key, d_key = jax.random.split(rng)
    r, c, k = spec.resolution, spec.generator.channels, spec.generator.num_labels
    z = jnp.zeros((batch_size, spec.latent_dim), jnp.float32)
    labels = jnp.zeros((batch_size, k), jnp.float32)
    g_params = spec.generator.init(g_key, z, labels)["params"]
    d_params = spec.discriminator.init(d_key, jnp.zeros((batch_size, r, r, c), jnp.float32), labels)["params"]
    return g_params, d_params


def create_gan_state(spec: GanSpec, hp: GanHyperparameters, rng: jax.Array, mesh: Mesh) -> GanState:
    """Initialises networks, optimisers and EMA inside one jit, replicated on `mesh` (no host copy)."""
    g_tx, d_tx = optimizers(hp)

    def init(rng):
        g_params, d_params = init_params(spec, rng, batch_size=max(4, spec.discriminator.mbstd_group_size))
        zero = jnp.zeros((), jnp.float32)
        return GanState(
            step=jnp.zeros((), jnp.int32),
            g_params=g_params,
            d_params=d_params,
            ema_params=g_params,
            g_opt_state=g_tx.init(g_params),
            d_opt_state=d_tx.init(d_params),
            ada_p=zero,
            ada_sign_sum=zero,
            ada_count=zero,
            pl_mean=zero,
        )

    return jax.jit(init, out_shardings=replicated(mesh))(rng)


def ema_update(ema: Any, params: Any, step: jax.Array, decay: float) -> Any:
    """ema <- beta ema + (1 - beta) params, beta = min(decay, (1 + step) / (10 + step)); step = updates done before."""
    t = step.astype(jnp.float32)
    beta = jnp.minimum(decay, (1.0 + t) / (10.0 + t))
    return jax.tree.map(lambda e, p: (beta * e + (1.0 - beta) * p).astype(e.dtype), ema, params)


def generate(spec: GanSpec, params: Any, z: jax.Array, labels: jax.Array, rng: jax.Array, alpha: Any = 1.0):
    """G(z, labels) [B, R, R, C] float32 with the model's fade-in kwargs and noise stream."""
    return spec.generator.apply(
        {"params": params}, z, labels, rngs={"noise": rng}, **spec.generator_kwargs(alpha)
    )


def train_step(
    state: GanState,
    batch: Mapping[str, jax.Array],
    rng: jax.Array,
    alpha: jax.Array,
    *,
    spec: GanSpec,
    hp: GanHyperparameters,
    with_r1: bool = False,
    with_path_length: bool = False,
) -> tuple[GanState, dict[str, jax.Array]]:
    """One D update then one G update on `batch` {"image": [B,R,R,C], "labels": [B,K]}.

    alpha: float32 [] fade-in weight of the progressive GAN (ignored otherwise).
    with_r1 / with_path_length: whether this is a lazy-regularisation step of
    D (R1) / of G (path length); `TrainStep` decides from the step number.
    Returns the new state and scalar metrics (losses, gradient norms, D outputs,
    ADA probability and r_t, path length, "skipped"). A non-finite loss or
    gradient of either network skips the whole step: everything but the step
    counter stays as it was and "skipped" is 1 (`train/faults`).

    Long because it is one traced step: the D update, the G update, EMA and
    the ADA controller share the step's keys and read top to bottom in the
    order they happen; the losses and regularisers themselves live in `losses`.
    """
    g_tx, d_tx = optimizers(hp)
    real, labels = batch["image"], batch["labels"]
    b = real.shape[0]
    keys = jax.random.split(jax.random.fold_in(rng, state.step), 8)
    kw = spec.generator_kwargs(alpha)

    def d_apply(d_params, images):
        return spec.discriminator.apply({"params": d_params}, images, labels, **kw)

    def maybe_augment(key, images):
        return ada.augment(key, images, state.ada_p) if hp.augment else images

    # --- discriminator ----------------------------------------------------
    z = jax.random.normal(keys[0], (b, spec.latent_dim), jnp.float32)
    fake = jax.lax.stop_gradient(generate(spec, state.g_params, z, labels, keys[1], alpha))
    real_seen, fake_seen = maybe_augment(keys[2], real), maybe_augment(keys[3], fake)

    def d_loss_fn(d_params):
        real_logits, real_class = d_apply(d_params, real_seen)
        fake_logits, fake_class = d_apply(d_params, fake_seen)
        scores = lambda x: d_apply(d_params, x)[0]  # noqa: E731
        aux = {"d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits),
               "real_sign": jnp.mean(jnp.sign(real_logits))}
        if spec.loss == "wgan_gp":
            gp = losses.gradient_penalty(scores, real_seen, fake_seen, keys[4])
            loss = losses.wgan_gp_d_loss(real_logits, fake_logits, gp, hp.lambda_gp, hp.drift)
            aux["gradient_penalty"] = gp
        else:
            loss = losses.nonsaturating_d_loss(real_logits, fake_logits)
        if spec.acgan:
            ac = losses.acgan_loss(real_class, labels)
            if hp.acgan_d_fakes:
                ac = ac + losses.acgan_loss(fake_class, labels)
            loss = loss + hp.acgan_weight * ac
            aux["d_acgan"] = ac
        return loss, aux

    (d_loss, d_aux), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d_params)
    if spec.loss == "nonsaturating":
        r1 = jnp.zeros((), jnp.float32)
        if with_r1:
            weight = 0.5 * hp.r1_gamma * hp.r1_interval
            r1, r1_grads = jax.value_and_grad(
                lambda p: losses.r1_penalty(lambda x: d_apply(p, x)[0], real_seen))(state.d_params)
            d_grads = jax.tree.map(lambda g, r: g + weight * r, d_grads, r1_grads)
            d_loss = d_loss + weight * r1
        d_aux["r1"] = r1
    d_updates, d_opt_state = d_tx.update(d_grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, d_updates)

    # --- generator --------------------------------------------------------
    z = jax.random.normal(keys[5], (b, spec.latent_dim), jnp.float32)

    def g_loss_fn(g_params):
        fake = generate(spec, g_params, z, labels, keys[6], alpha)
        fake_logits, fake_class = d_apply(d_params, maybe_augment(keys[7], fake))
        aux = {}
        if spec.loss == "wgan_gp":
            loss = losses.wgan_g_loss(fake_logits)
        else:
            loss = losses.nonsaturating_g_loss(fake_logits)
        if spec.acgan:
            ac = losses.acgan_loss(fake_class, labels)
            loss = loss + hp.acgan_weight * ac
            aux["g_acgan"] = ac
        pl_mean = state.pl_mean
        if hp.pl_weight > 0:
            pl = jnp.zeros((), jnp.float32)
            if with_path_length:
                from medgan.models import stylegan2

                pl, pl_mean = stylegan2.path_length_penalty(
                    spec.generator, g_params, z, labels, jax.random.fold_in(keys[6], 1), state.pl_mean
                )[:2]
                loss = loss + hp.pl_weight * hp.pl_interval * pl
            aux["path_length_penalty"] = pl
        return loss, (aux, pl_mean)

    (g_loss, (g_aux, pl_mean)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.g_params)
    g_updates, g_opt_state = g_tx.update(g_grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)
    ema_params = ema_update(state.ema_params, g_params, state.step, hp.ema_decay)

    # --- ADA probability (Karras et al. 2020b, sec. 3) ----------------------
    sign_sum, count, p = state.ada_sign_sum + d_aux.pop("real_sign"), state.ada_count + 1.0, state.ada_p
    rt = sign_sum / count
    if hp.augment:
        update_now = ((state.step + 1) % hp.ada_interval) == 0
        new_p = ada.update_probability(
            p, rt, target=hp.ada_target, batch_size=hp.global_batch_size,
            interval=hp.ada_interval, speed_images=hp.ada_speed_images,
        )
        p = jnp.where(update_now, new_p, p)
        sign_sum, count = jnp.where(update_now, 0.0, sign_sum), jnp.where(update_now, 0.0, count)

    d_grad_norm, g_grad_norm = optax.tree.norm(d_grads), optax.tree.norm(g_grads)
    ok = faults.all_finite(d_loss, g_loss, d_grad_norm, g_grad_norm)
    updated = state.replace(
        g_params=g_params,
        d_params=d_params,
        ema_params=ema_params,
        g_opt_state=g_opt_state,
        d_opt_state=d_opt_state,
        ada_p=p,
        ada_sign_sum=sign_sum,
        ada_count=count,
        pl_mean=pl_mean,
    )
    new_state = faults.guarded(ok, updated, state).replace(step=state.step + 1)
    metrics = {
        "d_loss": d_loss,
        "g_loss": g_loss,
        "d_grad_norm": d_grad_norm,
        "g_grad_norm": g_grad_norm,
        faults.SKIPPED: 1.0 - ok.astype(jnp.float32),
        "ada_p": state.ada_p,
        "ada_rt": rt,
        **d_aux,
        **g_aux,
    }
    if spec.progressive:
        metrics["alpha"] = jnp.asarray(alpha, jnp.float32)
    return new_state, metrics


class TrainStep:
    """`train(state, batch, rng, alpha, step) -> (state, metrics)`: the step, jitted once per regulariser pattern.

    Lazy regularisation (Karras et al. 2020, sec. 3.1) adds R1 to every
    `r1_interval`-th D update and the path-length term to every
    `pl_interval`-th G update. Which ones a step carries is a host function of
    `step` (the updates done before it, i.e. `state.step`, which the loop
    counts on the host), so each pattern is its own compiled program — at
    most two for the usual configurations. A `lax.cond` on `state.step`
    would need no host count, but XLA:CPU runs the R1 double backward pass
    about 12x slower inside a conditional branch than outside one
    (`launch/bench.py gan` measures the step with R1 amortised).

    Explicit shardings: state, rng, alpha replicated; batch sharded over
    `data`; the state is donated. For a progressive model build one per
    growth stage (`spec.at_stage(s)`): alpha is traced, so a stage compiles
    once per pattern.
    """

    def __init__(self, spec: GanSpec, hp: GanHyperparameters, mesh: Mesh):
        self.spec, self.hp, self.mesh = spec, hp, mesh
        self._jitted: dict[tuple[bool, bool], Any] = {}

    def regularisers_at(self, step: int) -> tuple[bool, bool]:
        """(R1, path length) of the update that follows `step` updates."""
        return (self.spec.loss == "nonsaturating" and step % self.hp.r1_interval == 0,
                self.hp.pl_weight > 0 and step % self.hp.pl_interval == 0)

    def patterns(self) -> list[tuple[bool, bool]]:
        """Every (R1, path length) pattern the steps cycle through, in sorted order."""
        period = math.lcm(self.hp.r1_interval, self.hp.pl_interval)
        return sorted({self.regularisers_at(step) for step in range(period)})

    def jitted(self, with_r1: bool = False, with_path_length: bool = False):
        """The jitted `(state, batch, rng, alpha) -> (state, metrics)` of one regulariser pattern."""
        pattern = (bool(with_r1), bool(with_path_length))
        if pattern not in self._jitted:
            repl, data = replicated(self.mesh), batch_sharding(self.mesh)
            self._jitted[pattern] = jax.jit(
                functools.partial(train_step, spec=self.spec, hp=self.hp,
                                  with_r1=pattern[0], with_path_length=pattern[1]),
                in_shardings=(repl, data, repl, repl),
                out_shardings=(repl, repl),
                donate_argnums=0,
            )
        return self._jitted[pattern]

    def __call__(self, state: GanState, batch, rng: jax.Array, alpha, step: int):
        return self.jitted(*self.regularisers_at(step))(state, batch, rng, alpha)

    def compiled_programs(self) -> int:
        """Programs compiled so far over all patterns (1 per pattern used, unless something recompiled)."""
        return sum(f._cache_size() for f in self._jitted.values())


def make_train_step(spec: GanSpec, hp: GanHyperparameters, mesh: Mesh) -> TrainStep:
    """The model's `TrainStep` (see there): positional `(state, batch, rng, alpha, step)`."""
    return TrainStep(spec, hp, mesh)


def make_sampler(spec: GanSpec, mesh: Mesh):
    """`sample(params, z [B,Z], labels [B,K], rng, alpha) -> images [B,R,R,C]` jitted, batch sharded over `data`.

    For a progressive model pass the spec of the current stage (`spec.at_stage`)
    and its fade-in weight; others ignore alpha.
    """
    repl, data = replicated(mesh), batch_sharding(mesh)
    return jax.jit(
        lambda params, z, labels, rng, alpha: generate(spec, params, z, labels, rng, alpha),
        in_shardings=(repl, data, data, repl, repl),
        out_shardings=data,
    )
