"""A reader study of benchmark points: the page drawn from their images, and returned answer sheets as tables.

`write_study` takes finished benchmark points (one per resolution, say the
points of a resolution sweep) and draws from each `pairs` real **test**
images and as many synthetic images of the same label combinations
(`eval/reader_study.draw_pairs`), so neither the label mix nor the split
gives the source away. The images of all points are shuffled together under
anonymous names into one offline HTML page; the answer key, which says where
each image came from, is written apart from it. `score` reads the key and any
number of returned sheets and writes the scores (`scores.json`, `scores.md`);
`main` is its command line (`launch/score_readers.py`).

Images are shown as prepared (the classifiers' input). A cohort with several
CT windows as channels is shown in its first window (channel 0), in grey.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Sequence

import numpy as np

from medgan import configuration, fileio, report_format as fmt, visualize
from medgan.data import builders, cohorts, folds
from medgan.eval import reader_study
from medgan.workdir import MANIFEST_FILE, RESULT_FILE

PAGE_FILE = "reader_study.html"  # send this to readers
KEY_FILE = "answer_key.csv"  # keep this
SCORES_JSON = "scores.json"
SCORES_MD = "scores.md"
SYNTHETIC_STAGE = "synthetic"  # the benchmark point's synthesize directory


@dataclasses.dataclass(frozen=True)
class PointImages:
    """What a reader study needs of one benchmark point: its real test split and its synthetic cohort."""

    point: str
    resolution: int
    source: str
    real_dir: str
    real_ids: tuple[str, ...]  # the test split: what the page shows
    real_labels: np.ndarray  # [N, K] multi-hot, in real_ids order
    real_train_ids: tuple[str, ...]  # the training split: what a simulated reader learns from
    synthetic_dir: str
    synthetic_ids: tuple[str, ...]
    synthetic_labels: np.ndarray  # [M, K]
    class_names: tuple[str, ...]


def point_images(point: str) -> PointImages:
    """The real test split and the synthetic cohort of a finished benchmark point (`point`: its work directory).

    Raises FileNotFoundError naming the point when it has no results.json (it
    has not finished) or lacks the stage directories a reader study reads.
    """
    result_path = os.path.join(point, RESULT_FILE)
    if not os.path.exists(result_path):
        raise FileNotFoundError(f"{point}: no {RESULT_FILE}; a reader study needs a finished benchmark point")
    benchmark = fileio.read_json(result_path).get("configs", {}).get("benchmark")
    if not benchmark or "data" not in benchmark:
        raise ValueError(f"{result_path}: not a benchmark point's result (no configs.benchmark.data)")
    data = configuration.data_config()
    for key, value in benchmark["data"].items():
        data[key] = tuple(value) if isinstance(value, list) else value
    prepared = cohorts.prepare_cohort(data, point)  # finds the point's finished preparation
    fold = folds.read_manifest(os.path.join(point, MANIFEST_FILE))
    synthetic = cohorts.training_data(os.path.join(point, SYNTHETIC_STAGE), prepared, fold)
    synthetic_ids = tuple(synthetic.train_ids) + tuple(synthetic.val_ids)
    return PointImages(
        point=point, resolution=prepared.resolution, source=str(data.source),
        real_dir=prepared.dataset_dir, real_ids=tuple(fold.ids["test"]),
        real_labels=_labels(prepared.dataset_dir, fold.ids["test"]), real_train_ids=tuple(fold.ids["train"]),
        synthetic_dir=synthetic.dataset_dir, synthetic_ids=synthetic_ids,
        synthetic_labels=_labels(synthetic.dataset_dir, synthetic_ids),
        class_names=tuple(prepared.class_names),
    )


def _labels(dataset_dir: str, ids: Sequence[str]) -> np.ndarray:
    by_id = {record.image_id: record.labels for record in builders.read_index(dataset_dir)}
    return np.array([by_id[i] for i in ids], np.float32)


def draw_items(images: PointImages, pairs: int, seed: int) -> list[reader_study.ReaderItem]:
    """2 * `pairs` items of one point: label-matched real test and synthetic images, PNG-encoded, not yet shuffled."""
    drawn = reader_study.draw_pairs(images.real_labels, images.synthetic_labels, pairs, seed=seed)
    chosen = {
        "real": (images.real_dir, [images.real_ids[r] for r, _ in drawn], [images.real_labels[r] for r, _ in drawn]),
        "synthetic": (images.synthetic_dir, [images.synthetic_ids[s] for _, s in drawn],
                      [images.synthetic_labels[s] for _, s in drawn]),
    }
    items = []
    for source, (dataset_dir, ids, labels) in chosen.items():
        pixels = visualize.images_by_id(dataset_dir, ids)
        for image_id, row in zip(ids, labels):
            names = [name for name, bit in zip(images.class_names, row) if bit > 0.5]
            items.append(reader_study.ReaderItem(
                name=image_id, png=reader_study.png_bytes(pixels[image_id][..., :1]), source=source,
                resolution=images.resolution, labels="+".join(names) or "(none)",
                point=os.path.abspath(images.point), image_id=image_id))
    return items


def write_study(points: Sequence[str], pairs: int, seed: int, page_dir: str, key_dir: str, *, study: str,
                title: str, instructions: str) -> dict:
    """Draws from every point, writes the page into `page_dir` and the key into `key_dir`; returns what it wrote.

    Two points at one resolution are an error: scores are given per
    resolution, and the key could not tell their readers' results apart.
    """
    per_point = [point_images(point) for point in points]
    seen: dict[int, str] = {}
    for images in per_point:
        if images.resolution in seen:
            raise ValueError(f"{images.point} and {seen[images.resolution]} are both at {images.resolution} px; "
                             "a reader study takes one point per resolution")
        seen[images.resolution] = images.point
    items = [item for n, images in enumerate(per_point) for item in draw_items(images, pairs, seed + n)]
    items = reader_study.anonymise(items, seed=seed)
    resolutions = sorted(seen)
    sources = sorted({images.source for images in per_point})
    instructions = instructions or (
        f"Images of {', '.join(sources)} at {', '.join(map(str, resolutions))} px, shown enlarged. "
        "Some are real patients' images, the others were generated by a GAN.")
    page, key = os.path.join(page_dir, PAGE_FILE), os.path.join(key_dir, KEY_FILE)
    os.makedirs(page_dir, exist_ok=True)
    os.makedirs(key_dir, exist_ok=True)
    reader_study.write_key(key, items)
    reader_study.write_page(page, items, study=study, title=title, instructions=instructions)
    return {
        "study": study,
        "page": page,
        "key": key,
        "images": len(items),
        "per_resolution": {str(images.resolution): {"point": os.path.abspath(images.point), "pairs": pairs}
                           for images in per_point},
        "page_bytes": os.path.getsize(page),
    }


def _finite(value):
    """NaN (an undefined score) as None, so the JSON is strict and the Markdown prints MISSING."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def markdown(scores: dict) -> list[str]:
    """The scores as people read them: per reader and resolution, the mean over readers, and agreement."""
    rows = scores["readers"]
    lines = ["## Reader study: can readers tell synthetic images from real ones?", "",
             "Accuracy 0.5 is guessing. The 95% interval is Wilson's; p is the two-sided binomial test against 0.5; "
             "AUC ranks the answers signed by confidence (synthetic +, real −).", ""]
    lines += fmt.markdown_table(
        ("reader", "resolution", "answered", "skipped", "correct", "accuracy", "95% CI", "p", "AUC"),
        [(r["reader"], str(r["resolution"]), str(r["answered"]), str(r["skipped"]), str(r["correct"]),
          fmt.number(r["accuracy"]), fmt.interval(r["wilson_low"], r["wilson_high"]), fmt.p_value(r["p_value"]),
          fmt.number(r["auc"])) for r in rows], align="llrrrrlrr")
    by_resolution: dict[str, list[float]] = {}
    for r in rows:
        if r["accuracy"] is not None:
            by_resolution.setdefault(str(r["resolution"]), []).append(r["accuracy"])
    if len({r["reader"] for r in rows}) > 1:
        lines += ["", "Mean accuracy over readers (each reader counts once):", ""]
        lines += fmt.markdown_table(("resolution", "readers", "mean accuracy", "lowest", "highest"), [
            (res, str(len(acc)), fmt.number(float(np.mean(acc))), fmt.number(min(acc)), fmt.number(max(acc)))
            for res, acc in by_resolution.items()], align="lrrrr")
    agreement = scores["agreement"]
    if agreement["pairs"]:
        lines += ["", "Agreement between readers (images both answered):", ""]
        lines += fmt.markdown_table(("readers", "images", "agreement", "Cohen's κ"), [
            (" / ".join(p["readers"]), str(p["images"]), fmt.number(p["agreement"]), fmt.number(p["cohen_kappa"]))
            for p in agreement["pairs"]], align="lrrr")
        lines += ["", f"Fleiss' κ over the {agreement['fleiss_images']} images every reader answered: "
                      f"{fmt.number(agreement['fleiss_kappa'])}."]
    return lines


