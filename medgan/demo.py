"""Job "demo": the embedded default, end to end as far as the project reaches.

For each phantom cohort: prepare the shards, build a benchmark fold, stream
sharded training batches onto the mesh, and write a labelled preview grid;
train and test the classifier on one cohort; and on another, the study's
question at one point: train a GAN, synthesize a cohort, train the classifier
on it and test it on the REAL test split ("train on synthetic, test on real"),
next to the same classifier trained on the real images.
"""

from __future__ import annotations

import copy
import os

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from medgan import configuration, fileio, prepare, synthesize, train_classifier, train_gan, visualize
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


def synthetic_versus_real(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Real classifier -> GAN -> synthetic cohort -> synthetic classifier, on `config.gan_cohort`.

    Every stage has its own directory under <workdir>/<cohort>_<R>px and is
    skipped when its result exists; all share the fold in manifest.json there.
    Returns {"status": "preempted"} if a stage was preempted.
    """
    base = os.path.join(workdir, f"{config.gan_cohort}_{config.gan_resolution}px")
    data = copy.deepcopy(config.data)
    data.source, data.resolution = config.gan_cohort, config.gan_resolution
    data.prepared_dir = prepare.prepared_dir(config.data, workdir)
    prepared = prepare.prepare_cohort(data, base)
    fold_config = configuration.base_config("train_classifier")
    fold_config.fold = copy.deepcopy(config.fold)
    train_classifier.fold_of(fold_config, base, prepared)
    manifest = os.path.join(base, "manifest.json")
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("demo: fold manifest written")

    def classifier_run(name: str, train_data: str = "") -> dict:
        clf = classifier_config(config, workdir)
        clf.data = copy.deepcopy(data)
        clf.fold.manifest = manifest
        clf.classifier = copy.deepcopy(config.gan_classifier)
        clf.classifier.train_data = train_data
        return train_classifier.run(clf, os.path.join(base, name))

    real = classifier_run("real_classifier")
    if "test" not in real:
        return real
    gan = configuration.base_config("train_gan")
    gan.seed, gan.distributed, gan.data = config.seed, config.distributed, copy.deepcopy(data)
    gan.fold = copy.deepcopy(config.fold)
    gan.fold.manifest = manifest
    gan.gan = copy.deepcopy(config.gan)
    gan.gan.fid_classifier = os.path.join(base, "real_classifier")
    trained = train_gan.run(gan, os.path.join(base, "gan"))
    if "steps" not in trained or trained.get("status") == "preempted":
        return trained
    syn = configuration.base_config("synthesize")
    syn.seed, syn.distributed = config.seed, config.distributed
    syn.synthesize = copy.deepcopy(config.synthesize)
    syn.synthesize.generator = os.path.join(base, "gan")
    card = synthesize.run(syn, os.path.join(base, "synthetic"))
    synthetic = classifier_run("synthetic_classifier", train_data=os.path.join(base, "synthetic"))
    if "test" not in synthetic:
        return synthetic
    real_auc, synthetic_auc = real["test"]["mean_auc"], synthetic["test"]["mean_auc"]
    return {
        "cohort": config.gan_cohort,
        "resolution": config.gan_resolution,
        "model": config.gan.model,
        "directory": base,
        "real_mean_auc": real_auc,
        "synthetic_mean_auc": synthetic_auc,
        "relative_auc": synthetic_auc / real_auc,
        "gan_steps": trained["steps"],
        "gan_fd": trained["best_fd"],
        "gan_seconds": trained["wall_seconds"],
        "synthetic_images": card["counts"]["total"],
        "samples": os.path.join(base, "gan", trained["samples"]),
        "synthetic_preview": os.path.join(base, "synthetic", synthesize.PREVIEW),
        "data_card": os.path.join(base, "synthetic", synthesize.DATA_CARD_MD),
    }


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
    if config.gan_cohort:
        outcome = synthetic_versus_real(config, workdir)
        if outcome.get("status") == "preempted":
            return outcome
        result["synthetic_versus_real"] = outcome
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
        if "synthetic_versus_real" in result:
            svr = result["synthetic_versus_real"]
            print(f"{svr['cohort']} at {svr['resolution']} px, {svr['model']} GAN ({svr['gan_steps']} steps): "
                  f"mean test AUC real {svr['real_mean_auc']:.3f}, synthetic {svr['synthetic_mean_auc']:.3f}, "
                  f"relative {svr['relative_auc']:.3f}")
            print(f"  GAN samples:       {svr['samples']}")
            print(f"  synthetic preview: {svr['synthetic_preview']}")
            print(f"  data card:         {svr['data_card']}")
        print(f"result: {os.path.join(workdir, 'result.json')}")
    return result
