"""Job "instrument": a benchmark point's judges fed synthetic cohorts of known quality, no GAN involved.

    fold -> judges on real (one per seed) -> oracle cohorts (rungs) -> judges on each rung -> the ladder

Before a sweep can say one GAN is better than another, the benchmark must be
shown to respond to quality: a perfect generator must score a relative AUC of
1, a cohort whose labels are independent of its pixels must score chance,
and everything between must fall in order. Each rung (data/oracle.py) is
written as a synthetic cohort in the synthesize job's format, so the judge
reads it exactly as it reads a GAN's; every rung and the real fold are judged
by `benchmark.judge_seeds` classifiers and the seeds are pooled
(study/instrument.py), and the first seed's real judge scores every rung's
images against the labels they carry (GAN-test, eval/label_fidelity.py: the
number every benchmark point reports, here on cohorts whose answer is known).
Work directory:

    <workdir>/manifest.json, prepared/       the fold and cohort, as a benchmark point's
    <workdir>/real_classifier/seed_<s>/      the real-trained judges
    <workdir>/rungs/<rung>/                  dataset/, manifest.json, sources.csv, oracle.json (written last)
    <workdir>/rungs/<rung>/seed_<s>/         that rung's judges
    <workdir>/figures/                       ladder.png, rungs.png
    <workdir>/report.md, results.json        results.json last: its presence means "done"

Every judge and rung resumes or is skipped like a benchmark stage.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import os
import shutil

import jax
import ml_collections
import numpy as np

from medgan import console, fileio, provenance, report_format as fmt, visualize
from medgan.data import builders, cohorts, folds, oracle, synthetic
from medgan.data.records import ImageRecord
from medgan.eval import features
from medgan.jobs import benchmark, common, train_classifier
from medgan.study import instrument, point
from medgan.workdir import DATASET_DIR, FIGURES_DIR, MANIFEST_FILE, PREEMPTED, REPORT_FILE, RESULT_FILE

ORACLE_CARD = "oracle.json"  # a rung's cohort is finished when this exists
SOURCES_CSV = "sources.csv"  # oracle image id -> the real image and patient it is, and the label it was given
EXAMPLES_PER_RUNG = 8


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    rungs = oracle.parse_rungs(config.instrument.rungs)
    previous, mesh = common.begin(config, workdir, lambda result: "instrument already proven: " + _verdict(result))
    if previous is not None:
        return previous
    seeds = point.judge_seeds(config)
    judge = benchmark.stage_configs(config, workdir)["real_classifier"]

    with console.stage(f"1/4 prepare the cohort, draw the fold and {len(rungs)} oracle cohorts") as shown:
        prepared = cohorts.prepare_cohort(config.data, workdir)
        fold = cohorts.fold_of(config.fold, workdir, prepared)
        common.barrier("instrument: fold written")
        if jax.process_index() == 0:
            for rung in rungs:
                write_rung(_rung_dir(workdir, rung), rung, prepared, fold, config.seed)
        common.barrier("instrument: rungs written")
        shown.note = benchmark.fold_note(prepared, fold)

    def judges(title: str, train_data: str, directory: str) -> list[dict]:
        outcomes = []
        with console.stage(title) as shown:
            for seed in seeds:
                stage = copy.deepcopy(judge)
                stage.seed, stage.classifier.train_data = seed, train_data
                outcome = train_classifier.run(stage, os.path.join(directory, f"seed_{seed}"))
                if outcome.get("status") == PREEMPTED:
                    raise SystemExit(f"instrument preempted in {title}: run the same command again to continue")
                outcomes.append(outcome)
                common.barrier(f"instrument: {directory} seed {seed}")
            shown.note = "mean test AUC " + ", ".join(fmt.number(o["test"]["mean_auc"]) for o in outcomes)
        return outcomes

    real_dir = os.path.join(workdir, "real_classifier")
    judges(f"2/4 {len(seeds)} judges on the real training split", "", real_dir)
    for i, rung in enumerate(rungs):
        judges(f"3/4 judges on rung {i + 1}/{len(rungs)}: {rung.label}", _rung_dir(workdir, rung),
               _rung_dir(workdir, rung))

    with console.stage("4/4 the ladder"):
        level = config.benchmark.level
        evaluations = {rung.name: [point.evaluate_pair(os.path.join(real_dir, f"seed_{s}"),
                                                       os.path.join(_rung_dir(workdir, rung), f"seed_{s}"), level)
                                   for s in seeds] for rung in rungs}
        # GAN-test of every rung: the first seed's real judge on the rung's images against the labels they carry.
        real_judge = features.load_logits(os.path.join(real_dir, f"seed_{seeds[0]}"), mesh)  # loaded once
        gan_tests = {rung.name: point.gan_test_of(
            real_judge, cohorts.training_data(_rung_dir(workdir, rung), prepared, fold),
            mesh, prepared.class_names, level=level, global_batch_size=judge.classifier.global_batch_size)
            for rung in rungs}
        result = instrument.ladder(rungs, evaluations, level, gan_tests)
        if jax.process_index() == 0:
            figures = _figures(workdir, rungs, fold, result)
            result.update(point=_point(config, prepared), seeds=seeds, figures=figures, report=REPORT_FILE,
                          configs={"instrument": config.to_dict()}, software=provenance.software())
            with fileio.atomic_path(os.path.join(workdir, REPORT_FILE)) as tmp, open(tmp, "w") as f:
                f.write("\n".join(instrument.markdown(result, figures)))
            fileio.write_json(os.path.join(workdir, RESULT_FILE), result)  # last: marks the ladder done
    common.barrier("instrument: results written")
    result = fileio.read_json(os.path.join(workdir, RESULT_FILE))
    if jax.process_index() == 0:
        print_summary(result, workdir)
    return result


def write_rung(directory: str, rung: oracle.Rung, prepared: builders.PreparedDataset, fold: folds.Fold,
               seed: int) -> None:
    """One rung as a synthetic cohort: dataset/, manifest.json, sources.csv, then oracle.json (skipped if done).

    The images are those of `oracle.draw` (the fold's train and val label
    counts, patients the fold never uses), degraded or relabelled by the rung.
    """
    if os.path.exists(os.path.join(directory, ORACLE_CARD)):
        return
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    counts = synthetic.counts_per_combination(fold, 0)
    drawn = oracle.draw(builders.read_index(prepared.dataset_dir), fold, counts, seed)
    sources = [r for split in synthetic.SPLITS for r in drawn[split]]
    splits = [split for split in synthetic.SPLITS for _ in drawn[split]]
    by_id = visualize.images_by_id(prepared.dataset_dir, [r.image_id for r in sources])
    images = np.stack([by_id[r.image_id] for r in sources])
    labels = np.array([r.labels for r in sources], np.int64)
    rng = np.random.default_rng([seed, len(rung.name), *map(ord, rung.name)])  # one stream per seed and rung
    if rung.kind == "labels":
        for split in synthetic.SPLITS:
            rows = np.flatnonzero(np.array(splits) == split)
            labels[rows] = oracle.permute_labels(labels[rows], rung.value, rng)
    if rung.kind == "downsample":
        images = oracle.degrade(images, int(rung.value))
    records = [ImageRecord(f"oracle-{i:06d}", source.patient_id, tuple(int(x) for x in row))
               for i, (source, row) in enumerate(zip(sources, labels))]
    fingerprint = hashlib.sha256(repr((rung.name, seed, [r.image_id for r in sources])).encode()).hexdigest()
    staging = os.path.join(directory, ".staging")
    built = builders.prepare(synthetic.GeneratedSource(fold.class_names, records, images, fingerprint, seed),
                             images.shape[1], staging, progress=False)
    os.replace(built.dataset_dir, os.path.join(directory, DATASET_DIR))
    shutil.rmtree(staging)
    manifest = synthetic.synthetic_fold(fold, built.name, records, splits, counts, seed)
    folds.write_manifest(manifest, os.path.join(directory, MANIFEST_FILE))
    with fileio.atomic_path(os.path.join(directory, SOURCES_CSV)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "split", "real_image_id", "real_patient_id", *fold.class_names])
        for record, source, split in zip(records, sources, splits):
            writer.writerow([record.image_id, split, source.image_id, source.patient_id, *record.labels])
    changed = int((labels != np.array([r.labels for r in sources])).any(axis=1).sum())
    fileio.write_json(os.path.join(directory, ORACLE_CARD), {
        "rung": rung.name, "label": rung.label, "kind": rung.kind, "value": rung.value, "seed": seed,
        "images": len(records), "labels_changed": changed, "real_dataset": prepared.name,
        "patients": len({r.patient_id for r in sources}), "counts": counts})


def _rung_dir(workdir: str, rung: oracle.Rung) -> str:
    return os.path.join(workdir, "rungs", rung.name)


def _figures(workdir: str, rungs, fold: folds.Fold, result: dict) -> dict[str, str]:
    """ladder.png (relative AUC per rung) and rungs.png (the same training images as each rung hands them over)."""
    os.makedirs(os.path.join(workdir, FIGURES_DIR), exist_ok=True)
    paths = {"ladder": os.path.join(FIGURES_DIR, "ladder.png"), "rungs": os.path.join(FIGURES_DIR, "rungs.png")}
    instrument.save_ladder_figure(os.path.join(workdir, paths["ladder"]), result)
    train = sum(fold.counts["train"])
    shown = [f"oracle-{i:06d}" for i in range(0, train, max(1, train // EXAMPLES_PER_RUNG))][:EXAMPLES_PER_RUNG]
    images, captions = [], []
    for rung in rungs:
        dataset_dir = os.path.join(_rung_dir(workdir, rung), DATASET_DIR)
        by_id = visualize.images_by_id(dataset_dir, shown)
        labels = {r.image_id: r.labels for r in builders.read_index(dataset_dir)}
        images += [by_id[i] for i in shown]
        captions += [f"{rung.label}:\n{visualize.caption(np.array(labels[i]), fold.class_names)}" for i in shown]
    visualize.save_labelled_grid(os.path.join(workdir, paths["rungs"]), np.stack(images), captions,
                                 columns=EXAMPLES_PER_RUNG,
                                 title="What each rung's judge trains on: the same patients, one row per rung")
    return paths


def _point(config: ml_collections.ConfigDict, prepared: builders.PreparedDataset) -> dict:
    return {"study": config.benchmark.study, "source": config.data.source, "dataset": prepared.name,
            "resolution": config.data.resolution, "num_combinations": config.fold.num_combinations,
            "per_combination": config.fold.per_combination}


def _verdict(result: dict) -> str:
    return f"{sum(c['passed'] for c in result['checks'])} of {len(result['checks'])} checks passed"


def print_summary(result: dict, workdir: str) -> None:
    """The ladder as a console table, the checks, and where the report is."""
    rows = [f"{'synthetic cohort':28s} {'synthetic AUC':>13s}  {'relative AUC':>12s}  {'95% CI':16s}  GAN-test"]
    for row in result["rungs"]:
        rel = row["relative_auc"]
        rows.append(f"{row['label']:28s} {row['synthetic']['mean']:13.3f}  {rel['mean']:12.3f}  "
                    f"{fmt.interval(rel['ci_low'], rel['ci_high'])}  {fmt.number(row['gan_test']['mean_auc'])}")
    rows += [f"{'passed' if c['passed'] else 'FAILED'}: {c['check']} ({c['detail']})" for c in result["checks"]]
    rows += [f"report: {os.path.join(workdir, result['report'])}", f"results: {os.path.join(workdir, RESULT_FILE)}"]
    console.summary(rows, title=f"instrument ({_verdict(result)}; real judge "
                                f"{result['rungs'][0]['real']['mean']:.3f}, {len(result['seeds'])} seeds each):")