def score(key_path: str, sheets: Sequence[str], out_dir: str) -> dict:
    """Scores `sheets` against the key; writes scores.json and scores.md into `out_dir`; returns the scores."""
    if not sheets:
        raise ValueError("no answer sheets given")
    scores = _finite(reader_study.score_answers(reader_study.read_key(key_path), sheets))
    scores = {"key": os.path.abspath(key_path), "sheets": [os.path.abspath(s) for s in sheets], **scores}
    os.makedirs(out_dir, exist_ok=True)
    with fileio.atomic_path(os.path.join(out_dir, SCORES_MD)) as tmp, open(tmp, "w") as f:
        f.write("\n".join(markdown(scores)) + "\n")
    fileio.write_json(os.path.join(out_dir, SCORES_JSON), scores)
    return scores


def main(argv: Sequence[str]) -> int:
    """CLI: `python launch/score_readers.py KEY SHEET... [--out DIR]`; prints the tables and the paths written."""
    import argparse

    parser = argparse.ArgumentParser(prog="launch/score_readers.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("key", help=f"the answer key ({KEY_FILE}) the reader_study job wrote")
    parser.add_argument("sheets", nargs="+", help="answer sheets (CSV) readers downloaded from the page")
    parser.add_argument("--out", help="where to write scores.json and scores.md (default: beside the key)")
    args = parser.parse_args(argv)
    out = args.out or os.path.dirname(os.path.abspath(args.key))
    try:
        scores = score(args.key, args.sheets, out)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(markdown(scores)))
    print("wrote:", os.path.join(out, SCORES_MD), os.path.join(out, SCORES_JSON), sep="\n  ")
    return 0

