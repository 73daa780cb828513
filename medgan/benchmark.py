"""Job "benchmark": one point of the study, end to end (DESIGN.md, "The data flow").

    fold -> classifier on real -> GAN -> synthesize -> classifier on synthetic -> evaluate

Both classifiers are tested on the same REAL test split, so the point's answer
is paired: per-class and mean AUC of each, their ratio (relative AUC) and
DeLong's test of the difference. The real-trained classifier is also the
feature extractor of the GAN's Fréchet distance.

Every stage is its own job in its own directory under the work directory and
resumes from its own checkpoint; a stage whose result exists is skipped. So a
preempted or killed benchmark, started again with the same command, continues
where it stopped, and a finished one only rewrites nothing:

    <workdir>/manifest.json          the fold every stage shares
    <workdir>/prepared/              prepared shards (unless data.prepared_dir)
    <workdir>/real_classifier/       train_classifier on the real train split
    <workdir>/gan/                   train_gan (+ samples/, generator/)
    <workdir>/synthetic/             synthesize (dataset/, DATA_CARD.md, preview.png)
    <workdir>/synthetic_classifier/  train_classifier on the synthetic cohort
    <workdir>/figures/               real_vs_synthetic.png, roc.png
    <workdir>/report.md              the table and the pictures, for people
    <workdir>/results.json           written last: its presence means "done"
"""

from __future__ import annotations

import copy
import os
import platform
import time

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from medgan import configuration, fileio, prepare, synthesize, train_classifier, train_gan, visualize
from medgan.data import builders, folds, pipeline
from medgan.eval import auc
from medgan.train import sharding

RESULT_FILE = "results.json"
REPORT_FILE = "report.md"
MANIFEST_FILE = "manifest.json"
# Wall time per stage, summed over the runs that worked on it. Added when a stage
# returns (finished or preempted): the time of a run killed outright is lost.
STAGE_TIMES_FILE = "stage_seconds.json"
FIGURES_DIR = "figures"
STAGES = ("prepare", "real_classifier", "gan", "synthesize", "synthetic_classifier", "evaluate")
STAGE_DIRS = {"real_classifier": "real_classifier", "gan": "gan", "synthesize": "synthetic",
              "synthetic_classifier": "synthetic_classifier"}
PREEMPTED = "preempted"


