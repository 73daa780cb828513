"""The mammography study's synthetic patches and its answer: the augmentation table beside the paper's Table 1.

`synthesize_patches` runs trained contextual GANs over real training
patches as the study made its synthetic set (Wu et al. 2020, Sec. 3,
"Synthetic dataset"): a mass or calcification GAN over healthy patches, the
removal GAN over malignant lesion patches; every output is post-processed
(`data/lesions`), and outputs whose lesion is discarded there are not kept
(counted). `augmentation_table` pairs each augmented classifier's test scores
with the baseline's (p0 = 0) on the same real test patches for DeLong's test.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from medgan import fileio, report_format as fmt, visualize
from medgan.data import lesions, mammo_cohort, mammo_patches
from medgan.eval import auc
from medgan.models.contextual import INPUT, LESION, ContextualGenerator, ContextualSpec
from medgan.train import checkpoints, contextual_step
from medgan.workdir import GENERATOR_DIR, RESULT_FILE

# The study's Table 1: test AUC of the cancer classifier by initial synthetic share, and DeLong's p against 0%.
PAPER_TABLE = ((0.0, 0.829, None), (0.10, 0.837, 0.10), (0.25, 0.839, 0.055), (0.50, 0.846, 1e-4),
               (0.75, 0.828, 0.72), (1.0, 0.797, 1e-8))
SCALED_POST_PROCESSING = 256  # the study's 5 px dilation and 10 px smoothing are for 256 px patches


def post_process(out: np.ndarray, lesion: str, patch: int) -> lesions.PostProcessed:
    """The study's post-processing of G's output [B, R, R, 3], its 5 px / 10 px scaled from 256 px patches."""
    scale = patch / SCALED_POST_PROCESSING
    return lesions.post_process(out[..., LESION], out[..., INPUT], negative=lesion == "removal",
                                dilate_px=max(1, round(5 * scale)), smooth_px=10 * scale)


def load_generator(gan_dir: str, mesh) -> tuple[ContextualSpec, dict, str]:
    """(spec, params, lesion) of a finished train_contextual run, params replicated on `mesh`."""
    result = fileio.read_json(os.path.join(gan_dir, RESULT_FILE))
    spec = ContextualSpec(**result["spec"])
    images = jax.ShapeDtypeStruct((1, spec.resolution, spec.resolution, 1), np.float32)
    scalars = jax.ShapeDtypeStruct((1, spec.scalar_count()), np.float32)
    abstract = {"params": jax.eval_shape(ContextualGenerator(spec).init, jax.random.key(0), images, scalars)["params"]}
    params = checkpoints.load_params(os.path.join(gan_dir, GENERATOR_DIR), abstract, mesh)["params"]
    return spec, params, result["lesion"]


def synthesize_patches(gan_dirs: list[str], train: mammo_patches.PatchSet, per_model: int, mesh, *, seed: int,
                       global_batch_size: int, max_rounds: int = 20) -> tuple[mammo_patches.PatchSet, dict]:
    """`per_model` kept synthetic patches from each GAN; returns them and {lesion: {"kept", "made"}}.

    A GAN whose post-processing keeps too few outputs stops after
    `max_rounds` times the batches it would need at a 100% keep rate; the
    shortfall is in the returned counts, not hidden.
    """
    images, masks, kinds, pathologies, sources = [], [], [], [], []
    report = {}
    for gan_dir in gan_dirs:
        spec, params, lesion = load_generator(gan_dir, mesh)
        sample = contextual_step.make_sampler(spec, mesh, global_batch_size)
        roles = mammo_patches.contextual_roles(train, lesion)
        kind = "normal" if lesion == "removal" else lesion
        pathology = "normal" if lesion == "removal" else "malignant"
        kept = made = 0
        rng = np.random.default_rng([seed, len(report)])
        batches = 0
        while kept < per_model and batches < max_rounds * -(-per_model // global_batch_size):
            chosen = rng.choice(roles["base"], global_batch_size)
            base = mammo_cohort.to_model(train.images[chosen])
            out = sample(params, base, jax.random.fold_in(jax.random.key(seed), 1000 * len(report) + batches))
            processed = post_process(out, lesion, spec.resolution)
            batches += 1
            made += global_batch_size
            for n in np.nonzero(processed.kept)[0][: per_model - kept]:
                images.append(visualize.to_uint8(processed.combined[n]))
                masks.append(np.abs(processed.lesion[n]) > 0.05)
                kinds.append(mammo_patches.KINDS.index(kind))
                pathologies.append(mammo_patches.PATHOLOGIES.index(pathology))
                sources.append(str(train.image_ids[chosen[n]]))
                kept += 1
        report[lesion] = {"kept": kept, "made": made, "asked": per_model}
    size = train.images.shape[1]
    return mammo_patches.PatchSet(
        np.stack(images) if images else np.zeros((0, size, size), np.uint8),
        np.stack(masks) if masks else np.zeros((0, size, size), bool),
        np.array(kinds, np.int8), np.array(pathologies, np.int8),
        np.array(["synthetic"] * len(images)), np.array(sources)), report


def cancer_labels(patches: mammo_patches.PatchSet) -> np.ndarray:
    """1 for a malignant lesion patch, 0 for normal tissue and benign lesions (the study's cancer / no cancer)."""
    return (patches.pathology == mammo_patches.PATHOLOGIES.index("malignant")).astype(np.int64)


def augmentation_table(runs: list[dict], scores: dict[float, np.ndarray], labels: np.ndarray,
                       level: float = 0.95) -> list[dict]:
    """One row per initial share p0: test AUC with its CI, and DeLong's paired test against p0 = 0.

    runs: the augment results (their "p0"); scores: {p0: test scores [N]} on
    the same real test patches with `labels` [N].
    """
    if 0.0 not in scores:
        raise ValueError("the table needs the baseline (p0 = 0) among the runs")
    rows = []
    for run in sorted(runs, key=lambda r: r["p0"]):
        p0 = run["p0"]
        value, low, high = auc.auc_confidence_interval(labels, scores[p0], level)
        row = {"p0": p0, "auc": value, "ci_low": low, "ci_high": high, "best_samples": run.get("best_samples"),
               "delta": None, "p_value": None}
        if p0 != 0.0:
            test = auc.delong_paired_test(labels, scores[p0], scores[0.0], level)
            row.update(delta=test["difference"], p_value=test["p_value"])
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> list[str]:
    """Our rows beside the paper's Table 1 (matched by p0)."""
    paper = {p0: (value, p) for p0, value, p in PAPER_TABLE}
    lines = fmt.markdown_table(
        ("initial synthetic share", "test AUC", "95% CI", "vs 0%", "DeLong p", "paper AUC", "paper p"),
        [(f"{r['p0']:.0%} w/ decay" if r["p0"] else "baseline (0%)", fmt.number(r["auc"]),
          fmt.interval(r["ci_low"], r["ci_high"]),
          "" if r["delta"] is None else f"{r['delta']:+.3f}", fmt.p_value(r["p_value"]) if r["p0"] else "-",
          fmt.number(paper.get(r["p0"], (None, None))[0]),
          fmt.p_value(paper[r["p0"]][1]) if r["p0"] in paper and r["p0"] else "-") for r in rows],
        align="lrlrrrr")
    return lines


def classifier_scores(logits_fn, images: np.ndarray, mesh, global_batch_size: int) -> np.ndarray:
    """sigmoid(logits) [N] of images [N, R, R, 1] by a jitted `eval/features.load_logits` function, in order."""
    from medgan import sharding

    if len(images) == 0:
        return np.zeros(0)
    logits = sharding.host_map(logits_fn, images.astype(np.float32), mesh, global_batch_size)[:, 0]
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def lesion_effect(gan_dir: str, logits_fn, test: mammo_patches.PatchSet, mesh, *, seed: int, count: int,
                  global_batch_size: int) -> dict:
    """What a GAN does to the baseline classifier's cancer score on real test patches it edits.

    A mass or calcification GAN paints on normal patches, the removal GAN
    clears malignant lesion patches; only post-processed outputs that kept
    their lesion count. Returns the patches, the kept share, the mean score
    before and after, the share whose score rose, and the images (uint8
    [n, R, R] before and after) for a picture.
    """
    spec, params, lesion = load_generator(gan_dir, mesh)
    sample = contextual_step.make_sampler(spec, mesh, global_batch_size)
    rows = mammo_patches.generator_inputs(test, lesion)
    chosen = np.random.default_rng(seed).choice(rows, min(count, len(rows)), replace=False)
    base = mammo_cohort.to_model(test.images[chosen])
    processed = post_process(sample(params, base, jax.random.key(seed)), lesion, spec.resolution)
    kept = processed.kept
    before = classifier_scores(logits_fn, base[kept], mesh, global_batch_size)
    after = classifier_scores(logits_fn, processed.combined[kept][..., None], mesh, global_batch_size)
    return {"lesion": lesion, "patches": int(len(base)), "kept": int(kept.sum()),
            "mean_before": float(before.mean()) if len(before) else None,
            "mean_after": float(after.mean()) if len(after) else None,
            "rose": float(np.mean(after > before)) if len(before) else None,
            "before_images": visualize.to_uint8(base[kept][..., 0]),
            "after_images": visualize.to_uint8(processed.combined[kept]),
            "before_scores": before, "after_scores": after}
