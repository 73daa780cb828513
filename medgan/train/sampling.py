"""Sampling a trained generator: seeded latents, padded sharded batches, and loading the EMA weights.

The same (seed, labels) give the same images whatever the batch size, device
count or process count: row i's latent comes from fold_in(seed key, i), and
the noise key of a batch from the index of its first row.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from medgan import sharding
from medgan.models import gans
from medgan.train import checkpoints, gan_step


class Sampler:
    """Generates images for host-side (z, labels) on the mesh, in padded global batches of G rows."""

    def __init__(self, mesh, global_batch_size: int):
        self.mesh, self.batch = mesh, global_batch_size
        self._samplers: dict[gans.GanSpec, object] = {}

    def __call__(self, spec: gans.GanSpec, params, z: np.ndarray, labels: np.ndarray, rng: jax.Array,
                 alpha: float = 1.0) -> Iterator[tuple[jax.Array, np.ndarray]]:
        """Yields (images [G, R, R, C] global array, mask [G] host bool) per batch of at most G rows."""
        if spec not in self._samplers:
            self._samplers[spec] = gan_step.make_sampler(spec, self.mesh)
        sample = self._samplers[spec]
        data = sharding.batch_sharding(self.mesh)
        for start in range(0, len(z), self.batch):
            n = min(self.batch, len(z) - start)
            pad = self.batch - n
            zb = np.concatenate([z[start:start + n], np.zeros((pad, z.shape[1]), np.float32)])
            lb = np.concatenate([labels[start:start + n], np.zeros((pad, labels.shape[1]), np.float32)])
            images = sample(params, sharding.global_from_host(zb, data), sharding.global_from_host(lb, data),
                            jax.random.fold_in(rng, start), np.float32(alpha))
            yield images, np.arange(self.batch) < n

    def gather(self, spec: gans.GanSpec, params, z: np.ndarray, labels: np.ndarray, rng: jax.Array,
               alpha: float = 1.0) -> np.ndarray:
        """All N images [N, R, R, C] float32 in [-1, 1] on every process, in the order of `z`."""
        return np.concatenate([
            multihost_utils.process_allgather(jnp.clip(batch, -1.0, 1.0), tiled=True)[mask]
            for batch, mask in self(spec, params, z, labels, rng, alpha)
        ])


def latents(seed: int, count: int, latent_dim: int) -> np.ndarray:
    """z [count, Z] float32, row i from its own key (fold_in(seed key, i)): independent of batching."""
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(count))
    return np.asarray(jax.vmap(lambda k: jax.random.normal(k, (latent_dim,), jnp.float32))(keys))


def load_generator(path: str, spec: gans.GanSpec, mesh) -> dict:
    """The EMA generator params saved at `path` (`checkpoints.save_params({"params": ...})`), replicated on `mesh`."""
    abstract = jax.eval_shape(lambda: gan_step.init_params(spec, jax.random.key(0))[0])
    return checkpoints.load_params(os.path.abspath(path), {"params": abstract}, mesh)["params"]
