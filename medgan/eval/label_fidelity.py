"""Do a generator's labels reach its pixels? GAN-test: a fixed real-trained judge scores the synthetic images.

GAN-test (Shmelkov, Schmid and Alahari, "How good is my GAN?", ECCV 2018,
Sec. 3): a classifier trained on real images scores generated ones against
the labels they were generated with. An AUC near 0.5 for a label says the
generator draws nothing of that finding the judge can read, whatever its FD;
near the judge's AUC on real test images says the finding is drawn as in the
real images. A synthetic-trained judge at chance with a high GAN-test means
the findings are drawn but do not teach (too few, too alike); at chance with
a GAN-test at chance means they are not drawn at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from medgan.eval import auc


def judge_scores(logits_fn: Callable[[jax.Array], jax.Array],
                 batches: Iterable[tuple[jax.Array, np.ndarray]]) -> np.ndarray:
    """sigmoid(logits) [N, K] of every masked-in row of (images [G, R, R, C] global, mask [G] host) batches, in order.

    Images are in the networks' range [-1, 1] (a generator's output, clipped).
    """
    rows = []
    for images, mask in batches:
        scores = jax.nn.sigmoid(logits_fn(images))
        rows.append(np.asarray(multihost_utils.process_allgather(scores, tiled=True))[np.asarray(mask)])
    return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


def score_batches(logits_fn: Callable[[jax.Array], jax.Array],
                  batches: Iterable[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(labels [N, K], sigmoid(logits) [N, K]) of a prepared dataset's evaluation pass (`pipeline.EvalBatches`).

    Rows come in the pass's order, masked-in only, gathered from every process.
    """
    labels, scores = [], []
    for batch in batches:
        gathered = multihost_utils.process_allgather(
            {"labels": batch["labels"], "mask": batch["mask"], "scores": jax.nn.sigmoid(logits_fn(batch["image"]))},
            tiled=True)
        keep = np.asarray(gathered["mask"]).astype(bool)
        labels.append(np.asarray(gathered["labels"])[keep])
        scores.append(np.asarray(gathered["scores"])[keep])
    return np.concatenate(labels), np.concatenate(scores)


def gan_test(labels: np.ndarray, scores: np.ndarray, class_names: Sequence[str], level: float = 0.95) -> dict:
    """Per-label AUC of the judge's scores [N, K] against the generation labels [N, K], DeLong CIs, and their mean.

    Returns `auc.per_class_auc`'s report ("classes", "mean_auc" over the
    labels both present and absent among the synthetic images, its CI).
    """
    return auc.per_class_auc(np.asarray(labels), np.asarray(scores), list(class_names), level=level)


def summary(report: dict) -> dict:
    """{"mean_auc", "mean_auc_ci", "per_class_auc"} of an `auc.per_class_auc` report: what results.json carries."""
    ci = None if report["mean_auc_ci_low"] is None else [report["mean_auc_ci_low"], report["mean_auc_ci_high"]]
    return {"mean_auc": report["mean_auc"], "mean_auc_ci": ci,
            "per_class_auc": {name: entry["auc"] for name, entry in report["classes"].items()}}
