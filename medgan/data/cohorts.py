"""A job's cohort: building a source, preparing it once per resolution, and its fold.

`make_source` builds a cohort of `sources.SOURCES` from the `config.data`
block, `prepare_cohort` turns it into prepared tfds shards (once: a finished
preparation is found and reused), `fold_of` finds or draws the fold
(manifest.json) the job trains and tests on, and `training_data` says where
a classifier's training images come from (the real fold or a synthetic cohort).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import ml_collections
from absl import logging

from medgan import console, fileio, sharding
from medgan.data import builders, folds
from medgan.data.sources import PHANTOM_SOURCES, SOURCES, Source
from medgan.workdir import DATASET_DIR, MANIFEST_FILE


def make_source(data: ml_collections.ConfigDict, source: str | None = None) -> Source:
    """The `Source` named by `source` (default `data.source`), configured by `data`.

    A real cohort's root is checked here, before any work: otherwise the first
    sign of a misspelt path would be the CSV reader's error, which names the
    file but not the config key that put it there.
    """
    name = source or data.source
    if name not in PHANTOM_SOURCES and name in SOURCES and not os.path.isdir(data.root):
        raise FileNotFoundError(f"config.data.root={data.root!r}: no such directory (data.source={name!r})")
    if name in PHANTOM_SOURCES:
        from medgan.data import phantoms

        miss, false_positive = data.phantom_label_noise
        return phantoms.PhantomSource(name.removeprefix("phantom_"), data.phantom_patients, data.phantom_seed,
                                      data.phantom_conspicuity, label_miss=miss, label_false_positive=false_positive)
    if name == "chexpert":
        from medgan.data import chexpert

        return chexpert.CheXpertSource(data.root, policy=data.chexpert_policy, to_square=data.to_square)
    if name == "rsna_ich":
        from medgan.data import rsna_ich

        return rsna_ich.RsnaIchSource(data.root, windows=tuple(data.rsna_windows))
    raise ValueError(f"config.data.source={name!r}: no such source; known: {SOURCES}")


def prepared_dir(data: ml_collections.ConfigDict, workdir: str) -> str:
    """Where prepared shards live: `data.prepared_dir`, else <workdir>/prepared."""
    return data.prepared_dir or os.path.join(workdir, "prepared")


def prepare_cohort(
    data: ml_collections.ConfigDict, workdir: str, source: str | None = None
) -> builders.PreparedDataset:
    """Prepares (once) the cohort `source` at `data.resolution` and logs its counts.

    In a multi-process job process 0 builds while the others wait at a
    coordination-service barrier (`sharding.wait_for_processes`, which waits
    hours where a first device collective would give up after 30 s), then
    find the finished dataset (two concurrent builds would race on tfds's
    final rename). `prepared_dir` must be a file system every process sees.
    """
    directory = prepared_dir(data, workdir)
    cohort = make_source(data, source)
    if jax.process_count() > 1:
        if jax.process_index() == 0:
            builders.prepare(cohort, data.resolution, directory, min_kept_share=data.min_kept_share)
        sharding.wait_for_processes(f"prepare {cohort.name} {data.resolution}px")
    prepared = builders.prepare(cohort, data.resolution, directory, min_kept_share=data.min_kept_share)
    report = _report(prepared)
    losses = describe_losses(prepared, report)
    logging.info("%s: %d images written; %s (report: %s)", prepared.name, prepared.num_written, losses,
                 os.path.join(prepared.dataset_dir, builders.REPORT_FILE))
    if prepared.num_skipped or any(report.get("dropped_by_rule", {}).values()):
        console.summary([f"{prepared.name}: {prepared.num_written:,} images; {losses}"])
    return prepared


def _report(prepared: builders.PreparedDataset) -> dict:
    return fileio.read_json(os.path.join(prepared.dataset_dir, builders.REPORT_FILE))


def source_card(prepared: builders.PreparedDataset) -> dict:
    """{"source": name, "params": its parameters} of a prepared dataset: what a data card says it came from."""
    report = _report(prepared)
    return {"source": report["source"], "params": report["source_params"]}


def describe_losses(prepared: builders.PreparedDataset, report: dict | None = None) -> str:
    """"12 unreadable skipped; dropped by rule: lateral 4, uncertain 2" from a prepared dataset's report."""
    report = report if report is not None else _report(prepared)
    dropped = ", ".join(f"{reason} {n:,}" for reason, n in report.get("dropped_by_rule", {}).items() if n)
    skipped = f"{prepared.num_skipped:,} unreadable skipped"
    return f"{skipped}; dropped by rule: {dropped}" if dropped else f"{skipped}; none dropped by rule"