class StageClock:
    """Wall seconds per stage, persisted so a resumed benchmark reports the whole time spent."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, STAGE_TIMES_FILE)
        self.seconds = dict.fromkeys(STAGES, 0.0)
        if os.path.exists(self.path):
            self.seconds.update(fileio.read_json(self.path))

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds
        if jax.process_index() == 0:
            fileio.write_json(self.path, self.seconds)


def stage_configs(config: ml_collections.ConfigDict, workdir: str) -> dict[str, ml_collections.ConfigDict]:
    """The job config of every stage, all on one prepared dataset, one fold manifest and one seed."""
    data = copy.deepcopy(config.data)
    data.prepared_dir = prepare.prepared_dir(config.data, workdir)
    fold = copy.deepcopy(config.fold)
    fold.manifest = os.path.join(workdir, MANIFEST_FILE)

    def job(name: str) -> ml_collections.ConfigDict:
        stage = configuration.base_config(name)
        stage.seed = config.seed
        stage.distributed = config.distributed
        if "fold" in stage:
            stage.data, stage.fold = copy.deepcopy(data), copy.deepcopy(fold)
        return stage

    real, synthetic = job("train_classifier"), job("train_classifier")
    real.classifier = copy.deepcopy(config.classifier)
    real.classifier.train_data = ""
    synthetic.classifier = copy.deepcopy(config.classifier)
    synthetic.classifier.train_data = os.path.join(workdir, STAGE_DIRS["synthesize"])
    gan = job("train_gan")
    gan.gan = copy.deepcopy(config.gan)
    gan.gan.fid_classifier = os.path.join(workdir, STAGE_DIRS["real_classifier"])
    syn = job("synthesize")
    syn.synthesize = copy.deepcopy(config.synthesize)
    syn.synthesize.generator = os.path.join(workdir, STAGE_DIRS["gan"])
    configs = {"real_classifier": real, "gan": gan, "synthesize": syn, "synthetic_classifier": synthetic}
    for stage in configs.values():
        configuration.validate(stage)
    return configs


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    result_path = os.path.join(workdir, RESULT_FILE)
    if os.path.exists(result_path):
        result = fileio.read_json(result_path)
        print(f"{result_path} exists: benchmark point already finished")
        print_summary(result, workdir)
        return result
    sharding.initialize_distributed(config.distributed)
    clock = StageClock(workdir)
    configs = stage_configs(config, workdir)

    start = time.perf_counter()
    prepared = prepare.prepare_cohort(config.data, workdir)
    fold_config = configuration.base_config("train_classifier")
    fold_config.fold = copy.deepcopy(config.fold)
    fold = train_classifier.fold_of(fold_config, workdir, prepared)  # writes manifest.json once
    _barrier("benchmark: fold written")
    clock.add("prepare", time.perf_counter() - start)

    jobs = {"real_classifier": train_classifier.run, "gan": train_gan.run, "synthesize": synthesize.run,
            "synthetic_classifier": train_classifier.run}
    outcomes = {}
    for name, stage in jobs.items():
        start = time.perf_counter()
        outcome = stage(configs[name], os.path.join(workdir, STAGE_DIRS[name]))
        clock.add(name, time.perf_counter() - start)
        if outcome.get("status") == PREEMPTED:
            print(f"benchmark preempted in stage {name}: run the same command again to continue from its checkpoint")
            return {"status": PREEMPTED, "stage": name}
        _barrier(f"benchmark: {name} done")
        outcomes[name] = outcome

    start = time.perf_counter()
    evaluation = evaluate(workdir, config.benchmark.level)
    if jax.process_index() == 0:
        figures = write_figures(workdir, fold, prepared, evaluation, config.benchmark.report_samples)
        clock.add("evaluate", time.perf_counter() - start)
        result = results(config, workdir, prepared, fold, outcomes, evaluation, figures, clock.seconds)
        with fileio.atomic_path(os.path.join(workdir, REPORT_FILE)) as tmp, open(tmp, "w") as f:
            f.write(report_markdown(result))
        fileio.write_json(result_path, result)  # last: its presence marks the point finished
        print_summary(result, workdir)
    _barrier("benchmark: results written")
    return fileio.read_json(result_path)  # what a rerun returns too (JSON: tuples became lists)


def _barrier(name: str) -> None:
    """Other processes read what process 0 wrote (results.json, manifests) only after it wrote them."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def evaluate(workdir: str, level: float) -> dict:
    """Pairs the two classifiers' scores on the real test images: DeLong per class and for the mean AUC."""
    scores = {}
    for name in ("real_classifier", "synthetic_classifier"):
        path = os.path.join(workdir, name, train_classifier.SCORES_FILE)
        with np.load(path) as npz:
            scores[name] = {key: npz[key] for key in ("image_ids", "labels", "scores", "class_names")}
    real, synthetic = scores["real_classifier"], scores["synthetic_classifier"]
    for key in ("image_ids", "labels", "class_names"):
        if not np.array_equal(real[key], synthetic[key]):
            raise ValueError(f"{workdir}: the two classifiers' {train_classifier.SCORES_FILE} differ in {key}; "
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


def _summary(report: dict) -> dict:
    ci = None if report["mean_auc_ci_low"] is None else [report["mean_auc_ci_low"], report["mean_auc_ci_high"]]
    return {
        "mean_auc": report["mean_auc"],
        "mean_auc_ci": ci,
        "per_class_auc": {name: entry["auc"] for name, entry in report["classes"].items()},
        "test": report,
    }


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


def software() -> dict:
    """Versions and devices of the run, for reproducing a figure."""
    return {
        **synthesize.software_versions(),
        "python": platform.python_version(),
        "platform": jax.devices()[0].platform,
        "device_kind": jax.devices()[0].device_kind,
        "devices": jax.device_count(),
        "processes": jax.process_count(),
    }


def results(config, workdir, prepared, fold: folds.Fold, outcomes, evaluation, figures, seconds) -> dict:
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
        "delong": {"a": "real", "b": "synthetic", "level": paired["level"], "mean": paired["mean"],
                   "classes": paired["classes"]},
        "gan": {key: gan[key] for key in ("model", "steps", "stopped", "selected_step", "best_fd", "ada_p",
                                          "generator_sha256", "train_images_per_second", "samples")},
        "synthetic_images": card["counts"]["total"],
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
        "software": software(),
        "wall_seconds": {**seconds, "total": sum(seconds.values())},
        "report": REPORT_FILE,
        "figures": figures,
    }


