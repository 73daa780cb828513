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
import datetime
import os
import shutil
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from medgan import fileio, train_gan, visualize
from medgan.data import builders, folds
from medgan.data.records import ImageRecord
from medgan.train import sharding

DATA_CARD_JSON = "data_card.json"
DATA_CARD_MD = "DATA_CARD.md"
DATASET_DIR = "dataset"  # train_classifier reads <train_data>/dataset
LABELS_CSV = "labels.csv"
PREVIEW = "preview.png"
SPLITS = ("train", "val")


class GeneratedSource:
    """A `Source` (medgan.data.sources) over images already in memory: uint8 [N, R, R, C]."""

    name = "synthetic"

    def __init__(self, class_names: Sequence[str], records: Sequence[ImageRecord], images: np.ndarray,
                 generator_sha256: str, seed: int):
        if len(records) != len(images):
            raise ValueError(f"{len(records)} records but {len(images)} images")
        self.class_names = tuple(class_names)
        self.channels = int(images.shape[-1])
        self.generator_sha256 = generator_sha256  # with the seed: the shards' fingerprint
        self.seed = seed
        self._records = list(records)
        self._row = {r.image_id: i for i, r in enumerate(records)}
        self._images = images

    def index(self) -> tuple[list[ImageRecord], dict[str, int]]:
        return list(self._records), {}

    def load(self, record: ImageRecord, resolution: int) -> tuple[np.ndarray, str]:
        image = self._images[self._row[record.image_id]]
        if image.shape[0] != resolution:
            raise ValueError(f"{record.image_id}: generated at {image.shape[0]} px, asked for {resolution} px")
        return image, record.patient_id


def counts_per_combination(fold: folds.Fold, per_combination: int) -> dict[str, list[int]]:
    """Images to generate per split and combination: the real train/val counts, or N split like the fold."""
    if per_combination == 0:
        return {split: list(fold.counts[split]) for split in SPLITS}
    train_fraction, val_fraction = fold.fractions[0], fold.fractions[1]
    val = int(round(per_combination * val_fraction / (train_fraction + val_fraction)))
    val = min(max(val, 1), per_combination - 1) if per_combination > 1 else 0
    k = len(fold.combinations)
    return {"train": [per_combination - val] * k, "val": [val] * k}


def plan(fold: folds.Fold, counts: dict[str, list[int]]) -> tuple[list[ImageRecord], list[str]]:
    """The records to generate (ids, labels) and each one's split, combination by combination."""
    records, splits = [], []
    for c, combination in enumerate(fold.combinations):
        serial = 0
        for split in SPLITS:
            for _ in range(counts[split][c]):
                image_id = f"synthetic-c{c:02d}-{serial:06d}"
                records.append(ImageRecord(image_id, image_id, tuple(int(x) for x in combination)))
                splits.append(split)
                serial += 1
    return records, splits


def generate(gan_dir: str, records: Sequence[ImageRecord], *, seed: int, global_batch_size: int, mesh):
    """(uint8 [N, R, R, C] images for `records` (their labels), train_gan results.json) of `gan_dir`'s EMA generator."""
    spec, params, gan_result = train_gan.load_generator(gan_dir, mesh)
    labels = np.array([r.labels for r in records], np.float32)
    z = train_gan.latents(seed, len(records), spec.latent_dim)
    sampler = train_gan.Sampler(mesh, global_batch_size)
    images = [
        visualize.to_uint8(multihost_utils.process_allgather(jnp.clip(batch, -1.0, 1.0), tiled=True)[mask])
        for batch, mask in sampler(spec, params, z, labels, jax.random.key(seed))
    ]
    return np.concatenate(images), gan_result


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    card_path = os.path.join(workdir, DATA_CARD_JSON)
    if os.path.exists(card_path):
        card = fileio.read_json(card_path)
        print(f"{card_path} exists: synthetic dataset already written ({card['counts']['total']} images)")
        return card
    cfg = config.synthesize
    sharding.initialize_distributed(config.distributed)
    mesh = sharding.make_mesh()
    gan_result_path = os.path.join(cfg.generator, train_gan.RESULT_FILE)
    if not os.path.exists(gan_result_path):
        raise FileNotFoundError(f"config.synthesize.generator={cfg.generator!r}: no {train_gan.RESULT_FILE} there "
                                "(expected the work directory of a finished train_gan run)")
    gan_result = fileio.read_json(gan_result_path)
    fold = folds.read_manifest(gan_result["fold_manifest"])
    counts = counts_per_combination(fold, cfg.per_combination)
    records, splits = plan(fold, counts)
    images, gan_result = generate(cfg.generator, records, seed=config.seed,
                                  global_batch_size=cfg.global_batch_size, mesh=mesh)

    staging = os.path.join(workdir, ".staging")
    if jax.process_index() == 0:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_unfinished(workdir)
        source = GeneratedSource(fold.class_names, records, images, gan_result["generator_sha256"], config.seed)
        prepared = builders.prepare(source, images.shape[1], staging)
        os.replace(prepared.dataset_dir, os.path.join(workdir, DATASET_DIR))
        shutil.rmtree(staging)
        _write_outputs(workdir, config, fold, records, splits, images, gan_result, prepared.name, counts)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("synthesize: dataset written")
    card = fileio.read_json(card_path)
    if jax.process_index() == 0:
        print(f"synthetic dataset: {card['counts']['total']} images of {len(fold.combinations)} label combinations")
        print(f"  dataset:   {os.path.join(workdir, DATASET_DIR)}")
        print(f"  preview:   {os.path.join(workdir, PREVIEW)}")
        print(f"  data card: {os.path.join(workdir, DATA_CARD_MD)}")
    return card


