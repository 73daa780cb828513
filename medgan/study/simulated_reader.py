"""A simulated reader: a classifier trained to tell a point's synthetic images from its real ones.

A classifier two-sample test (Lopez-Paz & Oquab, "Revisiting classifier
two-sample tests", ICLR 2017): train a classifier on samples of two
distributions; if it separates held-out samples better than chance, the
distributions differ. Here the held-out samples are exactly the images of a
reader-study page, and the classifier answers the page like a reader: an
answer sheet (real / synthetic, confidence 1-5) that `readers.score` scores
as it scores a radiologist's (accuracy, Wilson CI, binomial p, AUC).

What it says and what it does not: the classifier sees what the page shows
(the first channel, quantised to 8 bits) and learns from many more images
than a reader, so a classifier at chance is strong evidence that the page
does not give the source away *by its pixels*, and a classifier well above
chance shows a difference a reader could learn to see. It does not replace
radiologists: it finds any difference (a noise texture, a grid from
upsampling) whether or not it looks unnatural, and it knows nothing of
anatomy or of what a finding should look like.

Per point (one resolution), the classifier trains on the point's real
**training** split against its synthetic images that are not on the page,
both capped at `max_per_source`; a tenth of each pool is held out, and the
classifier's AUC on it is reported beside the page's score as a check with
more images.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence

import numpy as np

from medgan import fileio, sharding, visualize
from medgan.eval import auc, reader_study
from medgan.study import readers
from medgan.train import augment, classifier_step, loop

READER_NAME = "classifier (two-sample test)"
SHEET_FILE = "answers_classifier.csv"
HELD_OUT_FRACTION = 0.1


def answers_of(p_synthetic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(answers [N] "real"/"synthetic", confidences [N] 1-5) of probabilities [N] that an image is synthetic.

    The answer is synthetic from p = 0.5 up; the confidence grows with the
    distance from 0.5 in five equal steps (|2p - 1| in [0, 0.2) -> 1, ...,
    [0.8, 1] -> 5), so the confidence-signed answers rank like p for the AUC.
    """
    p = np.asarray(p_synthetic, np.float64)
    if p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError("p_synthetic: probabilities in [0, 1], one per image")
    answers = np.where(p >= 0.5, reader_study.ANSWERS[1], reader_study.ANSWERS[0])
    levels = reader_study.CONFIDENCE_LEVELS
    confidences = 1 + np.minimum(levels - 1, np.floor(np.abs(2 * p - 1) * levels)).astype(np.int64)
    return answers, confidences


