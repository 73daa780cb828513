"""The feature space of the study's metrics: the pooled features of the classifier trained on real images.

The Fréchet distance that selects a GAN checkpoint, and the audits of a
synthetic cohort, measure images in the features of the judge the benchmark
trained on the real fold (a finished `train_classifier` work directory: its
results.json describes the network, its params/ holds the weights).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from medgan import fileio
from medgan.data import pipeline
from medgan.models import classifiers
from medgan.train import checkpoints
from medgan.workdir import RESULT_FILE


def _load_classifier(classifier_dir: str, mesh: Mesh):
    """(model, variables replicated on `mesh`) of the network a finished train_classifier run selected."""
    result_path = os.path.join(classifier_dir, RESULT_FILE)
    if not os.path.exists(result_path):
        raise FileNotFoundError(f"{result_path} does not exist: train the classifier first")
    result = fileio.read_json(result_path)
    model = classifiers.classifier_from(result["model_config"])
    shape = (1, *result["input_shape"])
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))
    return model, checkpoints.load_params(os.path.join(classifier_dir, result["params"]), abstract, mesh)


def load_feature_extractor(classifier_dir: str, mesh: Mesh) -> tuple[Callable, int]:
    """(features(images [B, R, R, C]) -> [B, D] jitted, D) of the network a finished run selected.

    The weights are replicated on `mesh`.
    """
    model, variables = _load_classifier(classifier_dir, mesh)
    features = jax.jit(lambda variables, images: model.apply(variables, images, method=model.features))
    return functools.partial(features, variables), model.feature_dim


def load_logits(classifier_dir: str, mesh: Mesh) -> Callable:
    """logits(images [B, R, R, C]) -> [B, K], jitted, inference mode, of the network a finished run selected."""
    model, variables = _load_classifier(classifier_dir, mesh)
    logits = jax.jit(lambda variables, images: model.apply(variables, images, train=False))
    return functools.partial(logits, variables)


def view_names(shifts: Sequence[int] = ()) -> tuple[str, ...]:
    """The views a memorisation search takes: the image and its mirror, each also through crop windows moved by
    every s in `shifts` pixels along y and along x. Names like "as is", "mirrored", "as is, shift y+2"."""
    offsets = [(0, 0)] + [o for s in shifts for o in ((s, 0), (-s, 0), (0, s), (0, -s))]
    return tuple(
        base + ("" if (dy, dx) == (0, 0) else f", shift {'y' if dy else 'x'}{dy or dx:+d}")
        for base in ("as is", "mirrored") for dy, dx in offsets
    )


def apply_view(images: jax.Array, name: str, margin: int = 0) -> jax.Array:
    """images [B, H, W, C] seen as view `name` of `view_names`: [B, H - 2 margin, W - 2 margin, C].

    Every view is a window of the image (mirrored or not) `margin` pixels in
    from each border, the window of "shift x+s" moved s pixels right (|s| <=
    margin). A copy of a training image whose content moved s pixels right
    shows, through that window, exactly the training image's centred window
    ("as is"): a shifted copy is found without guessing what filled the border
    it uncovered. A GAN trained with flip and translation augmentations can
    reproduce a patient moved.
    """
    base, _, shift = name.partition(", shift ")
    if base not in ("as is", "mirrored"):
        raise ValueError(f"unknown view {name!r}")
    if base == "mirrored":
        images = images[:, :, ::-1]
    dy = dx = 0
    if shift:
        amount = int(shift[1:])
        dy, dx = (amount, 0) if shift[0] == "y" else (0, amount)
    if max(abs(dy), abs(dx)) > margin:
        raise ValueError(f"view {name!r} moves the window further than the margin of {margin} px")
    height, width = images.shape[1] - 2 * margin, images.shape[2] - 2 * margin
    return images[:, margin + dy : margin + dy + height, margin + dx : margin + dx + width]


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """One image set in the judge's feature space, as every audit shares it.

    image_ids [N] (str), labels [N, K] float32, views [V, N, D] float32: the
    features of each image seen as each view of `names` (`view_names`, all
    through windows `margin` pixels in from the border; the first is the
    image as it is). Fidelity and the embedding take margin 0, "as is".
    """

    image_ids: np.ndarray
    labels: np.ndarray
    views: np.ndarray
    names: np.ndarray
    margin: int = 0

    @property
    def features(self) -> np.ndarray:
        """[N, D] the features of the images as they are."""
        return self.views[0]

    def subset(self, rows: np.ndarray) -> FeatureSet:
        return FeatureSet(self.image_ids[rows], self.labels[rows], self.views[:, rows], self.names, self.margin)


def _encode_ids(ids: Sequence[bytes], length: int) -> np.ndarray:
    """Image ids (bytes, b"" for padding) -> uint8 [B, length], so they travel with the batch between processes."""
    out = np.zeros((len(ids), length), np.uint8)
    for row, image_id in enumerate(ids):
        if len(image_id) > length:
            raise ValueError(f"image id {image_id!r} is longer than {length} bytes")
        out[row, : len(image_id)] = np.frombuffer(image_id, np.uint8)
    return out


@functools.lru_cache(maxsize=16)
def features_of_views(features_fn: Callable, names: tuple[str, ...], margin: int) -> Callable:
    """jitted images [B, H, W, C] -> [V, B, D]: the views as one batch through one forward pass.

    One per (extractor, views, margin), so image sets that share them share
    the compiled program.
    """

    @jax.jit
    def every_view(images):
        views = jnp.concatenate([apply_view(images, n, margin) for n in names])
        return features_fn(views).reshape(len(names), images.shape[0], -1)

    return every_view


def extract_features(
    dataset_dir: str,
    ids: Sequence[str],
    features_fn: Callable[[jax.Array], jax.Array],
    mesh: Mesh,
    *,
    global_batch_size: int,
    shifts: Sequence[int] = (),
    names: Sequence[str] | None = None,
) -> FeatureSet:
    """The judge's features of the images `ids` of a prepared dataset, in the views `names` (default: every
    view of `view_names(shifts)`), through windows max(shifts) pixels in from the border.

    Batches are sharded over the mesh (every process reads its share, as in
    evaluation); the features of every process are gathered, so every process
    returns the whole set, rows sorted by image id.
    """
    dataset = pipeline.eval_dataset(
        dataset_dir, ids, batch_size=pipeline.local_batch_size(global_batch_size, mesh),
        process_index=jax.process_index(), process_count=jax.process_count(), cache=False)
    length = max(len(i.encode()) for i in ids)
    names = tuple(names or view_names(shifts))
    margin = max(shifts, default=0)
    every_view = features_of_views(features_fn, names, margin)

    parts = []
    for batch in pipeline.numpy_batches(dataset):
        views = multihost_utils.process_allgather(every_view(pipeline.to_global(batch, mesh)["image"]), tiled=True)
        local = (_encode_ids(batch["image_id"], length), batch["labels"], batch["mask"])
        parts.append((np.asarray(views), *(multihost_utils.process_allgather(x, tiled=False).reshape(-1, *x.shape[1:])
                                           for x in local)))
    encoded, labels, mask = (np.concatenate([p[i] for p in parts]) for i in (1, 2, 3))
    views = np.concatenate([p[0] for p in parts], axis=1)[:, mask]
    image_ids = np.array([bytes(row[row > 0]).decode() for row in encoded[mask]])
    order = np.argsort(image_ids, kind="stable")
    return FeatureSet(image_ids[order], labels[mask][order].astype(np.float32),
                      views[:, order].astype(np.float32), np.array(names), margin)


def cached_features(path: str, fingerprint: str, compute: Callable[[], FeatureSet]) -> FeatureSet:
    """The FeatureSet stored at `path` (.npz) if it was computed for `fingerprint`, else `compute()` stored there.

    The fingerprint names what the features depend on (the judge's weights,
    the image ids and their dataset), so a new judge or a new cohort is never
    served stale features. Only process 0 writes, atomically.
    """
    if os.path.exists(path):
        with np.load(path) as stored:
            if str(stored["fingerprint"]) == fingerprint:
                arrays = (stored[k] for k in ("image_ids", "labels", "views", "names"))
                return FeatureSet(*arrays, int(stored["margin"]))
    result = compute()
    if jax.process_index() == 0:
        with fileio.atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, fingerprint=np.array(fingerprint), **dataclasses.asdict(result))
    return result