def _remove_unfinished(workdir: str) -> None:
    """Deletes what an interrupted earlier run left (it never reached data_card.json)."""
    for name in (DATASET_DIR, "manifest.json", LABELS_CSV, PREVIEW, DATA_CARD_MD):
        path = os.path.join(workdir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def _write_outputs(workdir, config, fold, records, splits, images, gan_result, dataset_name, counts) -> dict:
    class_names = fold.class_names
    ids = {split: tuple(sorted(r.image_id for r, s in zip(records, splits) if s == split)) for split in SPLITS}
    totals = [counts["train"][c] + counts["val"][c] for c in range(len(fold.combinations))]
    synthetic_fold = folds.Fold(
        dataset=dataset_name, class_names=class_names, combinations=fold.combinations,
        ids={**ids, "test": ()}, counts={**counts, "test": [0] * len(totals)}, available=tuple(totals),
        num_combinations=len(fold.combinations), per_combination=max(totals), fractions=fold.fractions,
        seed=config.seed,
    )
    folds.write_manifest(synthetic_fold, os.path.join(workdir, "manifest.json"))

    with fileio.atomic_path(os.path.join(workdir, LABELS_CSV)) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "split", *class_names])
        for record, split in zip(records, splits):
            writer.writerow([record.image_id, split, *record.labels])

    shown, first = 8, {}
    for i, record in enumerate(records):
        first.setdefault(record.labels, []).append(i)
    rows = [i for combination in fold.combinations for i in first[tuple(combination)][:shown]]
    visualize.save_labelled_grid(
        os.path.join(workdir, PREVIEW), images[rows],
        [visualize.caption(np.array(records[i].labels), class_names) for i in rows],
        columns=shown, title=f"synthetic {gan_result['model']['name']} samples, one row per label combination",
    )

    card = {
        "dataset": dataset_name,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "generator": {
            "model": gan_result["model"],
            "config": gan_result["config"],
            "checkpoint_sha256": gan_result["generator_sha256"],
            "steps": gan_result["steps"],
            "selected_step": gan_result["selected_step"],
            "fd": gan_result["best_fd"],
            "trained_on": {"dataset": gan_result["dataset"], "train_images": gan_result["train_images"]},
        },
        "seed": config.seed,
        "resolution": int(images.shape[1]),
        "channels": int(images.shape[-1]),
        "class_names": list(class_names),
        "counts": {
            "total": len(records),
            "per_combination": [
                {"names": list(fold.combination_names(c)), "multi_hot": list(c),
                 "train": counts["train"][i], "val": counts["val"][i]}
                for i, c in enumerate(fold.combinations)
            ],
        },
        "software": software_versions(),
        # The memorisation audit (nearest real neighbours) is a later stage; it appends itself here.
        "audits": [],
        "real_metadata_copied": False,
    }
    with fileio.atomic_path(os.path.join(workdir, DATA_CARD_MD)) as tmp, open(tmp, "w") as f:
        f.write(_data_card_markdown(card))
    fileio.write_json(os.path.join(workdir, DATA_CARD_JSON), card)
    return card


def software_versions() -> dict[str, str]:
    """Installed versions of medgan and the libraries its results depend on."""
    import importlib.metadata

    names = ("medgan", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "numpy")
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _data_card_markdown(card: dict) -> str:
    g = card["generator"]
    lines = [
        f"# Synthetic dataset `{card['dataset']}`",
        "",
        f"{card['counts']['total']} synthetic images, {card['resolution']} px, {card['channels']} channel(s), "
        f"created {card['created_utc']} by medgan's `synthesize` job (seed {card['seed']}).",
        "",
        "Every image was sampled from a generative model; none is a patient's image. Image ids are synthetic, "
        "each image is its own \"patient\", and no metadata of any real file was copied.",
        "",
        "## Generator",
        "",
        f"- model: {g['model']['name']} at {g['model']['resolution']} px "
        f"(latent {g['model']['latent_dim']}, widths fmap_base={g['model']['fmap_base']}, "
        f"fmap_max={g['model']['fmap_max']})",
        f"- trained on: `{g['trained_on']['dataset']}`, {g['trained_on']['train_images']} real training images",
        f"- steps: {g['steps']}, EMA weights of step {g['selected_step']}"
        + (f" (lowest Fréchet distance, {g['fd']:.2f})" if g["fd"] is not None else ""),
        f"- generator weights SHA-256: `{g['checkpoint_sha256']}`",
        "",
        "## Label combinations",
        "",
        "| findings | train | val |",
        "|---|---:|---:|",
    ]
    for entry in card["counts"]["per_combination"]:
        lines.append(f"| {' + '.join(entry['names']) or '(none)'} | {entry['train']} | {entry['val']} |")
    lines += [
        "",
        "## Audits",
        "",
        ("\n".join(f"- {a}" for a in card["audits"]) if card["audits"]
         else "None yet: run the memorisation audit before sharing this dataset outside your institution."),
        "",
        "## Software",
        "",
        ", ".join(f"{k} {v}" for k, v in card["software"].items()),
        "",
    ]
    return "\n".join(lines)
