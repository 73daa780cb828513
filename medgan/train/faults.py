"""Non-finite updates: a step whose loss or gradient is not finite leaves the state as it was.

A NaN or an overflow in one batch (a bad image, a loss spike under a high
learning rate, bf16 overflow) would otherwise poison the parameters and every
later checkpoint. Inside the jitted step `guarded` replaces the update by the
old state when any of the given scalars is not finite (the step counter still
advances, so the next step draws fresh randomness and the loop's step and the
state's agree); the step reports it as the metric `SKIPPED` (1.0 or 0.0), and
`train/loop.train_loop` counts the skipped steps and stops a run that skips
`max_skipped_in_a_row` in a row, without saving, so the latest checkpoint
holds the last finite state.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

SKIPPED = "skipped"  # the step metric: 1.0 where the update was skipped


class NonFiniteTraining(RuntimeError):
    """Too many updates in a row had a non-finite loss or gradient."""


def all_finite(*scalars: jax.Array) -> jax.Array:
    """bool []: every scalar (a loss, a gradient norm) is finite."""
    return jnp.all(jnp.stack([jnp.isfinite(jnp.asarray(s, jnp.float32)) for s in scalars]))


def guarded(ok: jax.Array, new: Any, old: Any) -> Any:
    """`new` where `ok`, else `old`, leaf by leaf (two pytrees of the same structure)."""
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)
