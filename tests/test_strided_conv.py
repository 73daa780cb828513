"""conv_stride2 equals the plain stride-2 convolution in value and derivatives, lowered without the slow op."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medgan.models.strided_conv import conv_stride2


def _plain(x, w):
    return jax.lax.conv_general_dilated(x, w, (2, 2), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _inputs(k=3, h=9, dtype=jnp.float32):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, h, h + 2, 3)), dtype)
    w = jnp.asarray(rng.normal(size=(k, k, 3, 4)) * 0.3, dtype)
    return x, w


def _derivatives(conv, x, w):
    """Derivatives of orders 1-3 of sum(sin(conv(x, w))), reverse mode, the third along a direction; one vector."""
    rng = np.random.default_rng(1)
    vw = jnp.asarray(rng.normal(size=w.shape), w.dtype)

    def f(x, w):
        return jnp.sum(jnp.sin(conv(x, w)))

    grad = jax.grad(f, argnums=(0, 1))

    def r1(x, w):  # the shape of every gradient penalty: a norm of the input gradient
        return jnp.sum(jax.grad(f)(x, w) ** 2)

    def r1_weight_grad_along(x, w):
        return jnp.sum(jax.grad(r1, argnums=1)(x, w) * vw)

    parts = [*grad(x, w), *jax.grad(r1, argnums=(0, 1))(x, w), *jax.grad(r1_weight_grad_along, argnums=(0, 1))(x, w)]
    return jnp.concatenate([jnp.ravel(p) for p in parts])


@pytest.mark.parametrize("k,h", [(3, 9), (3, 8), (1, 6), (4, 10)])
def test_values_and_derivatives_up_to_third_order_equal_the_plain_convolution(k, h):
    x, w = _inputs(k, h)
    np.testing.assert_allclose(conv_stride2(x, w), _plain(x, w), rtol=1e-6, atol=1e-6)
    want = _derivatives(_plain, x, w)
    got = jax.jit(lambda x, w: _derivatives(conv_stride2, x, w))(x, w)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * float(jnp.max(jnp.abs(want))))


def test_bfloat16_in_bfloat16_out_for_the_value_and_the_penalty_gradient():
    x, w = _inputs(dtype=jnp.bfloat16)
    assert conv_stride2(x, w).dtype == jnp.bfloat16
    gx, gw = jax.grad(lambda x, w: jnp.sum(jax.grad(lambda x: jnp.sum(conv_stride2(x, w) ** 2))(x) ** 2), (0, 1))(x, w)
    assert gx.dtype == gw.dtype == jnp.bfloat16


def test_the_double_backward_lowers_without_a_reversed_dilated_kernel():
    """What JAX derives for the plain convolution's R1 gradient holds a convolution with a reversed,
    dilated kernel (XLA:CPU's slow path: 21x a forward and backward pass at 64 px); conv_stride2's does not."""
    x, w = _inputs(h=33)

    def r1_weight_grad(conv):
        penalty = lambda w: jnp.sum(jax.grad(lambda x: jnp.sum(jnp.sin(conv(x, w))))(x) ** 2)  # noqa: E731
        return jax.jit(jax.grad(penalty)).lower(w).compile().as_text()

    assert "rhs_reversal" in r1_weight_grad(_plain)
    assert "rhs_reversal" not in r1_weight_grad(conv_stride2)
