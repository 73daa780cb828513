"""The stride-2 convolution with derivatives of every order that XLA:CPU runs fast.

Regularisers that penalise an input gradient (R1 in StyleGAN2, the gradient
penalty of WGAN-GP, DRAGAN) differentiate the discriminator twice. JAX's
automatic derivative of a stride-2 convolution is right but, differentiated
again, ends in the weight gradient of an input-dilated convolution, which
XLA:CPU lowers to a convolution with a dilated, reversed kernel and
transposed dimension labels: at [8, 65, 65, 64] * [3, 3, 64, 64] that one op
made the double backward 21x the cost of a forward and backward pass (781 ms
against 37 ms), where a stride-1 convolution's double backward is 2x.

The three linear maps of a stride-2 convolution,

* ``conv_stride2(x, w)``  y = x * w with stride 2,
* ``_input_grad(dy, w)``  the transposed convolution, the gradient for x,
* ``_weight_grad(x, dy)`` the gradient for w,

are each the transpose of another in one of their two arguments, so each one's
derivative is written with the other two (as stylegan2-ada-pytorch's
``conv2d_gradfix`` does for the same reason in PyTorch): derivatives of any
order stay within these three, and each is lowered as in a first-order pass.
Reverse mode only: `jax.jvp` of a `jax.custom_vjp` function raises a TypeError,
and nothing in medgan differentiates a discriminator forward.

Shapes: x [B, H, W, C_in] (NHWC), w [k, k, C_in, C_out] (HWIO),
y [B, (H - k) // 2 + 1, (W - k) // 2 + 1, C_out] ("VALID" padding).
"""

from __future__ import annotations

import functools

import jax

_DIMS = ("NHWC", "HWIO", "NHWC")


def _native(x: jax.Array, w: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, w, (2, 2), "VALID", dimension_numbers=_DIMS)


@jax.custom_vjp
def conv_stride2(x: jax.Array, w: jax.Array) -> jax.Array:
    """The "VALID" stride-2 convolution of x [B, H, W, C_in] with w [k, k, C_in, C_out]."""
    return _native(x, w)


def _conv_stride2_fwd(x, w):
    return _native(x, w), (x, w)


def _conv_stride2_bwd(residuals, dy):
    x, w = residuals
    return _input_grad(dy, w, x.shape), _weight_grad(x, dy, w.shape)


conv_stride2.defvjp(_conv_stride2_fwd, _conv_stride2_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _input_grad(dy: jax.Array, w: jax.Array, x_shape: tuple[int, ...]) -> jax.Array:
    """The transpose of x -> conv_stride2(x, w): dy [B, h, w, C_out] -> [B, H, W, C_in] (x_shape)."""
    transpose = jax.linear_transpose(lambda x: _native(x, w), jax.ShapeDtypeStruct(x_shape, dy.dtype))
    return transpose(dy)[0]


def _input_grad_fwd(dy, w, x_shape):
    return _input_grad(dy, w, x_shape), (dy, w)


def _input_grad_bwd(x_shape, residuals, dx):
    dy, w = residuals
    return conv_stride2(dx, w), _weight_grad(dx, dy, w.shape)


_input_grad.defvjp(_input_grad_fwd, _input_grad_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _weight_grad(x: jax.Array, dy: jax.Array, w_shape: tuple[int, ...]) -> jax.Array:
    """The transpose of w -> conv_stride2(x, w): dy [B, h, w, C_out] -> [k, k, C_in, C_out] (w_shape)."""
    transpose = jax.linear_transpose(lambda w: _native(x, w), jax.ShapeDtypeStruct(w_shape, dy.dtype))
    return transpose(dy)[0]


def _weight_grad_fwd(x, dy, w_shape):
    return _weight_grad(x, dy, w_shape), (x, dy)


def _weight_grad_bwd(w_shape, residuals, dw):
    x, dy = residuals
    return _input_grad(dy, dw, x.shape), conv_stride2(x, dw)


_weight_grad.defvjp(_weight_grad_fwd, _weight_grad_bwd)
