"""Job "prepare": one cohort at one resolution -> tfds shards and a report.

Preparing is done once per cohort and resolution; every later stage reads the
shards. Re-running a finished preparation loads nothing and returns at once.
"""

from __future__ import annotations

import os

import ml_collections

from medgan import fileio
from medgan.data import builders, cohorts
from medgan.workdir import RESULT_FILE


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    prepared = cohorts.prepare_cohort(config.data, workdir)
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
    fileio.write_json(os.path.join(workdir, RESULT_FILE), result)
    print(f"Prepared {prepared.name}: {prepared.num_written} images; {cohorts.describe_losses(prepared)}")
    print(f"  shards: {prepared.dataset_dir}")
    print(f"  report: {result['report']}")
    return result
