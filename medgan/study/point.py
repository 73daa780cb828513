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
from medgan.eval import auc, label_fidelity, pooling
from medgan.eval.features import load_logits
from medgan.workdir import MANIFEST_FILE, REPORT_FILE, SCORES_FILE

STAGES = ("prepare", "real_classifier", "gan", "synthesize", "synthetic_classifier", "audit", "judges", "evaluate")
# The directory of each stage that is a job of its own, under the point's work directory.
STAGE_DIRS = {"real_classifier": "real_classifier", "gan": "gan", "synthesize": "synthetic",
              "synthetic_classifier": "synthetic_classifier", "audit": "audit"}


JUDGES_DIR = "judges"  # the judges of the seeds after the first: judges/<stage>_seed_<seed>/


def judge_seeds(config) -> list[int]:
    """The seeds of a point's judges: config.seed (the stages' own judges), then config.seed + 1, ..."""
    return [config.seed + i for i in range(config.benchmark.judge_seeds)]


def judge_dir(workdir: str, stage: str, seed: int, first_seed: int) -> str:
    """Where the judge of `stage` ("real_classifier" or "synthetic_classifier") with `seed` works."""
    if seed == first_seed:
        return os.path.join(workdir, STAGE_DIRS[stage])
    return os.path.join(workdir, JUDGES_DIR, f"{stage}_seed_{seed}")


def evaluate(workdir: str, level: float, seeds: list[int]) -> list[dict]:
    """`evaluate_pair` of the real and the synthetic judge of each seed, the first seed's first."""
    return [evaluate_pair(judge_dir(workdir, "real_classifier", seed, seeds[0]),
                          judge_dir(workdir, "synthetic_classifier", seed, seeds[0]), level) for seed in seeds]


