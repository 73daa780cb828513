"""Tests for medgan.train.losses: hand-computed values, linear-D identities, jit and finite grads."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medgan.train import losses as L

LOG2 = math.log(2.0)


def _linear_d(w):
    """D(x) = <w, x> per example; grad_x D = w everywhere."""
    return lambda x: jnp.sum(x.reshape(x.shape[0], -1) * w.reshape(-1), axis=-1)


def _images(seed, shape=(3, 4, 4, 2)):
    return jax.random.normal(jax.random.PRNGKey(seed), shape)


# ---------------------------------------------------------------- WGAN-GP

def test_wgan_gp_d_loss_hand_computed():
    real = jnp.array([1.0, 3.0])
    fake = jnp.array([-1.0, 0.0])
    # E[fake] - E[real] = -0.5 - 2 = -2.5; 10 * 0.2 = 2; drift 0.001 * (1 + 9)/2 = 0.005
    got = L.wgan_gp_d_loss(real, fake, jnp.float32(0.2))
    np.testing.assert_allclose(got, -2.5 + 2.0 + 0.005, rtol=1e-6)


def test_drift_term_alone():
    real = jnp.array([2.0, -2.0])  # E[real]=0, E[real^2]=4
    got = L.wgan_gp_d_loss(real, jnp.zeros(2), 0.0, lambda_gp=10.0, drift=0.001)
    np.testing.assert_allclose(got, 0.004, rtol=1e-6)
    np.testing.assert_allclose(L.wgan_gp_d_loss(real, jnp.zeros(2), 0.0, drift=0.0), 0.0, atol=1e-7)


def test_wgan_g_loss():
    np.testing.assert_allclose(L.wgan_g_loss(jnp.array([1.0, 2.0, 6.0])), -3.0, rtol=1e-6)


def test_gradient_penalty_unit_norm_linear_d_is_zero():
    w = _images(0, (4, 4, 2))
    w = w / jnp.linalg.norm(w)
    gp = L.gradient_penalty(_linear_d(w), _images(1), _images(2), jax.random.PRNGKey(3))
    np.testing.assert_allclose(gp, 0.0, atol=1e-6)


@pytest.mark.parametrize("scale", [0.0, 0.3, 2.5])
def test_gradient_penalty_linear_d(scale):
    w = _images(0, (4, 4, 2))
    w = scale * w / jnp.linalg.norm(w)
    gp = L.gradient_penalty(_linear_d(w), _images(1), _images(2), jax.random.PRNGKey(3))
    np.testing.assert_allclose(gp, (scale - 1.0) ** 2, rtol=1e-5, atol=1e-6)


def test_gradient_penalty_is_per_example():
    """D(x)_i = s_i * x_i . u: per-example norms |s_i| -> mean of (|s_i| - 1)^2, not a batch norm."""
    u = jnp.zeros((4, 4, 2)).at[0, 0, 0].set(1.0)
    s = jnp.array([0.0, 1.0, 3.0])

    def d_fn(x):
        return s * jnp.sum(x * u, axis=(1, 2, 3))

    gp = L.gradient_penalty(d_fn, _images(1), _images(2), jax.random.PRNGKey(0))
    np.testing.assert_allclose(gp, (1.0 + 0.0 + 4.0) / 3.0, rtol=1e-5)


def test_gradient_penalty_interpolates_per_example():
    """With quadratic D(x)_i = 0.5 ||x_i||^2, grad = x^_i; real=1, fake=0 -> x^_i = eps_i * 1."""
    real = jnp.ones((64, 1, 1, 1))
    fake = jnp.zeros((64, 1, 1, 1))
    key = jax.random.PRNGKey(7)
    gp = L.gradient_penalty(lambda x: 0.5 * jnp.sum(jnp.square(x), axis=(1, 2, 3)), real, fake, key)
    eps = jax.random.uniform(key, (64, 1, 1, 1))
    np.testing.assert_allclose(gp, jnp.mean(jnp.square(jnp.abs(eps) - 1.0)), rtol=1e-5)
    assert float(jnp.std(eps)) > 0.1  # distinct eps per example


# ------------------------------------------------------- non-saturating + R1

def test_nonsaturating_at_zero_logits():
    z = jnp.zeros(5)
    np.testing.assert_allclose(L.nonsaturating_d_loss(z, z), 2 * LOG2, rtol=1e-6)
    np.testing.assert_allclose(L.nonsaturating_g_loss(z), LOG2, rtol=1e-6)


def test_nonsaturating_hand_computed():
    real = jnp.array([2.0, -1.0])
    fake = jnp.array([0.5])
    sp = lambda t: math.log1p(math.exp(t))  # noqa: E731
    want_d = (sp(-2.0) + sp(1.0)) / 2 + sp(0.5)
    np.testing.assert_allclose(L.nonsaturating_d_loss(real, fake), want_d, rtol=1e-6)
    np.testing.assert_allclose(L.nonsaturating_g_loss(fake), sp(-0.5), rtol=1e-6)
    # extreme logits stay finite (softplus form, not log(sigmoid))
    big = jnp.array([1e4, -1e4])
    assert np.isfinite(float(L.nonsaturating_d_loss(big, big)))


@pytest.mark.parametrize("scale", [0.0, 0.5, 3.0])
def test_r1_linear_d(scale):
    w = _images(0, (4, 4, 2))
    w = scale * w / jnp.linalg.norm(w)
    np.testing.assert_allclose(L.r1_penalty(_linear_d(w), _images(1)), scale**2, rtol=1e-5, atol=1e-7)


def test_r1_quadratic_d():
    x = _images(4)
    got = L.r1_penalty(lambda v: 0.5 * jnp.sum(jnp.square(v), axis=(1, 2, 3)), x)
    np.testing.assert_allclose(got, jnp.mean(jnp.sum(jnp.square(x), axis=(1, 2, 3))), rtol=1e-5)


# ------------------------------------------------------------ conditioning

def test_acgan_one_hot():
    logits = jnp.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    labels = jnp.array([[0, 1, 0], [1, 0, 0]])
    ls = jax.nn.log_softmax(logits, axis=-1)
    want = -(ls[0, 1] + ls[1, 0]) / 2
    np.testing.assert_allclose(L.acgan_loss(logits, labels), want, rtol=1e-6)


def test_acgan_two_hot_is_mean_of_positives():
    logits = jnp.array([[1.0, 2.0, 0.5, -2.0]])
    labels = jnp.array([[1, 0, 1, 0]])
    ls = jax.nn.log_softmax(logits, axis=-1)
    np.testing.assert_allclose(L.acgan_loss(logits, labels), -(ls[0, 0] + ls[0, 2]) / 2, rtol=1e-6)


def test_acgan_uniform_logits():
    logits = jnp.zeros((2, 4))
    labels = jnp.array([[1, 1, 1, 0], [0, 0, 0, 1]])
    np.testing.assert_allclose(L.acgan_loss(logits, labels), math.log(4.0), rtol=1e-6)


def test_acgan_all_zero_rows_masked():
    logits = jnp.array([[1.0, 2.0, 0.5], [5.0, -3.0, 1.0]])
    labels = jnp.array([[0, 1, 0], [0, 0, 0]])
    only = L.acgan_loss(logits[:1], labels[:1])
    got = L.acgan_loss(logits, labels)
    np.testing.assert_allclose(got, only, rtol=1e-6)  # zero row excluded from the mean
    g = jax.grad(L.acgan_loss)(logits, labels)
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g[1]) == 0.0)
    # all rows label-less: 0, finite, zero gradient
    zero = jnp.zeros((2, 3))
    assert float(L.acgan_loss(logits, zero)) == 0.0
    assert np.all(np.asarray(jax.grad(L.acgan_loss)(logits, zero)) == 0.0)


def test_projection_score():
    out = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    labels = jnp.array([[1, 0, 1], [0, 1, 0]])
    np.testing.assert_allclose(L.projection_score(out, labels), [4.0, 5.0])
    assert L.projection_score(out, labels).shape == (2,)


# ------------------------------------------------------------ jit and grads

def test_all_jit_and_finite_grads():
    key = jax.random.PRNGKey(0)
    real, fake = _images(1), _images(2)
    params = {"w": _images(3, (4, 4, 2)), "b": jnp.float32(0.1)}

    def d_apply(p, x):
        h = jnp.tanh(x * p["w"])  # nonlinear, per-example
        return jnp.sum(h, axis=(1, 2, 3)) + p["b"]

    def total(p):
        d = lambda x: d_apply(p, x)  # noqa: E731
        rl, fl = d(real), d(fake)
        gp = L.gradient_penalty(d, real, fake, key)
        logits = jnp.stack([rl, fl, rl * fl], axis=-1)
        labels = jnp.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]])
        return (
            L.wgan_gp_d_loss(rl, fl, gp)
            + L.wgan_g_loss(fl)
            + L.nonsaturating_d_loss(rl, fl)
            + L.nonsaturating_g_loss(fl)
            + 5.0 * L.r1_penalty(d, real)
            + L.acgan_loss(logits, labels)
            + jnp.mean(L.projection_score(logits, labels))
        )

    val, grads = jax.jit(jax.value_and_grad(total))(params)
    np.testing.assert_allclose(val, total(params), rtol=1e-5)
    assert np.isfinite(float(val))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))


def test_gradient_penalty_finite_grad_at_zero_norm():
    """D constant in x -> gradient norm 0: the safe norm keeps d GP / d params finite."""
    def total(b):
        return L.gradient_penalty(lambda x: jnp.zeros(x.shape[0]) + b, _images(1), _images(2),
                                  jax.random.PRNGKey(0))
    v, g = jax.jit(jax.value_and_grad(total))(jnp.float32(1.0))
    np.testing.assert_allclose(v, 1.0, rtol=1e-5)
    assert np.isfinite(float(g))
