"""Job "prepare": one cohort at one resolution -> tfds shards and a report.

Preparing is done once per cohort and resolution; every later stage reads the
shards. Re-running a finished preparation loads nothing and returns at once.
"""

from __future__ import annotations

import os

import jax
import ml_collections
from absl import logging
from jax.experimental import multihost_utils

from medgan import fileio
from medgan.data import builders
from medgan.data.sources import Source


def make_source(data: ml_collections.ConfigDict, source: str | None = None) -> Source:
    """The `Source` named by `source` (default `data.source`), configured by `data`."""
    name = source or data.source
    if name.startswith("phantom_"):
        from medgan.data import phantoms

        return phantoms.PhantomSource(
            name.removeprefix("phantom_"), data.phantom_patients, data.phantom_seed
        )
    if name == "chexpert":
        from medgan.data import chexpert

        return chexpert.CheXpertSource(
            data.root, policy=data.chexpert_policy, to_square=data.to_square
        )
    if name == "rsna_ich":
        from medgan.data import rsna_ich

        return rsna_ich.RsnaIchSource(data.root, windows=tuple(data.rsna_windows))
    raise ValueError(f"config.data.source={name!r}: no such source")


def prepared_dir(data: ml_collections.ConfigDict, workdir: str) -> str:
    """Where prepared shards live: `data.prepared_dir`, else <workdir>/prepared."""
    return data.prepared_dir or os.path.join(workdir, "prepared")


def prepare_cohort(
    data: ml_collections.ConfigDict, workdir: str, source: str | None = None
) -> builders.PreparedDataset:
    """Prepares (once) the cohort `source` at `data.resolution` and logs its counts.

    In a multi-process job process 0 builds while the others wait at a barrier,
    then find the finished dataset (two concurrent builds would race on tfds's
    final rename). `prepared_dir` must be a file system every process sees.
    """
    directory = prepared_dir(data, workdir)
    cohort = make_source(data, source)
    if jax.process_count() > 1:
        if jax.process_index() == 0:
            builders.prepare(cohort, data.resolution, directory)
        multihost_utils.sync_global_devices(f"prepare {cohort.name} {data.resolution}px")
    prepared = builders.prepare(cohort, data.resolution, directory)
    logging.info(
        "%s: %d images written, %d skipped (report: %s)",
        prepared.name,
        prepared.num_written,
        prepared.num_skipped,
        os.path.join(prepared.dataset_dir, builders.REPORT_FILE),
    )
    return prepared


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    prepared = prepare_cohort(config.data, workdir)
    result = {
        "dataset": prepared.name,
        "dataset_dir": prepared.dataset_dir,
        "report": os.path.join(prepared.dataset_dir, builders.REPORT_FILE),
        "resolution": prepared.resolution,
        "channels": prepared.channels,
        "class_names": list(prepared.class_names),
        "images_written": prepared.num_written,
        "images_skipped": prepared.num_skipped,
    }
    fileio.write_json(os.path.join(workdir, "result.json"), result)
    print(f"Prepared {prepared.name}: {prepared.num_written} images, {prepared.num_skipped} skipped")
    print(f"  shards: {prepared.dataset_dir}")
    print(f"  report: {result['report']}")
    return result
