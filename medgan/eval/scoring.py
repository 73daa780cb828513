"""Scoring every image of a split once, aligned by image id across processes, runs and classifiers.

DeLong's paired test compares two classifiers image by image, so both must
score the same images in the same order: rows come back in sorted-id order
whatever the batch size, device count or process count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from medgan.data import pipeline


class SplitScorer:
    """Scores every image of a split once per call, in sorted-id order, on every process.

    The tf.data pass is built once (its encoded records are cached after the
    first pass); each call streams it through the jitted eval step and gathers
    the per-process rows. Rows carry their index in the sorted id list, so the
    result is aligned across processes, runs and classifiers.
    """

    def __init__(self, dataset_dir: str, ids: Sequence[str], mesh, global_batch_size: int):
        self.ids = tuple(sorted(ids))
        self._position = {image_id: i for i, image_id in enumerate(self.ids)}
        self._mesh = mesh
        self._dataset = pipeline.eval_dataset(
            dataset_dir,
            self.ids,
            batch_size=pipeline.local_batch_size(global_batch_size, mesh),
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )

    def __call__(self, evaluate: Callable, state) -> tuple[np.ndarray, np.ndarray]:
        """(labels [N, K], scores [N, K]) of the split's N images in sorted-id order."""
        rows, labels, scores = [], [], []
        for batch in pipeline.numpy_batches(self._dataset):
            row = np.array([self._position.get(i.decode(), -1) for i in batch["image_id"]], np.int64)
            out = evaluate(state, pipeline.to_global(batch, self._mesh))
            rows.append(multihost_utils.process_allgather(row, tiled=True))
            labels.append(multihost_utils.process_allgather(out["labels"], tiled=True))
            scores.append(multihost_utils.process_allgather(out["scores"], tiled=True))
        rows, labels, scores = np.concatenate(rows), np.concatenate(labels), np.concatenate(scores)
        keep = rows >= 0  # padding rows
        order = np.argsort(rows[keep])
        if not np.array_equal(rows[keep][order], np.arange(len(self.ids))):
            raise RuntimeError("the evaluation pass did not score every image of the split exactly once")
        return labels[keep][order], scores[keep][order]
