"""Input pipeline: a fold split of prepared shards -> per-process batches -> global jax.Arrays.

Two layers (docs/ARCHITECTURE.md, "Devices and sharding"):

* numpy level (`train_dataset`, `eval_dataset`): tf.data on the CPU of each
  process, yielding that process's share of every global batch as numpy;
* jax level (`to_global`, `train_batches`, `EvalBatches`): each per-process
  batch becomes one global `jax.Array` sharded over the mesh's `data` axis via
  `jax.make_array_from_process_local_data`.

Which process reads what: the split's image ids, sorted by (label combination,
id), are dealt round-robin to the processes (`assign_processes`). Each process
thus holds a disjoint share, the shares cover the split, differ in size by at
most one image, and hold the same share (±1) of every label combination, so
every image of a fold is drawn equally often in training whatever the number
of processes. The assignment comes from the index alone, so every process
knows every share's size at start-up and computes the same number of eval
batches with no communication; the pipeline asserts at run time that the
shards agree with the index.

Per process: read the prepared shards -> keep an example if its image id is
assigned to this process (hash-table lookup on the id, before the PNG is
decoded) -> cache the kept, still encoded records in memory -> [train: seeded
shuffle over the whole share, repeat] -> decode PNG (parallel, per example)
-> batch -> [train, opt-in: seeded horizontal flips] -> scale to [-1, 1]
-> prefetch. The first pass reads the whole prepared dataset (as a
single-process run must); the cache makes every later epoch and eval pass cost
only the share (memory: the share's PNG bytes). Order is deterministic
everywhere, so a seed fixes the stream.

Batch dict (per process, B = per-process batch size):
  "image"    float32 [B, R, R, C] in [-1, 1]
  "labels"   float32 [B, K] multi-hot
  "image_id" bytes    [B]   (numpy level only: host-side bookkeeping)
  "mask"     bool     [B]   (eval only: False for padding)
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterator, Mapping

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from medgan.data import builders
from medgan.sharding import batch_sharding

ARRAY_KEYS = ("image", "labels", "mask")  # the keys that become jax.Arrays


def assign_processes(dataset_dir: str | os.PathLike, ids: Collection[str], process_count: int) -> dict[str, int]:
    """image id -> index of the process that reads it (see the module docstring).

    Raises:
      ValueError: some ids are not in the prepared dataset (names a few), or
        duplicates.
    """
    labels = {r.image_id: r.labels for r in builders.read_index(dataset_dir)}
    missing = [i for i in ids if i not in labels]
    if missing:
        raise ValueError(
            f"{len(missing)} of {len(ids)} fold image ids are not in the prepared dataset {dataset_dir}, "
            f"e.g. {missing[:5]}; was the fold drawn from another dataset?"
        )
    if len(set(ids)) != len(ids):
        raise ValueError(f"fold image ids contain {len(ids) - len(set(ids))} duplicates")
    ordered = sorted(ids, key=lambda i: (labels[i], i))
    return {image_id: n % process_count for n, image_id in enumerate(ordered)}


def train_dataset(
    dataset_dir: str | os.PathLike,
    ids: Collection[str],
    *,
    batch_size: int,
    seed: int,
    flip: bool = False,
    process_index: int = 0,
    process_count: int = 1,
    cache: bool = True,
    start_step: int = 0,
) -> tf.data.Dataset:
    """Infinite per-process training batches of the images `ids` (a fold split).

    Args:
      dataset_dir: prepared dataset (`PreparedDataset.dataset_dir`).
      ids: the split's image ids (`Fold.ids[split]`).
      batch_size: per-process batch B (global batch / process count).
      seed: shuffle order and flips; the same seed gives the same stream.
      flip: random horizontal flips, p = 0.5 per example. Opt-in: some
        findings are lateralised (e.g. a right-sided effusion), and a flip
        changes what the label means for them.
      process_index, process_count: which share of `ids` this process reads.
      cache: keep the encoded share in memory after the first pass.
      start_step: resume: the stream begins with batch `start_step` of the
        stream that `start_step=0` gives (same examples, same flips), so a run
        restored from a checkpoint at step s continues with `start_step=s`.
        The skipped examples are drawn from the shuffled, still encoded
        records (no PNG decoding), so skipping costs little.

    Returns:
      Batches {"image": [B,R,R,C] f32, "labels": [B,K] f32, "image_id": [B]};
      every epoch is a fresh seeded permutation; incomplete batches at an
      epoch end do not exist (the stream repeats, batching is across epochs).
    """
    if len(ids) < process_count:
        raise ValueError(f"{len(ids)} training images cannot feed {process_count} processes")
    ds, count, info = _read_share(dataset_dir, ids, process_index, process_count, cache)
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True).repeat()
    if start_step:
        # batches never straddle differently: drop_remainder on an infinite stream
        ds = ds.skip(start_step * batch_size)
    ds = ds.map(_decoder(info), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _batch(
        ds, batch_size, flip_seed=(seed, process_index, process_count) if flip else None, start_index=start_step
    )


def eval_dataset(
    dataset_dir: str | os.PathLike,
    ids: Collection[str],
    *,
    batch_size: int,
    process_index: int = 0,
    process_count: int = 1,
    cache: bool = True,
) -> tf.data.Dataset:
    """One pass over the images `ids`, padded to full batches, as per-process batches.

    Every process gets the same number of batches, `cardinality()` of the
    returned dataset: ceil(largest share / batch_size), the largest share being
    ceil(len(ids) / process_count). Padding examples have mask False, a black
    image (-1), zero labels and image_id b"". Iterate the same dataset object for every
    evaluation so that the cache serves all passes after the first.

    Returns:
      Batches {"image", "labels", "image_id", "mask": [B] bool}.
    """
    if not ids:
        raise ValueError(f"the evaluation split is empty (dataset {dataset_dir})")
    num_batches = math.ceil(math.ceil(len(ids) / process_count) / batch_size)  # the largest share's
    ds, count, info = _read_share(dataset_dir, ids, process_index, process_count, cache)
    ds = ds.map(_decoder(info), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(lambda ex: {**ex, "mask": tf.constant(True)})
    padding = tf.data.Dataset.from_tensors(
        {key: tf.zeros(spec.shape, spec.dtype) for key, spec in ds.element_spec.items()}
    ).repeat(num_batches * batch_size - count)
    return _batch(ds.concatenate(padding), batch_size)


def numpy_batches(ds: tf.data.Dataset) -> Iterator[dict[str, np.ndarray]]:
    """The batches of `ds` as dicts of numpy arrays (strings as bytes)."""
    return iter(tfds.as_numpy(ds))


# ----------------------------------------------------------------- jax level


def local_batch_size(global_batch_size: int, mesh: jax.sharding.Mesh) -> int:
    """This process's rows of a global batch sharded over every device of `mesh`.

    Raises:
      ValueError: the global batch does not divide evenly over the devices.
    """
    if global_batch_size % mesh.size:
        raise ValueError(
            f"global batch size {global_batch_size} is not divisible by the {mesh.size} devices of the mesh"
        )
    return global_batch_size // mesh.size * len(mesh.local_devices)


def to_global(batch: Mapping[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    """Per-process numpy batch -> global arrays, leading axis sharded over `data`.

    Only `ARRAY_KEYS` are converted; "image_id" stays on the host.
    """
    sharding = batch_sharding(mesh)
    return {
        key: jax.make_array_from_process_local_data(sharding, batch[key]) for key in ARRAY_KEYS if key in batch
    }


def train_batches(
    dataset_dir: str | os.PathLike,
    ids: Collection[str],
    *,
    global_batch_size: int,
    mesh: jax.sharding.Mesh,
    seed: int,
    flip: bool = False,
    cache: bool = True,
    start_step: int = 0,
) -> Iterator[dict[str, jax.Array]]:
    """Infinite global training batches {"image": [G,R,R,C], "labels": [G,K]} over the mesh.

    `start_step` resumes the stream at global batch `start_step` (see `train_dataset`).
    """
    ds = train_dataset(
        dataset_dir,
        ids,
        batch_size=local_batch_size(global_batch_size, mesh),
        seed=seed,
        flip=flip,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        cache=cache,
        start_step=start_step,
    )
    return (to_global(batch, mesh) for batch in numpy_batches(ds))


class EvalBatches:
    """Re-iterable evaluation pass: each `iter()` is one pass of `len(self)` global batches.

    Batches {"image": [G,R,R,C], "labels": [G,K], "mask": [G]}; reduce metrics
    with the mask. Same number of batches on every process.
    """

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        ids: Collection[str],
        *,
        global_batch_size: int,
        mesh: jax.sharding.Mesh,
        cache: bool = True,
    ):
        self._mesh = mesh
        self.dataset = eval_dataset(
            dataset_dir,
            ids,
            batch_size=local_batch_size(global_batch_size, mesh),
            process_index=jax.process_index(),
            process_count=jax.process_count(),
            cache=cache,
        )

    def __len__(self) -> int:
        return int(self.dataset.cardinality())

    def __iter__(self) -> Iterator[dict[str, jax.Array]]:
        return (to_global(batch, self._mesh) for batch in numpy_batches(self.dataset))


# ------------------------------------------------------------------ internals


def _read_share(
    dataset_dir: str | os.PathLike,
    ids: Collection[str],
    process_index: int,
    process_count: int,
    cache: bool,
) -> tuple[tf.data.Dataset, int, tfds.core.DatasetInfo]:
    """This process's records, image still PNG-encoded, their number, and the dataset info."""
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
    owner = assign_processes(dataset_dir, ids, process_count)
    mine = sorted(i for i, p in owner.items() if p == process_index)
    builder = tfds.builder_from_directory(os.fspath(dataset_dir))
    ds = builder.as_dataset(
        split=builders.SPLIT,
        shuffle_files=False,
        decoders={"image": tfds.decode.SkipDecoding()},  # decoded after the filter
        read_config=tfds.ReadConfig(try_autocache=False, skip_prefetch=True),
    )
    if mine:
        keys = tf.constant(mine, tf.string)
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.ones_like(keys, tf.int64)), default_value=0
        )
        ds = ds.filter(lambda ex: table.lookup(ex["image_id"]) == 1)
    else:  # an eval share can be empty (fewer images than processes): padding only
        ds = ds.take(0)
    # Fails the pipeline (instead of silently changing the batch count) if the
    # shards and index.json disagree.
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(mine)))
    if cache:
        ds = ds.cache()
    return ds, len(mine), builder.info


