"""Saving and loading a trained network's parameters: the one orbax save/load pair of medgan.

Training checkpoints (state, optimiser, loop status) belong to
`train/loop.py`'s CheckpointManager. This module writes what a finished job
hands to the next one: the classifier the benchmark selected (its features
score the GAN and audit the synthetic cohort) and the GAN's EMA generator
(what `synthesize` samples). Both are pytrees of arrays replicated over the
mesh; `params_sha256` is their identity, independent of file timestamps.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

import jax
import numpy as np
from jax.sharding import Mesh

from medgan.sharding import replicated


def save_params(path: str | os.PathLike, tree: Mapping, *, overwrite: bool = False) -> None:
    """Saves the pytree `tree` to the directory `path` (orbax StandardCheckpointer), blocking.

    Every process takes part (the save is collective). Orbax writes to a
    temporary directory and renames it, so a crash leaves no half-written
    checkpoint. Raises FileExistsError if `path` exists and not `overwrite`.
    """
    import orbax.checkpoint as ocp

    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"save_params: {path} exists (pass overwrite=True to replace it)")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, dict(tree), force=overwrite)
        checkpointer.wait_until_finished()


def load_params(path: str | os.PathLike, abstract: Mapping, mesh: Mesh) -> dict:
    """Restores a tree saved by `save_params` into the structure of `abstract`, replicated on `mesh`.

    Args:
      path: checkpoint directory.
      abstract: the expected pytree of jax.ShapeDtypeStruct (e.g. from
        `jax.eval_shape(model.init, ...)`) or arrays; restored dtypes are these.
      mesh: every leaf is restored replicated over it.

    Raises:
      FileNotFoundError if `path` does not exist; ValueError naming the first
      parameter path (sorted) that is missing, unexpected or of another shape,
      e.g. "params/classifier/kernel: checkpoint (1024, 1000), model (1024, 14)".
    """
    import orbax.checkpoint as ocp

    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"load_params: no checkpoint directory at {path}")
    with ocp.StandardCheckpointer() as checkpointer:
        metadata = checkpointer.metadata(path)
        stored_tree = getattr(metadata, "item_metadata", metadata)
        stored = _flat_shapes(getattr(stored_tree, "tree", stored_tree))
        wanted = _flat_shapes(abstract)
        for key in sorted(set(stored) | set(wanted)):
            if key not in stored:
                raise ValueError(f"load_params({path}): {key}: missing from the checkpoint, model shape {wanted[key]}")
            if key not in wanted:
                raise ValueError(f"load_params({path}): {key}: in the checkpoint {stored[key]} but not in the model")
            if stored[key] != wanted[key]:
                raise ValueError(f"load_params({path}): {key}: checkpoint {stored[key]}, model {wanted[key]}")
        sharding = replicated(mesh)
        target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), dict(abstract))
        return checkpointer.restore(path, target)


def params_sha256(params) -> str:
    """SHA-256 over every parameter's path, dtype, shape and bytes: the weights' identity.

    Independent of when and how they were saved (orbax's files carry
    timestamps), so a resumed run that reaches the same weights as an
    uninterrupted one has the same hash. Parameters are replicated: each leaf's
    first local copy is the whole array.
    """
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if isinstance(leaf, jax.Array):
            if not leaf.is_fully_replicated:
                raise ValueError(f"parameter {jax.tree_util.keystr(path)} is sharded; expected replicated parameters")
            leaf = leaf.addressable_data(0)
        value = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}|{value.dtype}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _flat_shapes(tree) -> dict[str, tuple[int, ...]]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path): tuple(leaf.shape)
        for path, leaf in flat
    }
