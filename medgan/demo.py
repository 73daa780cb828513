"""Job "demo": the embedded default, end to end as far as the project reaches.

For each phantom cohort: prepare the shards, build a benchmark fold, stream
sharded training batches onto the mesh, and write a labelled preview grid.
"""

from __future__ import annotations

import copy
import os

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from medgan import configuration, fileio, prepare, train_classifier, visualize
from medgan.data import builders, folds, pipeline
from medgan.train import sharding


def preview_cohort(
    config: ml_collections.ConfigDict, workdir: str, source: str, mesh: jax.sharding.Mesh
) -> dict:
    """Prepares `source`, writes its fold manifest and a preview grid; returns paths and counts."""
    prepared = prepare.prepare_cohort(config.data, workdir, source)
    fold = folds.make_fold(
        builders.read_index(prepared.dataset_dir),
        num_combinations=config.fold.num_combinations,
        per_combination=config.fold.per_combination,
        fractions=tuple(config.fold.fractions),
        seed=config.fold.seed,
        class_names=prepared.class_names,
        dataset=prepared.name,
    )
    cohort_dir = os.path.join(workdir, source)
    manifest_path = os.path.join(cohort_dir, "manifest.json")
    if jax.process_index() == 0:
        folds.write_manifest(fold, manifest_path)

    batches = pipeline.train_batches(
        prepared.dataset_dir,
        fold.ids["train"],
        global_batch_size=config.input.global_batch_size,
        mesh=mesh,
        seed=config.seed,
        flip=config.input.flip,
    )
    images, labels = [], []
    for _, batch in zip(range(config.preview_batches), batches):
        # Batches are global arrays spread over every process; gather to show them.
        images.append(multihost_utils.process_allgather(batch["image"], tiled=True))
        labels.append(multihost_utils.process_allgather(batch["labels"], tiled=True))
    images, labels = np.concatenate(images), np.concatenate(labels)

    preview_path = os.path.join(cohort_dir, "preview.png")
    if jax.process_index() == 0:
        visualize.save_labelled_grid(
            preview_path,
            images,
            [visualize.caption(row, prepared.class_names) for row in labels],
            columns=8,
            title=f"{prepared.name}: training batches of the fold ({len(images)} images)",
        )
    return {
        "dataset": prepared.name,
        "dataset_dir": prepared.dataset_dir,
        "images_written": prepared.num_written,
        "images_skipped": prepared.num_skipped,
        "manifest": manifest_path,
        "split_sizes": {split: len(ids) for split, ids in fold.ids.items()},
        "batch_shape": list(images.shape[1:]),
        "preview": preview_path,
    }


def classifier_config(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
    """The train_classifier config of the demo's cohort: same data, shards, fold and seed."""
    clf = configuration.base_config("train_classifier")
    clf.seed = config.seed
    clf.distributed = config.distributed
    clf.data = copy.deepcopy(config.data)
    clf.data.source = config.classifier_cohort
    clf.data.prepared_dir = prepare.prepared_dir(config.data, workdir)
    clf.fold = copy.deepcopy(config.fold)
    clf.classifier = copy.deepcopy(config.classifier)
    return clf


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    sharding.initialize_distributed(config.distributed)
    mesh = sharding.make_mesh()
    result = {
        "devices": jax.device_count(),
        "processes": jax.process_count(),
        "cohorts": {source: preview_cohort(config, workdir, source, mesh) for source in config.cohorts},
    }
    if config.classifier_cohort:
        # The classifier shares the cohort's directory, so it finds the fold's manifest.json there.
        classifier = train_classifier.run(
            classifier_config(config, workdir), os.path.join(workdir, config.classifier_cohort)
        )
        if "test" not in classifier:  # preempted: its checkpoint is saved, the next run continues
            return classifier
        result["classifier"] = {
            "cohort": config.classifier_cohort,
            "results": os.path.join(workdir, config.classifier_cohort, train_classifier.RESULT_FILE),
            "mean_test_auc": classifier["test"]["mean_auc"],
        }
    if jax.process_index() == 0:
        fileio.write_json(os.path.join(workdir, "result.json"), result)
        for source, cohort in result["cohorts"].items():
            sizes = ", ".join(f"{k} {v}" for k, v in cohort["split_sizes"].items())
            print(f"{source}: {cohort['images_written']} images prepared, fold {sizes}")
            print(f"  preview:  {cohort['preview']}")
            print(f"  manifest: {cohort['manifest']}")
        if "classifier" in result:
            print(f"classifier on {result['classifier']['cohort']}: mean test AUC "
                  f"{result['classifier']['mean_test_auc']:.3f} ({result['classifier']['results']})")
        print(f"result: {os.path.join(workdir, 'result.json')}")
    return result