def _images_by_id(dataset_dir: str, ids) -> dict[str, np.ndarray]:
    """{image id: uint8 image [R, R, C]} of `ids`, read on this process."""
    batch = next(pipeline.numpy_batches(pipeline.eval_dataset(dataset_dir, ids, batch_size=len(ids), cache=False)))
    keep = batch["mask"]
    return dict(zip((i.decode() for i in batch["image_id"][keep]), visualize.to_uint8(batch["image"][keep])))


def write_figures(workdir, fold: folds.Fold, prepared, evaluation: dict, per_combination: int) -> dict:
    """Real training images beside synthetic ones of the same labels, and the ROC curves; returns paths."""
    figures_dir = os.path.join(workdir, FIGURES_DIR)
    os.makedirs(figures_dir, exist_ok=True)
    synthetic_data = os.path.join(workdir, "synthetic", synthesize.DATASET_DIR)
    synthetic_fold = folds.read_manifest(os.path.join(workdir, "synthetic", MANIFEST_FILE))

    def first_ids(dataset_dir, ids) -> dict[tuple, list[str]]:
        labels = {r.image_id: tuple(r.labels) for r in builders.read_index(dataset_dir)}
        return {c: sorted(i for i in ids if labels[i] == c)[:per_combination] for c in fold.combinations}

    real_ids = first_ids(prepared.dataset_dir, fold.ids["train"])
    synthetic_ids = first_ids(synthetic_data, synthetic_fold.ids["train"])
    real = _images_by_id(prepared.dataset_dir, [i for ids in real_ids.values() for i in ids])
    synthetic = _images_by_id(synthetic_data, [i for ids in synthetic_ids.values() for i in ids])
    blank = np.zeros_like(next(iter(real.values())))
    images, captions = [], []
    for combination in fold.combinations:
        findings = ", ".join(fold.combination_names(combination)) or "no finding"
        for source, ids, images_of in (("real", real_ids, real), ("synthetic", synthetic_ids, synthetic)):
            row = [images_of[i] for i in ids[combination]]
            images += row + [blank] * (per_combination - len(row))  # fewer images than asked: a blank cell
            captions += [f"{source}: {findings}"] * len(row) + [""] * (per_combination - len(row))
    side_by_side = os.path.join(figures_dir, "real_vs_synthetic.png")
    visualize.save_labelled_grid(
        side_by_side, np.stack(images), captions, columns=2 * per_combination,
        title="Real training images (left) and synthetic images (right), one row per label combination",
    )
    roc = os.path.join(figures_dir, "roc.png")
    visualize.save_roc_curves(roc, evaluation["labels"], evaluation["scores"], evaluation["class_names"])
    return {"real_vs_synthetic": os.path.relpath(side_by_side, workdir), "roc": os.path.relpath(roc, workdir)}


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _p(value) -> str:
    """A p-value as people read it: 4 decimals, "< 0.0001" below that."""
    return "n/a" if value is None else "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def _p_clause(value) -> str:
    text = _p(value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _ci(low, high) -> str:
    return "n/a" if low is None else f"[{low:.3f}, {high:.3f}]"


def report_markdown(result: dict) -> str:
    """report.md: the answer first, then per class, the pictures, the fold, the stages."""
    point, rel, mean = result["point"], result["relative_auc"], result["delong"]["mean"]
    real, synthetic = result["real"], result["synthetic"]
    level = round(100 * result["delong"]["level"])
    lines = [
        f"# Benchmark point: {point['source']}, {point['resolution']} px, {point['num_combinations']} label "
        f"combinations x {point['per_combination']} images, {point['model']}",
        "",
        "A classifier trained on the real training split and one trained on the synthetic cohort, both tested "
        "on the same real test split.",
        "",
        f"| trained on | mean test AUC | {level}% CI |",
        "|---|---:|---|",
        f"| real | {_fmt(real['mean_auc'])} | {_ci(*(real['mean_auc_ci'] or (None, None)))} |",
        f"| synthetic | {_fmt(synthetic['mean_auc'])} | {_ci(*(synthetic['mean_auc_ci'] or (None, None)))} |",
        "",
        f"**Relative AUC (synthetic / real): {_fmt(rel['mean'])}** {level}% CI {_ci(rel['ci_low'], rel['ci_high'])}.",
    ]
    if mean is not None:
        lines.append(f"DeLong's paired test of the mean AUC: difference real - synthetic {_fmt(mean['difference'])}, "
                     f"{level}% CI {_ci(mean['ci_low'], mean['ci_high'])}, {_p_clause(mean['p_value'])}.")
    lines += [
        "",
        "## Per class",
        "",
        "| class | test positives / negatives | real AUC | synthetic AUC | relative | difference (CI) | p |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for name, test in result["delong"]["classes"].items():
        lines.append(
            f"| {name} | {test['positives']} / {test['negatives']} | {_fmt(real['per_class_auc'][name])} | "
            f"{_fmt(synthetic['per_class_auc'][name])} | {_fmt(rel['per_class'][name])} | "
            f"{_fmt(test['difference'])}{'' if test['ci_low'] is None else ' ' + _ci(test['ci_low'], test['ci_high'])} | "
            f"{_p(test['p_value'])} |")
    gan = result["gan"]
    lines += [
        "",
        "Classes without positives (or negatives) in the test split have no AUC (n/a) and are left out of the means.",
        "",
        "## Pictures",
        "",
        "Real training images (left) and synthetic images (right) of the same label combinations:",
        "",
        f"![real and synthetic images]({result['figures']['real_vs_synthetic']})",
        "",
        "ROC curves on the real test split, classifier trained on real vs on synthetic images:",
        "",
        f"![ROC curves]({result['figures']['roc']})",
        "",
        f"The GAN's fixed-latent samples at its last step (one row per label combination): "
        f"[gan/{gan['samples']}](gan/{gan['samples']}); the synthetic cohort's preview: "
        f"[synthetic/{synthesize.PREVIEW}](synthetic/{synthesize.PREVIEW}) and data card: "
        f"[synthetic/{synthesize.DATA_CARD_MD}](synthetic/{synthesize.DATA_CARD_MD}).",
        "",
        "## GAN",
        "",
        f"{point['model']}: {gan['steps']} steps ({gan['stopped']}), generator selected at step {gan['selected_step']} "
        f"(Fréchet distance {_fmt(gan['best_fd'], 2)} in the real classifier's features), "
        f"{_fmt(gan['train_images_per_second'], 1)} images/s; {result['synthetic_images']} synthetic images.",
        "",
        "## Fold",
        "",
        f"{result['fold']['manifest']}: " + ", ".join(f"{k} {v}" for k, v in result["fold"]["sizes"].items())
        + " images.",
        "",
        "| label combination | " + " | ".join(result["fold"]["counts"]) + " |",
        "|---|" + "---:|" * len(result["fold"]["counts"]),
    ]
    for i, combination in enumerate(result["fold"]["combinations"]):
        counts = " | ".join(str(c[i]) for c in result["fold"]["counts"].values())
        lines.append(f"| {', '.join(combination) or 'no finding'} | {counts} |")
    seconds = result["wall_seconds"]
    lines += ["", "## Stages", "", "| stage | directory | wall seconds |", "|---|---|---:|"]
    lines += [f"| {stage} | {result['stages'].get(stage, '')} | {seconds[stage]:.0f} |" for stage in STAGES]
    lines += [f"| total | | {seconds['total']:.0f} |", "",
              "Software: " + ", ".join(f"{k} {v}" for k, v in result["software"].items()), ""]
    return "\n".join(lines)


def print_summary(result: dict, workdir: str) -> None:
    """The results table and the paths a person opens next."""
    point, rel = result["point"], result["relative_auc"]
    print(f"benchmark point {point['source']} {point['resolution']} px, k={point['num_combinations']} "
          f"n={point['per_combination']}, {point['model']}:")
    print(f"  mean test AUC  real {result['real']['mean_auc']:.3f}   synthetic {result['synthetic']['mean_auc']:.3f}   "
          f"relative {rel['mean']:.3f} (95% CI {_ci(rel['ci_low'], rel['ci_high'])})")
    mean = result["delong"]["mean"]
    if mean is not None and mean["p_value"] is not None:
        print(f"  DeLong paired test: difference {mean['difference']:.3f}, {_p_clause(mean['p_value'])}")
    print(f"  report:   {os.path.join(workdir, result['report'])}")
    for name, path in result["figures"].items():
        print(f"  {name + ':':9s} {os.path.join(workdir, path)}")
    print(f"  samples:  {os.path.join(workdir, 'gan', result['gan']['samples'])}")
    print(f"  results:  {os.path.join(workdir, RESULT_FILE)}")
