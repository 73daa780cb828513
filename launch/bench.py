"""Performance harness. Results go to BENCHMARKS.md; targets live here, not in tests.

  python launch/bench.py input [--images 1024] [--repeats 5] [--workdir /tmp/medgan-bench]

`input`: images/s of the streaming pipeline reading prepared shards at 256 and
512 px, against decoding the source files (CheXpert-layout JPEGs, RSNA-layout
DICOMs) directly with the same loaders the prepare stage uses. Every figure is
the median of `--repeats` timed runs in one process, so ratios between rows
are meaningful on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

TARGETS = {256: 1000.0, 512: 400.0}  # img/s from prepared shards on 2 cores (issue 2)


def median_rate(run_once: Callable[[], int], repeats: int) -> tuple[float, list[float]]:
    """Median images/s of `run_once` (which returns how many images it produced)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        count = run_once()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates), rates


def _pipeline_rate(dataset_dir, ids, batch_size, batches, repeats, cache) -> float:
    from medgan.data import pipeline

    ds = pipeline.train_dataset(dataset_dir, ids, batch_size=batch_size, seed=0, cache=cache)
    iterator = pipeline.numpy_batches(ds)
    for _ in range(batches):  # warm-up: fills the cache and tf.data's autotuner
        next(iterator)

    def run_once():
        for _ in range(batches):
            next(iterator)
        return batches * batch_size

    return median_rate(run_once, repeats)[0]


def _global_rate(dataset_dir, ids, batch_size, batches, repeats) -> float:
    """Pipeline plus assembly into a global jax.Array on this process's devices."""
    import jax

    from medgan.data import pipeline
    from medgan.train import sharding

    mesh = sharding.make_mesh()
    iterator = pipeline.train_batches(dataset_dir, ids, global_batch_size=batch_size, mesh=mesh, seed=0)
    for _ in range(batches):
        jax.block_until_ready(next(iterator))

    def run_once():
        for _ in range(batches):
            jax.block_until_ready(next(iterator)["image"])
        return batches * batch_size

    return median_rate(run_once, repeats)[0]


def _direct_rate(source, records, resolution, repeats) -> float:
    """Decode + resize the source files on a thread pool as wide as the machine."""
    workers = os.cpu_count() or 1

    def run_once():
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for image, _ in pool.map(lambda r: source.load(r, resolution), records):
                assert image.shape[0] == resolution
        return len(records)

    return median_rate(run_once, repeats)[0]


def bench_input(args) -> dict:
    from medgan.data import builders, chexpert, phantoms, rsna_ich

    os.makedirs(args.workdir, exist_ok=True)
    # ~2.4 images per phantom patient; ask for enough patients for --images.
    source = phantoms.PhantomSource("chest", num_patients=max(1, args.images * 10 // 24), seed=0)
    rows = []
    for resolution in (256, 512):
        start = time.perf_counter()
        prepared = builders.prepare(source, resolution, os.path.join(args.workdir, "prepared"))
        prepare_seconds = time.perf_counter() - start
        ids = [r.image_id for r in builders.read_index(prepared.dataset_dir)]
        batches = max(1, len(ids) // args.batch)
        row = {
            "resolution": resolution,
            "images": len(ids),
            "target": TARGETS[resolution],
            "shards_cached": _pipeline_rate(
                prepared.dataset_dir, ids, args.batch, batches, args.repeats, cache=True
            ),
            "shards_uncached": _pipeline_rate(
                prepared.dataset_dir, ids, args.batch, batches, args.repeats, cache=False
            ),
            "shards_global_array": _global_rate(
                prepared.dataset_dir, ids, args.batch, batches, args.repeats
            ),
            "prepare_seconds_first_build": prepare_seconds,
        }
        rows.append(row)

    # Source files as a cohort delivers them: CheXpert JPEGs larger than the
    # target (here 1024 px; the real "small" release is ~390 px, the full one
    # ~2800 px) and RSNA's 512 x 512 DICOMs, a share of them compressed.
    records = source.index()[0][: args.direct_images]
    chexpert_root = os.path.join(args.workdir, "chexpert_layout")
    rsna_root = os.path.join(args.workdir, "rsna_layout")
    if not os.path.exists(os.path.join(chexpert_root, "done")):
        phantoms.write_chexpert_layout(chexpert_root, records, resolution=1024, seed=0)
        open(os.path.join(chexpert_root, "done"), "w").close()
    if not os.path.exists(os.path.join(rsna_root, "done")):
        head_records = phantoms.PhantomSource("head_ct", num_patients=len(records), seed=0).index()[0]
        phantoms.write_rsna_layout(rsna_root, head_records[: args.direct_images], resolution=512, seed=0)
        open(os.path.join(rsna_root, "done"), "w").close()
    chexpert_source = chexpert.CheXpertSource(_chexpert_dataset_dir(chexpert_root))
    rsna_source = rsna_ich.RsnaIchSource(rsna_root)
    chexpert_records = chexpert_source.index()[0]
    rsna_records = rsna_source.index()[0]
    for row in rows:
        row["direct_jpeg_1024"] = _direct_rate(chexpert_source, chexpert_records, row["resolution"], args.repeats)
        row["direct_dicom_512"] = _direct_rate(rsna_source, rsna_records, row["resolution"], args.repeats)
    return {"machine": _machine(), "batch": args.batch, "repeats": args.repeats, "rows": rows}


def _chexpert_dataset_dir(root: str) -> str:
    """The folder holding train.csv inside a written CheXpert layout."""
    for dirpath, _, filenames in os.walk(root):
        if "train.csv" in filenames:
            return dirpath
    raise FileNotFoundError(f"no train.csv under {root}")


def _machine() -> dict:
    import jax
    import tensorflow as tf

    return {
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "tensorflow": tf.__version__,
        "devices": [str(d) for d in jax.devices()],
    }


def print_input_table(result: dict) -> None:
    print(f"| px | images | shards, cached | shards, from disk | + global jax.Array | "
          f"JPEG 1024 px direct | DICOM 512 px direct | target |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in result["rows"]:
        print(
            f"| {row['resolution']} | {row['images']} | {row['shards_cached']:.0f} | "
            f"{row['shards_uncached']:.0f} | {row['shards_global_array']:.0f} | "
            f"{row['direct_jpeg_1024']:.0f} | {row['direct_dicom_512']:.0f} | {row['target']:.0f} |"
        )
    print("(images/s, median of", result["repeats"], "runs; batch", result["batch"], ")")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="bench", required=True)
    input_parser = sub.add_parser("input", help="input pipeline images/s")
    input_parser.add_argument("--images", type=int, default=1024, help="images per prepared dataset")
    input_parser.add_argument("--direct-images", type=int, default=256, help="source files decoded directly")
    input_parser.add_argument("--batch", type=int, default=64)
    input_parser.add_argument("--repeats", type=int, default=5)
    input_parser.add_argument("--workdir", default="/tmp/medgan-bench")
    input_parser.add_argument("--out", default="", help="JSON result path (default <workdir>/input.json)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = bench_input(args)
    out = args.out or os.path.join(args.workdir, "input.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print_input_table(result)
    print(f"result: {out}")


if __name__ == "__main__":
    main()