def _decoder(info: tfds.core.DatasetInfo):
    """Encoded record -> {"image": uint8 [R,R,C], "labels": uint8 [K], "image_id"}."""
    shape = info.features["image"].shape

    def decode(ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        # channels=0 keeps the stored channels (also 2 = gray+alpha, which decode_png cannot force).
        image = tf.ensure_shape(tf.io.decode_png(ex["image"], channels=0), shape)
        return {"image": image, "labels": ex["labels"], "image_id": ex["image_id"]}

    return decode


def _batch(
    ds: tf.data.Dataset,
    batch_size: int,
    flip_seed: tuple[int, int, int] | None = None,
    start_index: int = 0,
) -> tf.data.Dataset:
    """Batches, [flips,] converts image uint8 -> float32 in [-1, 1] and labels -> float32.

    Flips and conversion work on whole batches: a few large vectorised ops
    instead of many small per-example ones (measured at 256 px: a per-example
    flip adds 0.19 ms of CPU per image, 25% of the whole pipeline; a batched
    one 0.06 ms). With `flip_seed` = (seed, process_index,
    process_count), example j of batch b (counted from `start_index`, so a
    resumed stream flips as the uninterrupted one) is mirrored left-right with p = 0.5,
    decided by a stateless uniform draw keyed on (seed, b × process_count +
    process_index): reproducible for a seed, independent across examples,
    batches and processes.
    """

    def finish(batch_index: tf.Tensor, batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        image = batch["image"]
        if flip_seed is not None:
            seed, process_index, process_count = flip_seed
            key = tf.stack([tf.constant(seed, tf.int64), batch_index * process_count + process_index])
            flip = tf.random.stateless_uniform([batch_size], seed=key) < 0.5
            image = tf.where(flip[:, None, None, None], tf.reverse(image, axis=[2]), image)
        return {
            **batch,
            "image": tf.cast(image, tf.float32) / 127.5 - 1.0,
            "labels": tf.cast(batch["labels"], tf.float32),
        }

    ds = ds.batch(batch_size, drop_remainder=True, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.enumerate(start=start_index).map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True  # same seed, same stream (shuffle, flips, batch order)
    options.autotune.enabled = True
    options.experimental_optimization.map_parallelization = True
    return options
