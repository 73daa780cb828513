"""A benchmark point's answer: both classifiers' scores on the real test split, paired.

    fold -> classifier on real -> GAN -> synthesize -> classifier on synthetic -> evaluate

The two classifiers score the same real test images, so the comparison is
paired: per-class and mean AUC of each, their ratio (relative AUC, the study's
headline number) and DeLong's test of the difference. `results` assembles
the point's results.json from the stages' outcomes.
"""

from __future__ import annotations

import os

import numpy as np

from medgan import fileio, provenance
from medgan.data import cohorts, folds, pipeline
from medgan.eval import auc, label_fidelity
from medgan.eval.features import load_logits
from medgan.workdir import MANIFEST_FILE, REPORT_FILE, SCORES_FILE

STAGES = ("prepare", "real_classifier", "gan", "synthesize", "synthetic_classifier", "audit", "evaluate")
# The directory of each stage that is a job of its own, under the point's work directory.
STAGE_DIRS = {"real_classifier": "real_classifier", "gan": "gan", "synthesize": "synthetic",
              "synthetic_classifier": "synthetic_classifier", "audit": "audit"}


def evaluate(workdir: str, level: float) -> dict:
    """Pairs the two classifiers' scores on the real test images: DeLong per class and for the mean AUC."""
    scores = {}
    for name in ("real_classifier", "synthetic_classifier"):
        path = os.path.join(workdir, STAGE_DIRS[name], SCORES_FILE)
        with np.load(path) as npz:
            scores[name] = {key: npz[key] for key in ("image_ids", "labels", "scores", "class_names")}
    real, synthetic = scores["real_classifier"], scores["synthetic_classifier"]
    for key in ("image_ids", "labels", "class_names"):
        if not np.array_equal(real[key], synthetic[key]):
            raise ValueError(f"{workdir}: the two classifiers' {SCORES_FILE} differ in {key}; "
                             "both must score the same real test split (one fold manifest)")
    class_names = [str(name) for name in real["class_names"]]
    labels = real["labels"]
    return {
        "class_names": class_names,
        "labels": labels,
        "scores": {"real": real["scores"], "synthetic": synthetic["scores"]},
        "real": auc.per_class_auc(labels, real["scores"], class_names, level=level),
        "synthetic": auc.per_class_auc(labels, synthetic["scores"], class_names, level=level),
        "paired": auc.paired_report(labels, real["scores"], synthetic["scores"], class_names, level=level),
    }


def label_fidelity_of(workdir: str, synthetic: cohorts.TrainingData, mesh, outcomes: dict, *, level: float,
                      global_batch_size: int) -> dict:
    """The point's `label_fidelity`: do the GAN's labels reach its pixels?

    gan_test: the real-trained judge's per-label AUC on every synthetic image
    (train and val) against the labels it was generated with, and their mean
    (eval/label_fidelity); synthetic_val_auc: the synthetic-trained judge's
    best validation AUC on held-out synthetic images; eval_history: the GAN's
    FD and GAN-test at each evaluation during training.
    """
    logits_fn = load_logits(os.path.join(workdir, STAGE_DIRS["real_classifier"]), mesh)
    ids = list(synthetic.train_ids) + list(synthetic.val_ids)
    labels, scores = label_fidelity.score_batches(
        logits_fn, pipeline.EvalBatches(synthetic.dataset_dir, ids, mesh=mesh, global_batch_size=global_batch_size))
    report = label_fidelity.gan_test(labels, scores, outcomes["synthetic_classifier"]["class_names"], level=level)
    return {"gan_test": {**label_fidelity.summary(report), "images": len(labels), "test": report},
            "synthetic_val_auc": outcomes["synthetic_classifier"]["best_val_mean_auc"],
            "eval_history": outcomes["gan"].get("eval_history", [])}


def _summary(report: dict) -> dict:
    return {**label_fidelity.summary(report), "test": report}


def relative_auc(evaluation: dict) -> dict:
    """Synthetic / real mean AUC, per class, and a CI for the mean ratio from DeLong's paired test.

    The test is of D = real - synthetic (its CI [lo, hi]); with the real mean
    AUC r fixed, synthetic / real = 1 - D / r, so the ratio's CI is
    [1 - hi / r, 1 - lo / r]. This treats r as known, which understates the
    width slightly; the DeLong p-value is the exact statement of the test.
    """
    real, synthetic, mean = evaluation["real"], evaluation["synthetic"], evaluation["paired"]["mean"]
    per_class = {}
    for name, entry in real["classes"].items():
        a, b = entry["auc"], synthetic["classes"][name]["auc"]
        per_class[name] = None if a is None or b is None or a == 0 else b / a
    r = real["mean_auc"]
    low = high = None
    if mean is not None and mean["ci_low"] is not None:
        low, high = 1 - mean["ci_high"] / r, 1 - mean["ci_low"] / r
    return {"mean": synthetic["mean_auc"] / r, "ci_low": low, "ci_high": high, "per_class": per_class}


def audit_summary(audit: dict) -> dict:
    """The audit's numbers and pictures for the point's results.json and report (without its pixel checks)."""
    kept = {key: audit[key] for key in ("memorisation", "fidelity", "embedding", "figures", "views", "train_images",
                                        "occlusion") if key in audit}
    return {**kept, "report": f"{STAGE_DIRS['audit']}/{audit['report']}"}


def results(config, workdir, prepared, fold: folds.Fold, outcomes, evaluation, figures, seconds,
            label_fidelity_entry: dict) -> dict:
    """The point's results.json: the answer (real, synthetic, relative_auc, delong) and how it was reached."""
    gan, card = outcomes["gan"], outcomes["synthesize"]
    paired = evaluation["paired"]
    return {
        "point": {
            "study": config.benchmark.study,
            "source": config.data.source,
            "dataset": prepared.name,
            "resolution": config.data.resolution,
            "model": config.gan.model,
            "num_combinations": config.fold.num_combinations,
            "per_combination": config.fold.per_combination,
        },
        "real": _summary(evaluation["real"]),
        "synthetic": _summary(evaluation["synthetic"]),
        "relative_auc": relative_auc(evaluation),
        "label_fidelity": label_fidelity_entry,
        "delong": {"a": "real", "b": "synthetic", "level": paired["level"], "mean": paired["mean"],
                   "classes": paired["classes"]},
        "gan": {key: gan[key] for key in ("model", "steps", "stopped", "selected_step", "best_fd", "ada_p",
                                          "generator_sha256", "train_images_per_second", "samples")},
        "synthetic_images": card["counts"]["total"],
        "audit": audit_summary(outcomes["audit"]),
        "fold": {
            "manifest": MANIFEST_FILE,
            "sizes": {split: len(ids) for split, ids in fold.ids.items()},
            "class_names": list(fold.class_names),
            "combinations": [list(fold.combination_names(c)) for c in fold.combinations],
            "counts": {split: list(counts) for split, counts in fold.counts.items()},
            "content": fileio.read_json(os.path.join(workdir, MANIFEST_FILE)),
        },
        "stages": {name: f"{STAGE_DIRS[name]}/" for name in outcomes},
        "configs": {"benchmark": config.to_dict()},
        "software": provenance.software(),
        "wall_seconds": {**seconds, "total": sum(seconds.values())},
        "report": REPORT_FILE,
        "figures": figures,
    }
