"""Job "synthesize": a trained generator -> the synthetic dataset a hospital would share.

Samples the EMA generator of a `train_gan` run per label combination of its
fold — by default exactly as many images per combination as the real fold's
train and validation splits hold, so "train on synthetic" sees the real label
distribution — and writes, in the work directory:

  dataset/          prepared shards in the format every medgan job reads
                    (`train_classifier` with classifier.train_data=<workdir>)
  manifest.json     the synthetic fold: train / val ids per combination, no test
                    split (the test split is always real)
  labels.csv        image_id, split and one 0/1 column per finding
  preview.png       the first images of each combination, captioned
  DATA_CARD.md      what this dataset is, for a person
  data_card.json    the same, for a program: generator, config, checkpoint
                    hash, counts per combination, date, software, audits run

Nothing of a real image's metadata is copied: ids are "synthetic-cXX-NNNNNN",
each image is its own "patient", and the card names only the real dataset's
prepared name and the fold parameters. Sampling is deterministic for a seed:
row i's latent comes from fold_in(seed, i), independent of batching, devices
and processes. `data_card.json` is written last; a directory without it is an
unfinished run and is rebuilt.
"""

from __future__ import annotations

import csv
import os
import shutil

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from medgan import console, fileio, visualize
from medgan.data import builders, folds, synthetic
from medgan.jobs import common
from medgan.models import gans
from medgan.study import data_card
from medgan.train.sampling import Sampler, latents, load_generator
from medgan.workdir import DATA_CARD_JSON, DATA_CARD_MD, DATASET_DIR, LABELS_CSV, MANIFEST_FILE, PREVIEW, RESULT_FILE

PREVIEW_COLUMNS = 8


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    previous, mesh = common.begin(
        config, workdir, lambda card: f"synthetic dataset already written ({card['counts']['total']} images)",
        result_file=DATA_CARD_JSON)
    if previous is not None:
        return previous
    cfg = config.synthesize
    gan_result_path = os.path.join(cfg.generator, RESULT_FILE)
    if not os.path.exists(gan_result_path):
        raise FileNotFoundError(f"config.synthesize.generator={cfg.generator!r}: no {RESULT_FILE} there "
                                "(expected the work directory of a finished train_gan run)")
    gan_result = fileio.read_json(gan_result_path)
    fold = folds.read_manifest(gan_result["fold_manifest"])
    counts = synthetic.counts_per_combination(fold, cfg.per_combination)
    records, splits = synthetic.plan(fold, counts)

    spec = gans.spec_from(gan_result["model"])
    params = load_generator(os.path.join(cfg.generator, gan_result["generator"]), spec, mesh)
    labels = np.array([r.labels for r in records], np.float32)
    z = latents(config.seed, len(records), spec.latent_dim)
    sampler = Sampler(mesh, cfg.global_batch_size)
    images = visualize.to_uint8(sampler.gather(spec, params, z, labels, jax.random.key(config.seed)))

    if jax.process_index() == 0:
        staging = os.path.join(workdir, ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        _remove_unfinished(workdir)
        source = synthetic.GeneratedSource(fold.class_names, records, images, gan_result["generator_sha256"],
                                           config.seed)
        prepared = builders.prepare(source, images.shape[1], staging, progress=False)
        os.replace(prepared.dataset_dir, os.path.join(workdir, DATASET_DIR))
        shutil.rmtree(staging)
        _write_outputs(workdir, config.seed, fold, records, splits, images, gan_result, prepared.name, counts)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("synthesize: dataset written")
    card = fileio.read_json(os.path.join(workdir, DATA_CARD_JSON))
    if jax.process_index() == 0 and not console.in_stage():
        print(f"synthetic dataset: {card['counts']['total']} images of {len(fold.combinations)} label combinations")
        print(f"  dataset:   {os.path.join(workdir, DATASET_DIR)}")
        print(f"  preview:   {os.path.join(workdir, PREVIEW)}")
        print(f"  data card: {os.path.join(workdir, DATA_CARD_MD)}")
    return card


def _remove_unfinished(workdir: str) -> None:
    """Deletes what an interrupted earlier run left (it never reached data_card.json)."""
    for name in (DATASET_DIR, MANIFEST_FILE, LABELS_CSV, PREVIEW, DATA_CARD_MD):
        path = os.path.join(workdir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def _write_outputs(workdir, seed, fold, records, splits, images, gan_result, dataset_name, counts) -> None:
    """manifest.json, labels.csv, preview.png, DATA_CARD.md, and data_card.json last."""
    manifest = synthetic.synthetic_fold(fold, dataset_name, records, splits, counts, seed)
    folds.write_manifest(manifest, os.path.join(workdir, MANIFEST_FILE))

    with fileio.atomic_path(os.path.join(workdir, LABELS_CSV)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "split", *fold.class_names])
        for record, split in zip(records, splits):
            writer.writerow([record.image_id, split, *record.labels])

    first = {}
    for i, record in enumerate(records):
        first.setdefault(record.labels, []).append(i)
    rows = [i for combination in fold.combinations for i in first[tuple(combination)][:PREVIEW_COLUMNS]]
    visualize.save_labelled_grid(
        os.path.join(workdir, PREVIEW), images[rows],
        [visualize.caption(np.array(records[i].labels), fold.class_names) for i in rows],
        columns=PREVIEW_COLUMNS,
        title=f"synthetic {gan_result['model']['name']} samples, one row per label combination",
    )
    card = data_card.card(dataset_name, fold, counts, gan_result, seed=seed, resolution=int(images.shape[1]),
                          channels=int(images.shape[-1]), total=len(records), real_cohort=gan_result.get("real_cohort"))
    with fileio.atomic_path(os.path.join(workdir, DATA_CARD_MD)) as tmp, open(tmp, "w") as f:
        f.write(data_card.markdown(card))
    fileio.write_json(os.path.join(workdir, DATA_CARD_JSON), card)