def fold_of(fold: ml_collections.ConfigDict, workdir: str, prepared: builders.PreparedDataset) -> folds.Fold:
    """The fold a job works on: `fold.manifest`, else <workdir>/manifest.json if written, else drawn and written.

    `fold` is a `config.fold` block. Only process 0 writes the manifest; the
    draw is deterministic, so every process holds the same fold.
    """
    if fold.manifest:
        if not os.path.exists(fold.manifest):
            raise FileNotFoundError(f"config.fold.manifest={fold.manifest!r} does not exist")
        path = fold.manifest
    else:
        path = os.path.join(workdir, MANIFEST_FILE)
    if os.path.exists(path):
        drawn = folds.read_manifest(path)
        if drawn.dataset != prepared.name:
            raise ValueError(f"{path} belongs to dataset {drawn.dataset}, this job reads {prepared.name}")
        return drawn
    drawn = folds.make_fold(
        builders.read_index(prepared.dataset_dir),
        class_names=prepared.class_names,
        dataset=prepared.name,
        num_combinations=fold.num_combinations,
        per_combination=fold.per_combination,
        val_per_combination=fold.val_per_combination,
        test_per_combination=fold.test_per_combination,
        val_images=fold.val_images,
        test_images=fold.test_images,
        min_images=fold.min_images,
        fractions=tuple(fold.fractions),
        seed=fold.seed,
    )
    if jax.process_index() == 0:
        folds.write_manifest(drawn, path)
    return drawn


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """Where a classifier's train and validation images come from."""

    dataset_dir: str
    train_ids: tuple[str, ...]
    val_ids: tuple[str, ...]
    description: str


def training_data(train_data: str, prepared: builders.PreparedDataset, fold: folds.Fold) -> TrainingData:
    """The real fold's train/val splits (`train_data` ""), or those of a synthetic cohort's directory.

    A synthetic cohort must have the real fold's label set: the same class
    names and the same label combinations. One sampled for another fold (other
    k, other cohort) would train the judge on classes the real test split does
    not score, and the comparison of the two judges would mean nothing.

    Raises:
      FileNotFoundError: `train_data` is not a directory written by the
        synthesize job (no manifest.json or no prepared dataset there).
      ValueError: its class names or label combinations differ from the real fold's.
    """
    if not train_data:
        return TrainingData(prepared.dataset_dir, fold.ids["train"], fold.ids["val"], "real")
    manifest_path = synthetic_manifest(train_data)
    synthetic = folds.read_manifest(manifest_path)
    if tuple(synthetic.class_names) != tuple(prepared.class_names):
        raise ValueError(
            f"{manifest_path}: classes {synthetic.class_names} differ from the real cohort's {prepared.class_names}"
        )
    if set(synthetic.combinations) != set(fold.combinations):
        names = fold.combination_names
        only_synthetic = sorted("+".join(names(c)) for c in set(synthetic.combinations) - set(fold.combinations))
        only_real = sorted("+".join(names(c)) for c in set(fold.combinations) - set(synthetic.combinations))
        raise ValueError(
            f"{manifest_path}: the synthetic cohort's label combinations differ from the real fold's "
            f"(only synthetic: {only_synthetic}; only real: {only_real}); "
            "synthesize it from a GAN trained on this fold"
        )
    dataset_dir = os.path.join(train_data, DATASET_DIR)
    if not os.path.isdir(dataset_dir):
        raise FileNotFoundError(
            f"config.classifier.train_data={train_data!r}: no {DATASET_DIR}/ beside {MANIFEST_FILE} "
            "(an unfinished synthesize run?)"
        )
    return TrainingData(dataset_dir, synthetic.ids["train"], synthetic.ids["val"], f"synthetic:{train_data}")


def synthetic_manifest(train_data: str) -> str:
    """<train_data>/manifest.json of a synthetic cohort; a clear error if it is not one."""
    manifest_path = os.path.join(train_data, MANIFEST_FILE)
    if not os.path.exists(manifest_path):
        raise FileNotFoundError(
            f"config.classifier.train_data={train_data!r}: no {MANIFEST_FILE} there "
            "(expected a dataset written by the synthesize job)"
        )
    return manifest_path
