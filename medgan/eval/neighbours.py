"""Exact k nearest neighbours of a query set in a large reference set, in memory-bounded tiles over devices.

The memorisation audit compares every synthetic image with every real training
image (CheXpert's train set holds about 190,000), in a 1,024-d feature space
or in pixels. The reference set is streamed in tiles of `reference_tile` rows,
each copied to every device once; the queries stay on the devices in blocks
of `query_block` rows, each block split over the mesh's `data` axis; one
jitted step scores a query block against a tile and merges the tile's k best
into the block's running k best. Device memory is bounded by the queries, one
tile and one [query_block, reference_tile] score matrix, whatever the size of
the reference set, and the answer is exact (no approximate index).

Metrics: "cosine" (distance 1 - cos, the study's choice in the judge's
feature space) and "euclidean" (L2, for pixels).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, PartitionSpec as P

from medgan import sharding

METRICS = ("cosine", "euclidean")


@dataclasses.dataclass(frozen=True)
class Neighbours:
    """The k nearest references of each query, nearest first.

    distances [Q, k] float32 (1 - cos or L2), indices [Q, k] int64 rows of the reference set.
    """

    distances: np.ndarray
    indices: np.ndarray

    @property
    def nearest(self) -> np.ndarray:
        """[Q] the distance to each query's nearest reference."""
        return self.distances[:, 0]