def two_sample_scores(real: np.ndarray, synthetic: np.ndarray, queries: Sequence[np.ndarray], *, model: str,
                      steps: int, global_batch_size: int, learning_rate: float, seed: int, workdir: str,
                      desc: str = "") -> list[np.ndarray]:
    """P(synthetic) [Q_i] of each query set, from a classifier trained on real [N, R, R, 1] vs synthetic [M, R, R, 1].

    Images are float32 in [-1, 1]. Batches draw real and synthetic with
    equal probability (`train/augment.batches` with synthetic as the positive
    class); the run checkpoints into `workdir` and resumes from it.
    """
    if len(real) == 0 or len(synthetic) == 0:
        raise ValueError(f"a two-sample test needs both samples; got {len(real)} real, {len(synthetic)} synthetic")
    mesh = sharding.make_mesh()
    _, state, step_key = classifier_step.binary_classifier(model, real.shape[1], learning_rate, mesh, seed)
    train, evaluate = classifier_step.make_steps(mesh, flip=True)
    pos_weight, step_key = sharding.replicate(np.ones(1, np.float32), mesh), sharding.replicate(step_key, mesh)
    pools = {"positive": synthetic, "negative": real}
    empty = {key: pool[:0] for key, pool in pools.items()}
    outcome = loop.train_loop(
        workdir=workdir, state=state, step_fn=lambda state, b: train(state, b, step_key, pos_weight),
        make_batches=lambda start: augment.batches(pools, empty, p0=0.0, decay=1.0, decay_every=1,
                                                   global_batch_size=global_batch_size, mesh=mesh, seed=seed,
                                                   start_step=start),
        num_steps=steps, checkpoint_every=steps, log_every=max(1, steps // 4), progress_desc=desc)
    return [augment.score_arrays(evaluate, outcome.state, q, mesh, global_batch_size) for q in queries]


def _model_images(dataset_dir: str, ids: Sequence[str]) -> np.ndarray:
    """[N, R, R, 1] float32 in [-1, 1]: the first channel of `ids`, 8-bit as on the page."""
    by_id = visualize.images_by_id(dataset_dir, list(ids))
    return visualize.from_uint8(np.stack([by_id[i][..., :1] for i in ids]))


def _page_images(images: readers.PointImages, rows: Sequence[Mapping[str, str]]) -> np.ndarray:
    """[P, R, R, 1]: the page's images of one point (answer-key rows), in the rows' order."""
    dirs = {"real": images.real_dir, "synthetic": images.synthetic_dir}
    loaded = {}
    for source, dataset_dir in dirs.items():
        ids = [row["image_id"] for row in rows if row["source"] == source]
        if ids:
            loaded[source] = dict(zip(ids, _model_images(dataset_dir, ids)))
    return np.stack([loaded[row["source"]][row["image_id"]] for row in rows])


def _split(ids: Sequence[str], cap: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(training, held-out) ids: at most `cap` of `ids` drawn at random, a tenth of them held out."""
    chosen = [ids[i] for i in rng.permutation(len(ids))[:cap]]
    held = max(1, round(HELD_OUT_FRACTION * len(chosen))) if len(chosen) > 1 else 0
    return chosen[held:], chosen[:held]


def simulate(key_path: str, out_dir: str, *, model: str, steps: int, global_batch_size: int, learning_rate: float,
             max_per_source: int, seed: int) -> dict:
    """Answers every image of the key's page with a classifier per point; writes the sheet and its scores.

    Returns {"sheet", "scores" (readers.score's), "per_resolution": {px:
    {point, train_real, train_synthetic, held_out_auc, held_out_images}}}.
    """
    key = reader_study.read_key(key_path)
    by_point: dict[str, list[str]] = {}
    for name, row in key.items():
        by_point.setdefault(row["point"], []).append(name)
    answers: dict[str, tuple[str, int]] = {}
    per_resolution = {}
    rng = np.random.default_rng(seed)
    for n, (point, names) in enumerate(sorted(by_point.items())):
        images = readers.point_images(point)
        on_page = {key[name]["image_id"] for name in names if key[name]["source"] == "synthetic"}
        unused = [i for i in images.synthetic_ids if i not in on_page]
        real_train, real_held = _split(images.real_train_ids, max_per_source, rng)
        synthetic_train, synthetic_held = _split(unused, max_per_source, rng)
        if not real_held or not synthetic_held:
            raise ValueError(f"{point}: a simulated reader needs at least 2 real training images and 2 synthetic "
                             f"images not on the page; it has {len(images.real_train_ids)} and {len(unused)}")
        page_images = _page_images(images, [key[name] for name in names])
        held = np.concatenate([_model_images(images.real_dir, real_held),
                               _model_images(images.synthetic_dir, synthetic_held)])
        page_p, held_p = two_sample_scores(
            _model_images(images.real_dir, real_train), _model_images(images.synthetic_dir, synthetic_train),
            [page_images, held], model=model, steps=steps, global_batch_size=global_batch_size,
            learning_rate=learning_rate, seed=seed + n,
            workdir=os.path.join(out_dir, f"classifier_{images.resolution}px"),
            desc=f"simulated reader, {images.resolution} px")
        said, confidence = answers_of(np.clip(page_p, 0.0, 1.0))
        answers.update({name: (a, int(c)) for name, a, c in zip(names, said, confidence)})
        held_truth = np.r_[np.zeros(len(real_held)), np.ones(len(synthetic_held))]
        per_resolution[str(images.resolution)] = {
            "point": point, "train_real": len(real_train), "train_synthetic": len(synthetic_train),
            "held_out_images": len(held_truth), "held_out_auc": auc.roc_auc(held_truth, held_p)}
    sheet = os.path.join(out_dir, SHEET_FILE)
    write_sheet(sheet, answers)
    scores = readers.score(key_path, [sheet], out_dir)
    return {"sheet": sheet, "scores": scores, "per_resolution": per_resolution}


def write_sheet(path: str, answers: Mapping[str, tuple[str, int]]) -> None:
    """An answer sheet in the page's format ({image: (answer, confidence)}), written atomically."""
    with fileio.atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(reader_study.ANSWER_COLUMNS)
        for image, (answer, confidence) in sorted(answers.items()):
            writer.writerow([READER_NAME, image, answer, confidence, ""])


def summary(result: dict) -> dict[str, str]:
    """{resolution: the classifier's page accuracy with its CI and p, and the held-out AUC} for the console."""
    lines = {}
    for row in result["scores"]["readers"]:
        if row["resolution"] == "all" and len(result["per_resolution"]) > 1:
            continue
        res = str(row["resolution"]) if row["resolution"] != "all" else next(iter(result["per_resolution"]))
        held = result["per_resolution"][res]["held_out_auc"]
        lines[f"{res} px"] = (f"accuracy {row['accuracy']:.3f} [{row['wilson_low']:.3f}, {row['wilson_high']:.3f}]"
                              f" on {row['answered']} page images, p {row['p_value']:.2g}; held-out AUC {held:.3f}")
    return lines
