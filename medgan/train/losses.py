"""GAN losses and discriminator regularisers for the study's GANs (pure jnp, jit-able).

docs/ARCHITECTURE.md, "The benchmark definitions": progressive GAN (label concatenated to the
latent, AC-GAN head) and a non-progressive resnet GAN with a label-projection
discriminator (``sum(out * labels)``), both trained with WGAN-GP (lambda=10,
drift 0.001); plus StyleGAN2 (+ADA), trained with the non-saturating loss and
lazy R1.

Shapes: B = batch, K = number of labels, images are [B, H, W, C] (any rank
>= 1 works; the first axis is the batch). ``d_fn`` maps images -> logits [B],
with examples independent of each other (no batch statistics), so the
per-example input gradients are the gradient of ``sum(d_fn(x))``.

All losses are means over the batch and return scalars [].
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from medgan.models.layers import projection_score

Array = jax.Array
DFn = Callable[[Array], Array]

__all__ = [
    "wgan_gp_d_loss",
    "wgan_g_loss",
    "gradient_penalty",
    "nonsaturating_d_loss",
    "nonsaturating_g_loss",
    "r1_penalty",
    "acgan_loss",
    "projection_score",
    "dragan_penalty",
    "real_fake_logit",
    "semi_supervised_d_loss",
]


# ----------------------------------------------------------------------------
# WGAN-GP (progressive GAN and the resnet projection GAN of the study)
# ----------------------------------------------------------------------------

def wgan_gp_d_loss(
    real_logits: Array,
    fake_logits: Array,
    gradient_penalty: Array,
    lambda_gp: float = 10.0,
    drift: float = 0.001,
) -> Array:
    """WGAN-GP critic loss with the progressive-GAN drift term.

    L_D = E[D(x~)] - E[D(x)] + lambda * GP + eps_drift * E[D(x)^2]

    The first three terms are Gulrajani et al. 2017 ("Improved Training of
    Wasserstein GANs"), eq. 3, with ``gradient_penalty`` the value of
    :func:`gradient_penalty` (E[(||grad D(x^)||_2 - 1)^2]); the last is the
    drift term of Karras et al. 2018 ("Progressive Growing of GANs"), sec. A.1,
    eps_drift = 0.001, which keeps the real logits near 0.

    Args:
      real_logits: [B] critic outputs on real images (also used for the drift).
      fake_logits: [B] critic outputs on generated images.
      gradient_penalty: [] the penalty, already averaged over the batch.
      lambda_gp: penalty weight (10 in the paper and the study).
      drift: drift weight (0.001 in the paper and the study).
    Returns: [] scalar loss.
    """
    real_logits = jnp.asarray(real_logits)
    fake_logits = jnp.asarray(fake_logits)
    wasserstein = jnp.mean(fake_logits) - jnp.mean(real_logits)
    return wasserstein + lambda_gp * gradient_penalty + drift * jnp.mean(jnp.square(real_logits))


def wgan_g_loss(fake_logits: Array) -> Array:
    """WGAN generator loss -E[D(G(z))] (Gulrajani et al. 2017, Algorithm 1).

    Args: fake_logits [B]. Returns: [] scalar.
    """
    return -jnp.mean(jnp.asarray(fake_logits))


def _per_example_input_grads(d_fn: DFn, x: Array) -> Array:
    """d D(x)_i / d x_i for every example, shape = x.shape.

    Valid because example i's logit depends only on x_i, so the gradient of
    sum_i D(x)_i w.r.t. x_i is the per-example gradient.
    """
    return jax.grad(lambda v: jnp.sum(d_fn(v)))(x)


def _safe_norm(sq: Array, tiny: float = 1e-12) -> Array:
    """sqrt with a finite gradient at 0 (a zero gradient norm occurs e.g. at D=const)."""
    return jnp.sqrt(sq + tiny)


def gradient_penalty(d_fn: DFn, real: Array, fake: Array, rng: Array) -> Array:
    """Two-sided gradient penalty of WGAN-GP (Gulrajani et al. 2017, eq. 3).

    x^ = eps * x + (1 - eps) * x~, eps ~ U[0, 1] drawn once per example;
    GP = E_x^[(||grad_x^ D(x^)||_2 - 1)^2], the norm taken per example over
    all non-batch axes.

    Args:
      d_fn: images [B, H, W, C] -> logits [B]; must treat examples
        independently (no batch norm), as the penalty requires.
      real: [B, H, W, C] real images.
      fake: [B, H, W, C] generated images (caller stops gradients into G).
      rng: PRNG key for eps.
    Returns: [] scalar penalty (unweighted; multiply by lambda in the loss).
    """
    real = jnp.asarray(real)
    fake = jnp.asarray(fake).astype(real.dtype)
    eps_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    eps = jax.random.uniform(rng, eps_shape, dtype=real.dtype)
    x_hat = eps * real + (1.0 - eps) * fake
    grads = _per_example_input_grads(d_fn, x_hat)
    sq = jnp.sum(jnp.square(grads).reshape(grads.shape[0], -1), axis=-1)  # [B]
    return jnp.mean(jnp.square(_safe_norm(sq) - 1.0))


# ----------------------------------------------------------------------------
# Non-saturating logistic loss + R1 (StyleGAN2 / ADA)
# ----------------------------------------------------------------------------

def nonsaturating_d_loss(real_logits: Array, fake_logits: Array) -> Array:
    """Logistic discriminator loss E[softplus(-D(x))] + E[softplus(D(G(z)))].

    Goodfellow et al. 2014 ("Generative Adversarial Nets"), eq. 1, written in
    logits (-log sigmoid(t) = softplus(-t)); as in StyleGAN2 (Karras et al.
    2020), loss.py. Args: real_logits [B], fake_logits [B]. Returns: [].
    At logits 0 each term is log 2.
    """
    return jnp.mean(jax.nn.softplus(-jnp.asarray(real_logits))) + jnp.mean(
        jax.nn.softplus(jnp.asarray(fake_logits))
    )


def nonsaturating_g_loss(fake_logits: Array) -> Array:
    """Non-saturating generator loss E[softplus(-D(G(z)))] = -E[log sigmoid(D(G(z)))].

    Goodfellow et al. 2014, sec. 3 (the "-log D" trick); StyleGAN2's G loss.
    Args: fake_logits [B]. Returns: [] (log 2 at logits 0).
    """
    return jnp.mean(jax.nn.softplus(-jnp.asarray(fake_logits)))


def r1_penalty(d_fn: DFn, real: Array) -> Array:
    """R1 penalty E_x[||grad_x D(x)||_2^2] on real data (Mescheder et al. 2018, eq. 9).

    Returned unweighted. The caller applies the weighting: the paper's loss term
    is gamma/2 * R1; with StyleGAN2's lazy regularisation (Karras et al. 2020,
    sec. 3.1) it is evaluated every ``interval`` (16) D steps and scaled by
    ``interval`` to keep the expected magnitude: gamma/2 * R1 * interval.

    Args:
      d_fn: images [B, H, W, C] -> logits [B], examples independent.
      real: [B, H, W, C] real images (after augmentation, for ADA).
    Returns: [] scalar.
    """
    real = jnp.asarray(real)
    grads = _per_example_input_grads(d_fn, real)
    return jnp.mean(jnp.sum(jnp.square(grads).reshape(grads.shape[0], -1), axis=-1))


# ----------------------------------------------------------------------------
# Conditioning heads of the study
# ----------------------------------------------------------------------------

def acgan_loss(class_logits: Array, labels: Array) -> Array:
    """AC-GAN auxiliary classification loss of the study (multi-hot labels).

    Odena et al. 2017 ("Conditional Image Synthesis with Auxiliary Classifier
    GANs"), L_C = E[log P(C = c | X)], extended as in the study's progressive
    GAN to multi-hot label rows: softmax cross-entropy against the normalised
    label distribution p = labels / sum(labels),

        CE_i = -sum_k p_ik * log softmax(class_logits_i)_k.

    For a one-hot row this is -log softmax at the positive class; for a 2-hot
    row it is the mean of -log softmax at the two positives.

    Error case: a row with no positive label (sum(labels) == 0) has no target
    distribution. Such rows are MASKED: they contribute nothing, and the loss
    is the mean over the valid rows (0.0 if no row is valid). They never
    produce NaN. (The study drops label-less rows at data preparation, so this
    is only a guard.) Negative labels are not expected.

    Args:
      class_logits: [B, K] auxiliary-head logits.
      labels: [B, K] multi-hot labels (0/1; any non-negative weights work).
    Returns: [] scalar loss.
    """
    class_logits = jnp.asarray(class_logits)
    labels = jnp.asarray(labels).astype(class_logits.dtype)
    total = jnp.sum(labels, axis=-1, keepdims=True)  # [B, 1]
    valid = (total[:, 0] > 0).astype(class_logits.dtype)  # [B]
    target = labels / jnp.where(total > 0, total, 1.0)
    ce = -jnp.sum(target * jax.nn.log_softmax(class_logits, axis=-1), axis=-1)  # [B]
    return jnp.sum(ce * valid) / jnp.maximum(jnp.sum(valid), 1.0)


# ----------------------------------------------------------------------------
# The contextual lesion GAN of the mammography study
# ----------------------------------------------------------------------------

def dragan_penalty(d_fn: DFn, real: Array, rng: Array, spread: float = 0.5) -> Array:
    """DRAGAN's gradient penalty around the real data (Kodali et al. 2017, Sec. 5 and its reference code).

    x_p = x + spread * std(x) * u, u ~ U[0, 1) per pixel (std over the whole
    batch); x^ = a x + (1 - a) x_p, a ~ U[0, 1) per example; penalty
    E[(||grad_x^ D(x^)||_2 - 1)^2]. It keeps D's gradient bounded near the
    real manifold, where mode collapse starts, rather than between real and
    fake samples as WGAN-GP does.

    Args:
      d_fn: images [B, H, W, C] -> logits [B], examples independent.
      real: [B, H, W, C]. rng: PRNG key.
    Returns: [] scalar, unweighted (the loss multiplies it by lambda).
    """
    real = jnp.asarray(real)
    noise_key, mix_key = jax.random.split(rng)
    perturbed = real + spread * jnp.std(real) * jax.random.uniform(noise_key, real.shape, real.dtype)
    a = jax.random.uniform(mix_key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
    x_hat = a * real + (1.0 - a) * perturbed
    grads = _per_example_input_grads(d_fn, x_hat)
    sq = jnp.sum(jnp.square(grads).reshape(grads.shape[0], -1), axis=-1)
    return jnp.mean(jnp.square(_safe_norm(sq) - 1.0))


def real_fake_logit(logits: Array, fake_class: int = 1) -> Array:
    """The real-versus-fake logit of a K-way semi-supervised critic: logsumexp(real classes) - fake logit.

    Salimans et al. 2016, Sec. 5: with p(fake) = softmax(logits)[fake], this is
    log(1 - p(fake)) - log p(fake). logits [B, K] -> [B].
    """
    logits = jnp.asarray(logits, jnp.float32)
    real = jnp.delete(logits, fake_class, axis=-1, assume_unique_indices=True)
    return jax.nn.logsumexp(real, axis=-1) - logits[:, fake_class]


def semi_supervised_d_loss(logits: dict[str, Array], weights: dict[str, float], classes: dict[str, int]) -> Array:
    """Sum over groups of weight * mean softmax cross-entropy of the group's logits [B, K] against its class.

    The contextual GAN's discriminator (Odena 2016's semi-supervised GAN):
    real malignant patches -> class 0, fakes -> 1, benign -> 2, normal -> 3,
    the last two weighted by a factor. Returns [].
    """
    total = jnp.zeros((), jnp.float32)
    for group, group_logits in logits.items():
        log_p = jax.nn.log_softmax(jnp.asarray(group_logits, jnp.float32), axis=-1)
        total = total + weights.get(group, 1.0) * -jnp.mean(log_p[:, classes[group]])
    return total