def evaluate_pair(real_dir: str, synthetic_dir: str, level: float) -> dict:
    """Pairs two train_classifier runs' scores on the same real test images: DeLong per class and for the mean.

    real_dir, synthetic_dir: work directories of the real- and the
    synthetic-trained judge, each holding its test_scores.npz.
    """
    scores = {}
    for name, directory in (("real", real_dir), ("synthetic", synthetic_dir)):
        with np.load(os.path.join(directory, SCORES_FILE)) as npz:
            scores[name] = {key: npz[key] for key in ("image_ids", "labels", "scores", "class_names")}
    real, synthetic = scores["real"], scores["synthetic"]
    for key in ("image_ids", "labels", "class_names"):
        if not np.array_equal(real[key], synthetic[key]):
            raise ValueError(f"{real_dir} and {synthetic_dir}: the two classifiers' {SCORES_FILE} differ in {key}; "
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
    best validation AUC on held-out synthetic images; fd: the audit's Fréchet
    distance overall and per label combination (a GAN that draws one
    combination's finding on every image scores well overall and badly on
    the others); eval_history: the GAN's FD and GAN-test at each evaluation
    during training.
    """
    gan_test = gan_test_of(load_logits(os.path.join(workdir, STAGE_DIRS["real_classifier"]), mesh), synthetic, mesh,
                           outcomes["synthetic_classifier"]["class_names"], level=level,
                           global_batch_size=global_batch_size)
    return {"gan_test": gan_test,
            "synthetic_val_auc": outcomes["synthetic_classifier"]["best_val_mean_auc"],
            "fd": fd_per_combination(outcomes["audit"]["fidelity"]),
            "eval_history": outcomes["gan"].get("eval_history", [])}


def gan_test_of(logits_fn, synthetic: cohorts.TrainingData, mesh, class_names, *, level: float,
                global_batch_size: int) -> dict:
    """GAN-test of a judge (`load_logits` of its directory) on every image (train and val) of a synthetic
    cohort: the summary ("mean_auc", "mean_auc_ci", "per_class_auc"), "images" and the full per-class
    report ("test")."""
    ids = list(synthetic.train_ids) + list(synthetic.val_ids)
    labels, scores = label_fidelity.score_batches(
        logits_fn,
        pipeline.EvalBatches(synthetic.dataset_dir, ids, mesh=mesh, global_batch_size=global_batch_size))
    report = label_fidelity.gan_test(labels, scores, class_names, level=level)
    return {**label_fidelity.summary(report), "images": len(labels), "test": report}


def fd_per_combination(fidelity: dict) -> dict:
    """{"overall": FD, "per_combination": [{"names", "fd", "train_images", "synthetic_images"}]} of the audit's
    fidelity report (synthetic images against the real training images, in the real judge's features)."""
    keys = ("names", "fd", "train_images", "synthetic_images")
    return {"overall": fidelity["overall"]["synthetic"]["fd"],
            "per_combination": [{key: entry[key] for key in keys} for entry in fidelity["per_combination"]]}


def _summary(report: dict) -> dict:
    return {**label_fidelity.summary(report), "test": report}


def answer(evaluations: list[dict], level: float) -> dict:
    """The point's "real", "synthetic", "relative_auc" and "delong" entries from one evaluation per judge seed.

    evaluations: `evaluate_pair` of each seed (the real and the synthetic
    judge of one seed paired), the primary seed first. With one seed, that
    seed's DeLong numbers. With several, every mean AUC, per-class AUC and
    paired difference is pooled over the seeds
    (eval/pooling.py): the estimate is the seeds' mean, the interval holds
    DeLong's variance and the seeds' spread, the p-value is the pooled
    difference's t test; "judge_seeds" gives each seed's values.
    """
    first = evaluations[0]
    if len(evaluations) == 1:
        paired = first["paired"]
        return {"real": _summary(first["real"]), "synthetic": _summary(first["synthetic"]),
                "relative_auc": relative_auc(first),
                "delong": {"a": "real", "b": "synthetic", "level": paired["level"], "mean": paired["mean"],
                           "classes": paired["classes"]}}
    labels = first["labels"]
    reals, synthetics = ([e["scores"][side] for e in evaluations] for side in ("real", "synthetic"))
    real = _pooled_summary([e["real"] for e in evaluations], level, auc.seed_mean_variances(labels, reals)[1])
    synthetic = _pooled_summary([e["synthetic"] for e in evaluations], level,
                                auc.seed_mean_variances(labels, synthetics)[1])
    per_class_within, mean_within = auc.seed_mean_variances(labels, reals, synthetics)
    mean = _pooled_test([e["paired"]["mean"] for e in evaluations], level, mean_within)
    classes = {name: {**first["paired"]["classes"][name],
                      **_pooled_test([e["paired"]["classes"][name] for e in evaluations], level, within)}
               for name, within in zip(first["class_names"], per_class_within)}
    r = real["mean_auc"]
    per_class = {name: None if real["per_class_auc"][name] in (None, 0) or synthetic["per_class_auc"][name] is None
                 else synthetic["per_class_auc"][name] / real["per_class_auc"][name] for name in first["class_names"]}
    low = high = None
    if mean["ci_low"] is not None:
        low, high = 1 - mean["ci_high"] / r, 1 - mean["ci_low"] / r
    return {"real": real, "synthetic": synthetic,
            "relative_auc": {"mean": synthetic["mean_auc"] / r, "ci_low": low, "ci_high": high, "per_class": per_class,
                             "judge_seeds": [e["synthetic"]["mean_auc"] / e["real"]["mean_auc"] for e in evaluations]},
            "delong": {"a": "real", "b": "synthetic", "level": level, "mean": mean, "classes": classes,
                       "pooled_over_judge_seeds": len(evaluations)}}


def _pooled_summary(reports: list[dict], level: float, within: float | None) -> dict:
    """`_summary` of several seeds' `per_class_auc` reports: pooled mean AUC and its interval, per-class means.

    within: the test-set variance of the seeds' mean AUC (auc.seed_mean_variances).
    """
    variances = [r["mean_auc_variance"] for r in reports]
    pooled = None if None in variances else pooling.pool([r["mean_auc"] for r in reports], variances, level, within)
    per_class = {}
    for name in reports[0]["classes"]:
        values = [r["classes"][name]["auc"] for r in reports]
        per_class[name] = None if None in values else float(np.mean(values))
    return {"mean_auc": float(np.mean([r["mean_auc"] for r in reports])),
            "mean_auc_ci": None if pooled is None else [pooled["ci_low"], pooled["ci_high"]],
            "per_class_auc": per_class, "test": reports[0],
            "judge_seeds": {"mean_auc": [r["mean_auc"] for r in reports],
                            "spread": float(np.std([r["mean_auc"] for r in reports], ddof=1))}}


def _pooled_test(tests: list[dict], level: float, within: float | None) -> dict:
    """DeLong's paired test (the keys of auc.paired_report) pooled over seeds; statistics None if a seed has none.

    within: the test-set variance of the seeds' mean difference (auc.seed_mean_variances).
    """
    differences = [t["difference"] for t in tests]
    entry = {"auc_a": None, "auc_b": None, "difference": None, "ci_low": None, "ci_high": None, "variance": None,
             "z": None, "p_value": None, "df": None}
    if None in differences:
        return entry
    entry.update(auc_a=float(np.mean([t["auc_a"] for t in tests])), auc_b=float(np.mean([t["auc_b"] for t in tests])),
                 difference=float(np.mean(differences)))
    variances = [t["variance"] for t in tests]
    if None in variances:
        return entry
    pooled = pooling.pool(differences, variances, level, within)
    entry.update(ci_low=pooled["ci_low"], ci_high=pooled["ci_high"], variance=pooled["variance"], df=pooled["df"],
                 **pooling.test(pooled))
    return entry


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


def results(config, workdir, prepared, fold: folds.Fold, outcomes, evaluations: list[dict], figures, seconds,
            label_fidelity_entry: dict) -> dict:
    """The point's results.json: the answer (real, synthetic, relative_auc, delong; `answer` over the judge
    seeds) and how it was reached."""
    gan, card = outcomes["gan"], outcomes["synthesize"]
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
        **answer(evaluations, config.benchmark.level),
        "judge_seeds": judge_seeds(config),
        "label_fidelity": label_fidelity_entry,
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
        "stages": {**{name: f"{STAGE_DIRS[name]}/" for name in outcomes},
                   **({"judges": f"{JUDGES_DIR}/"} if len(judge_seeds(config)) > 1 else {})},
        "configs": {"benchmark": config.to_dict()},
        "software": provenance.software(),
        "wall_seconds": {**seconds, "total": sum(seconds.values())},
        "report": REPORT_FILE,
        "figures": figures,
    }