def _prepare(x: np.ndarray, metric: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows as float32 [N, D], squared norms [N]); cosine rows are unit length (a zero row is an error)."""
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or not len(x):
        raise ValueError(f"{what}: expected a non-empty [N, D] array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: row {int(np.argwhere(~np.isfinite(x))[0, 0])} is not finite")
    norms = np.sqrt(np.sum(x.astype(np.float64) ** 2, axis=1))
    if metric == "cosine":
        if np.any(norms == 0):
            raise ValueError(f"{what}: row {int(np.argmin(norms))} is all zeros; its cosine distance is undefined")
        x = (x / norms[:, None]).astype(np.float32)
        norms = np.ones_like(norms)
    return x, (norms**2).astype(np.float32)


def _to_host(x: jax.Array) -> np.ndarray:
    """The whole of a (possibly multi-process) global array on this host."""
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _padded(x: np.ndarray, length: int) -> np.ndarray:
    """x [N, ...] with zero rows appended up to `length` rows."""
    out = np.zeros((length, *x.shape[1:]), x.dtype)
    out[: len(x)] = x
    return out


def _query_blocks(arrays: tuple[np.ndarray, ...], mesh: Mesh, query_block: int) -> tuple[int, list[tuple]]:
    """(rows per block, blocks): each array [Q, ...] padded and cut into blocks split over the mesh's devices.

    The block is rounded up to a multiple of the device count; the last one
    is padded with zero rows, which the caller masks (`valid`) or drops.
    """
    devices = mesh.devices.size
    query_block = -(-min(query_block, len(arrays[0])) // devices) * devices
    size = -(-len(arrays[0]) // query_block) * query_block
    rows = sharding.batch_sharding(mesh)
    padded = [_padded(x, size) for x in arrays]
    return query_block, [tuple(sharding.global_from_host(x[i : i + query_block], rows) for x in padded)
                         for i in range(0, size, query_block)]


def _tiles(arrays: tuple[np.ndarray, ...], mesh: Mesh, tile: int):
    """(start, valid rows, the tile of each array on every device), tile by tile; the last tile zero-padded."""
    whole = sharding.replicated(mesh)
    for start in range(0, len(arrays[0]), tile):
        valid = min(tile, len(arrays[0]) - start)
        yield start, valid, [sharding.global_from_host(_padded(x[start : start + valid], tile), whole) for x in arrays]


def _merge_local(best_score, best_index, queries, tile, tile_sqnorm, offset, valid, *, k, metric):
    """Merges one reference tile into the running k best of this device's rows of a query block.

    best_score, best_index [q, k]: larger score = nearer (cos, or 2 q.r - |r|^2
    for L2, which orders references as -|q - r|^2 does); queries [q, D];
    tile [t, D] with tile_sqnorm [t]; rows >= valid are padding.
    """
    dot = jnp.dot(queries, tile.T, precision=jax.lax.Precision.HIGHEST)  # [q, t]
    score = dot if metric == "cosine" else 2.0 * dot - tile_sqnorm[None, :]
    column = jnp.arange(tile.shape[0])
    score = jnp.where(column[None, :] < valid, score, -jnp.inf)
    index = jnp.broadcast_to(offset + column, score.shape)
    merged_score, position = jax.lax.top_k(jnp.concatenate([best_score, score], axis=1), k)
    merged_index = jnp.take_along_axis(jnp.concatenate([best_index, index], axis=1), position, axis=1)
    return merged_score, merged_index


@functools.cache
def _merge_tile(mesh: Mesh, k: int, metric: str):
    """`_merge_local` on every device's rows at once, jitted; the running best are donated.

    Each device merges its own query rows (shard_map): left to the SPMD
    partitioner, XLA gathers the whole block onto every device before its
    TopK, a collective per tile and block that buys nothing and, with many
    blocks in flight on a CPU's few threads, can deadlock.
    """
    rows, whole = P(sharding.DATA_AXIS), P()
    local = jax.shard_map(functools.partial(_merge_local, k=k, metric=metric), mesh=mesh,
                          in_specs=(rows, rows, rows, whole, whole, whole, whole), out_specs=(rows, rows))
    return jax.jit(local, donate_argnums=(0, 1))


def nearest_neighbours(
    queries: np.ndarray,
    references: np.ndarray,
    k: int,
    *,
    metric: str = "cosine",
    mesh: Mesh | None = None,
    query_block: int = 1024,
    reference_tile: int = 16384,
) -> Neighbours:
    """The k nearest rows of references [R, D] for each row of queries [Q, D] (exact).

    `query_block` is rounded up to a multiple of the mesh's device count.
    Every process passes the full arrays (as `sharding.global_from_host`
    expects) and gets the full answer.
    """
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is not one of {METRICS}")
    queries, query_sqnorm = _prepare(queries, metric, "queries")
    references, reference_sqnorm = _prepare(references, metric, "references")
    if queries.shape[1] != references.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} features, references {references.shape[1]}")
    if not 1 <= k <= len(references):
        raise ValueError(f"k = {k}: need 1 <= k <= {len(references)} (the number of references)")
    mesh = mesh or sharding.make_mesh()
    query_block, blocks = _query_blocks((queries,), mesh, query_block)
    rows = sharding.batch_sharding(mesh)
    best = [
        (
            sharding.global_from_host(np.full((query_block, k), -np.inf, np.float32), rows),
            sharding.global_from_host(np.full((query_block, k), -1, np.int32), rows),
        )
        for _ in blocks
    ]
    merge = _merge_tile(mesh, k, metric)
    for start, valid, (tile, sqnorm) in _tiles((references, reference_sqnorm), mesh,
                                               min(reference_tile, len(references))):
        best = [merge(*state, block, tile, sqnorm, np.int32(start), np.int32(valid))
                for state, (block,) in zip(best, blocks)]
    score = np.concatenate([_to_host(s) for s, _ in best])[: len(queries)].astype(np.float64)
    index = np.concatenate([_to_host(i) for _, i in best])[: len(queries)].astype(np.int64)
    if metric == "cosine":
        distance = 1.0 - score
    else:
        distance = np.sqrt(np.clip(query_sqnorm[: len(queries), None] - score, 0.0, None))
    return Neighbours(np.clip(distance, 0.0, None).astype(np.float32), index)


def nearest_over_views(views: list[np.ndarray], references: np.ndarray, k: int, **kwargs) -> Neighbours:
    """The k nearest references of each query over several views of it (the image, its mirror, shifts).

    views: V arrays [Q, D] (or [V, Q, D]), the same queries seen differently;
    a reference found by several views keeps its smallest distance. A
    mirrored or shifted copy of a training image is still a copy. The views
    are searched as one query set of V Q rows, so each reference tile crosses
    to the devices once.
    """
    views = np.asarray(views)
    if views.ndim != 3:
        raise ValueError(f"views have shape {views.shape}; expected V views of [Q, D]")
    n_views, n_queries = views.shape[:2]
    found = nearest_neighbours(views.reshape(n_views * n_queries, -1), references, k, **kwargs)
    distances = found.distances.reshape(n_views, n_queries, k).transpose(1, 0, 2).reshape(n_queries, n_views * k)
    indices = found.indices.reshape(n_views, n_queries, k).transpose(1, 0, 2).reshape(n_queries, n_views * k)
    order = np.argsort(distances, axis=1, kind="stable")
    distances, indices = np.take_along_axis(distances, order, 1), np.take_along_axis(indices, order, 1)
    # Each reference once, at its nearest view: sorted by (reference, position), the first of each run is kept.
    by_reference = np.lexsort((np.broadcast_to(np.arange(indices.shape[1]), indices.shape), indices), axis=1)
    grouped = np.take_along_axis(indices, by_reference, 1)
    first = np.ones(grouped.shape, bool)
    first[:, 1:] = grouped[:, 1:] != grouped[:, :-1]
    keep = np.zeros(grouped.shape, bool)
    np.put_along_axis(keep, by_reference, first, 1)
    chosen = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # the k nearest distinct references, nearest first
    return Neighbours(np.take_along_axis(distances, chosen, 1).astype(np.float32),
                      np.take_along_axis(indices, chosen, 1))


def _count_local(counts, queries, query_sqnorm, query_valid, centres, centre_sqnorm, radii, valid):
    """Adds, per query, how many centres' balls hold it; returns (counts [q], per centre whether one of this
    device's queries is inside [1, t]).

    queries [q, D] with query_sqnorm and query_valid [q] (False: padding);
    centres [t, D] with centre_sqnorm and radii [t], rows >= valid padding.
    """
    squared = query_sqnorm[:, None] + centre_sqnorm[None, :] - 2.0 * jnp.dot(
        queries, centres.T, precision=jax.lax.Precision.HIGHEST)  # [q, t]
    inside = (squared <= (radii**2)[None, :]) & (jnp.arange(centres.shape[0]) < valid)[None, :] & query_valid[:, None]
    return counts + jnp.sum(inside, axis=1, dtype=jnp.int32), jnp.any(inside, axis=0)[None]


@functools.cache
def _count_tile(mesh: Mesh):
    """`_count_local` on every device's rows at once, jitted, with no collective (see `_merge_tile`): the
    per-device "any query inside" rows [devices, t] are combined on the host."""
    rows, whole = P(sharding.DATA_AXIS), P()
    return jax.jit(jax.shard_map(_count_local, mesh=mesh, in_specs=(rows, rows, rows, rows, whole, whole, whole, whole),
                                 out_specs=(rows, rows)))


def count_within(
    queries: np.ndarray,
    centres: np.ndarray,
    radii: np.ndarray,
    *,
    mesh: Mesh | None = None,
    query_block: int = 1024,
    centre_tile: int = 16384,
) -> tuple[np.ndarray, np.ndarray]:
    """(per query, the number of balls B(centre, radius) holding it [Q]; per centre, whether one query is inside [C]).

    Euclidean balls, boundary included; queries [Q, D], centres [C, D],
    radii [C]. The k-NN manifolds of precision / recall and density /
    coverage are unions of such balls. Tiled like `nearest_neighbours`.
    """
    queries, query_sqnorm = _prepare(queries, "euclidean", "queries")
    centres, centre_sqnorm = _prepare(centres, "euclidean", "centres")
    radii = np.asarray(radii, np.float32)
    if radii.shape != centre_sqnorm.shape:
        raise ValueError(f"radii {radii.shape} do not match the {len(centres)} centres")
    mesh = mesh or sharding.make_mesh()
    valid_rows = np.ones(len(queries), bool)  # padding rows become False
    query_block, blocks = _query_blocks((queries, query_sqnorm, valid_rows), mesh, query_block)
    counts = [sharding.global_from_host(np.zeros(query_block, np.int32), sharding.batch_sharding(mesh))
              for _ in blocks]
    covered = np.zeros(len(centres), bool)
    count = _count_tile(mesh)
    for start, valid, tile in _tiles((centres, centre_sqnorm, radii), mesh, min(centre_tile, len(centres))):
        hits = []
        for i, block in enumerate(blocks):
            counts[i], hit = count(counts[i], *block, *tile, np.int32(valid))
            hits.append(hit)
        covered[start : start + valid] = np.any(np.stack([_to_host(h) for h in hits]), axis=(0, 1))[:valid]
    inside = np.concatenate([_to_host(c) for c in counts])[: len(queries)]
    return inside.astype(np.int64), covered
