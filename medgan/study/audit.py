"""The audit of a synthetic cohort against the real fold it was trained on: numbers, pictures, audit.md.

Composes the audit modules of `medgan/eval` in the real-trained judge's
feature space (docs/ARCHITECTURE.md, "Audits"):

* memorisation: each synthetic image's nearest real TRAINING images over
  the search views, flags calibrated on real TEST images, the data-copying
  test; pictures of the flagged and of the closest synthetic images beside
  their nearest training images, and the two distance distributions;
* fidelity: FD, KID, precision / recall, density / coverage of the synthetic
  images against the real training images, beside the same numbers for the
  real test images (what an unseen real sample scores), overall and per
  label combination;
* embedding: t-SNE of real training and synthetic features.

Features are computed once per image set and cached in the audit's work
directory under a fingerprint of the judge and the images.
"""

from __future__ import annotations

import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from medgan import console, fileio, report_format as fmt, sharding, visualize
from medgan.data import folds
from medgan.eval import attribution, embedding, features, fidelity, privacy
from medgan.workdir import RESULT_FILE

MIN_PER_COMBINATION = 10  # fewer images of a label combination: no per-combination fidelity
STRIP_NEIGHBOURS = 4


def shifts_of(text: str) -> tuple[int, ...]:
    """config.audit.shifts "1,2" -> (1, 2); "" -> ()."""
    return tuple(int(s) for s in text.split(",") if s.strip())


def fingerprint(judge_dir: str, dataset_dir: str, ids, views) -> str:
    """What a cached FeatureSet depends on: the judge's result, the images and the views."""
    judge = fileio.read_json(os.path.join(judge_dir, RESULT_FILE))
    content = json.dumps([judge.get("model_config"), judge.get("best_step"), judge.get("test", {}).get("mean_auc"),
                          os.path.abspath(dataset_dir), sorted(ids), list(views)], sort_keys=True, default=str)
    return hashlib.sha256(content.encode()).hexdigest()


def feature_sets(workdir: str, features_fn, mesh, *, judge_dir: str, shifts: tuple[int, ...],
                 global_batch_size: int, images: dict[str, tuple[str, list]]) -> dict[str, features.FeatureSet]:
    """The judge's features of every image set the audit reads, each computed once and cached in `workdir`.

    images: {"train" | "test" | "synthetic": (dataset dir, ids)}. Returns those
    three names (whole images: fidelity and the map) and "<name>_search" (the
    memorisation search's views: training images as they are, test and
    synthetic images through every view of `shifts`). With shifts the search
    sees windows inside a margin, so whole images are a set of their own;
    without, the search's first view is the whole image.
    """
    search_views = {"train": ("as is",)}  # a moved or mirrored copy is found from the synthetic side

    def cached(name, dataset_dir, ids, chosen_shifts, views) -> features.FeatureSet:
        key = fingerprint(judge_dir, dataset_dir, ids, (*views, f"margin {max(chosen_shifts, default=0)}"))
        return features.cached_features(
            os.path.join(workdir, f"features_{name}.npz"), key,
            lambda: features.extract_features(dataset_dir, ids, features_fn, mesh, shifts=chosen_shifts, names=views,
                                              global_batch_size=global_batch_size))

    sets = {}
    with console.Progress(2 * len(images), "audit: the judge's features", unit="image sets") as progress:
        for done, (name, (dataset_dir, ids)) in enumerate(images.items()):
            views = search_views.get(name, tuple(features.view_names(shifts)))
            found = sets[f"{name}_search"] = cached(f"{name}_search", dataset_dir, ids, shifts, views)
            progress.update(2 * done + 1)
            sets[name] = (cached(name, dataset_dir, ids, (), ("as is",)) if shifts else
                          features.FeatureSet(found.image_ids, found.labels, found.views[:1], found.names[:1]))
            progress.update(2 * done + 2)
    return sets


def planted_control(audit: privacy.MemorisationAudit, train_search: features.FeatureSet, train_dir: str,
                    features_fn, mesh, *, copies: int, noise: float, shifts: tuple[int, ...], seed: int,
                    global_batch_size: int, noise_levels: tuple[float, ...] = ()) -> dict:
    """The memorisation audit's positive control (eval/privacy.py): `copies` training images planted as copies.

    The copies move by the largest of `shifts` (0 without shifts) and are
    seen in the synthetic images' views; returns privacy.planted_control's
    counts at noise std `noise` with how the copies were made, and under
    "by_noise" the same counts at each of `noise_levels` (the same images
    and noise draw, scaled): the audit's sensitivity to perturbed copies.
    """
    rows = np.sort(np.random.default_rng(seed).choice(len(train_search.image_ids), min(copies, len(
        train_search.image_ids)), replace=False))
    ids = [str(i) for i in train_search.image_ids[rows]]
    by_id = visualize.images_by_id(train_dir, ids)
    shift = max(shifts, default=0)
    sources = visualize.from_uint8(np.stack([by_id[i] for i in ids]))
    every_view = features.features_of_views(features_fn, features.view_names(shifts), shift)
    by_image = jax.jit(lambda batch: jnp.moveaxis(every_view(batch), 0, 1))  # [B, V, D]: the batch leads

    def counts_at(level: float) -> dict:
        planted = privacy.planted_copies(sources, seed, noise=level, shift=shift)
        views = sharding.host_map(by_image, planted, mesh, global_batch_size)  # [P, V, D]
        return privacy.planted_control(audit, np.moveaxis(views, 1, 0), rows, train_search.features, mesh=mesh)

    counts = {level: counts_at(level) for level in sorted({noise, *noise_levels})}
    by_noise = [{"noise": level, **counts[level]} for level in sorted(set(noise_levels))]
    return {**counts[noise], "noise": noise, "shift": shift, "mirrored": "every other copy", "by_noise": by_noise}


def noise_levels_of(text: str) -> tuple[float, ...]:
    """config.audit.planted_noise_levels "0,0.02" -> (0.0, 0.02); "" -> ()."""
    return tuple(float(s) for s in text.split(",") if s.strip())


def fidelity_numbers(real: np.ndarray, other: np.ndarray, *, k: int, subsets: int, subset_size: int,
                     seed: int) -> dict:
    """FD, KID (mean, std), precision, recall, density, coverage of `other` against `real` (features [N, D])."""
    kid, kid_std = fidelity.kernel_distance(real, other, subsets=subsets, subset_size=subset_size, seed=seed)
    manifold = fidelity.manifold_metrics(real, other, k=k)
    fd = fidelity.frechet_distance(real.mean(0), np.cov(real.T), other.mean(0), np.cov(other.T))
    return {"fd": fd, "kid": kid, "kid_std": kid_std,
            "precision": manifold.precision, "recall": manifold.recall, "density": manifold.density,
            "coverage": manifold.coverage, "images": len(other)}


def fidelity_report(train: features.FeatureSet, test: features.FeatureSet, synthetic: features.FeatureSet,
                    fold: folds.Fold, cfg) -> dict:
    """Synthetic and real-test fidelity against the real training images, overall and per label combination."""
    settings = {"k": cfg.manifold_k, "subsets": cfg.kid_subsets, "subset_size": cfg.kid_subset_size, "seed": 0}
    report = {"overall": {name: fidelity_numbers(train.features, s.features, **settings)
                          for name, s in (("synthetic", synthetic), ("real_test", test))},
              "per_combination": []}
    for combination in fold.combinations:
        rows = [np.flatnonzero(np.all(s.labels == np.asarray(combination, np.float32), axis=1))
                for s in (train, synthetic)]
        entry = {"names": list(fold.combination_names(combination)), "train_images": len(rows[0]),
                 "synthetic_images": len(rows[1])}
        if min(len(r) for r in rows) >= MIN_PER_COMBINATION:
            entry.update(fidelity_numbers(train.features[rows[0]], synthetic.features[rows[1]], **settings))
        report["per_combination"].append(entry)
    return report


def memorisation_figures(audit: privacy.MemorisationAudit, train: features.FeatureSet,
                         synthetic: features.FeatureSet, train_dir: str, synthetic_dir: str, figures_dir: str,
                         rows: int) -> dict:
    """Strips of the flagged and of the closest synthetic images beside their nearest training images, and the
    distance histogram; returns {name: path} and the pixel checks of the pictured candidates."""
    closest = np.argsort(audit.synthetic.nearest, kind="stable")[:rows]
    chosen = {"flagged": audit.flagged[:rows], "closest": closest}
    needed_train = {train.image_ids[i] for q in np.concatenate(list(chosen.values()))
                    for i in audit.synthetic.indices[q, :STRIP_NEIGHBOURS]}
    needed_synthetic = {synthetic.image_ids[q] for q in np.concatenate(list(chosen.values()))}
    train_images = visualize.images_by_id(train_dir, sorted(needed_train)) if needed_train else {}
    synthetic_images = visualize.images_by_id(synthetic_dir, sorted(needed_synthetic)) if needed_synthetic else {}
    paths, pixel = {}, {}
    for name, queries in chosen.items():
        if not len(queries):
            continue
        candidates = audit.synthetic.indices[queries, :STRIP_NEIGHBOURS]
        query_images = np.stack([synthetic_images[synthetic.image_ids[q]] for q in queries])
        neighbour_images = np.stack([[train_images[train.image_ids[i]] for i in row] for row in candidates])
        l2, ssim = privacy.pixel_similarity(visualize.from_uint8(query_images),
                                            visualize.from_uint8(neighbour_images))
        pixel[name] = [{"synthetic": str(synthetic.image_ids[q]),
                        "neighbours": [str(train.image_ids[i]) for i in row],
                        "cosine_distance": [float(d) for d in audit.synthetic.distances[q, :STRIP_NEIGHBOURS]],
                        "l2": [float(v) for v in l2_row], "ssim": [float(v) for v in ssim_row]}
                       for q, row, l2_row, ssim_row in zip(queries, candidates, l2, ssim)]
        path = os.path.join(figures_dir, f"nearest_{name}.png")
        visualize.save_neighbour_strips(
            path, query_images, neighbour_images,
            [f"synthetic\n{synthetic.image_ids[q]}" for q in queries],
            [[f"train {train.image_ids[i]}\n1 - cos {d:.4f}, SSIM {s:.2f}" for i, d, s in
              zip(row, audit.synthetic.distances[q, :STRIP_NEIGHBOURS], ssim_row)]
             for q, row, ssim_row in zip(queries, candidates, ssim)],
            title=f"{'Flagged' if name == 'flagged' else 'Closest'} synthetic images (framed) and their nearest "
                  "real training images",
        )
        paths[f"nearest_{name}"] = path
    path = os.path.join(figures_dir, "memorisation_distances.png")
    visualize.save_distance_histogram(path, {"synthetic -> train": audit.synthetic.nearest,
                                             "real test -> train": audit.test.nearest}, audit.threshold,
                                      f"flag threshold at a {audit.false_flag_rate:.1%} false-flag rate")
    paths["memorisation_distances"] = path
    return {"figures": paths, "pixel_checks": pixel}


def embedding_figure(train: features.FeatureSet, synthetic: features.FeatureSet, fold: folds.Fold, path: str,
                     points: int, seed: int) -> dict:
    """t-SNE of at most `points` real training and `points` synthetic images; returns the mixing statistic."""
    rng = np.random.default_rng(seed)
    parts = [s.subset(np.sort(rng.permutation(len(s.image_ids))[:points])) for s in (train, synthetic)]
    coordinates = embedding.embed_2d(np.concatenate([p.features for p in parts]), seed=seed)
    is_synthetic = np.repeat([False, True], [len(p.image_ids) for p in parts])
    labels = np.concatenate([p.labels for p in parts])
    groups = [" + ".join(n for n, on in zip(fold.class_names, row > 0.5) if on) or "(none)" for row in labels]
    visualize.save_embedding(path, coordinates, is_synthetic, groups,
                             title="t-SNE of the judge's features: real training and synthetic images")
    return {"points": int(len(coordinates)),
            "neighbour_agreement": embedding.neighbour_agreement(coordinates, is_synthetic)}


def occlusion_report(logits: dict, images: np.ndarray, labels: np.ndarray, class_names, regions, *, patch: int,
                     path: str, draw: bool) -> dict:
    """Occlusion maps of each classifier on the same real test images, their agreement, and where they look.

    logits {"real": fn, "synthetic": fn}; images [N, H, W, C] in [-1, 1],
    labels [N, K]; regions [N, K, H, W] bool where each finding is drawn
    (phantoms) or None. Per class with positives: the correlation of the two
    maps (mean over images) and, with regions, each classifier's share of
    positive attribution inside the finding (mean over positive images).
    Runs on every process (the classifiers' weights span the mesh); with
    `draw` (process 0) `path` gets the picture of the mean maps.
    """
    maps = {name: attribution.occlusion_maps(fn, images, labels, patch=patch, stride=max(1, patch // 2))
            for name, fn in logits.items()}
    correlation = attribution.map_correlation(maps["real"], maps["synthetic"])
    rows = []
    shown = [k for k in range(len(class_names)) if labels[:, k].sum() > 0]
    for k in shown:
        positive = labels[:, k] > 0.5
        row = {"class": class_names[k], "images": int(positive.sum()),
               "correlation": None if np.isnan(correlation[k]) else float(correlation[k])}
        if regions is not None and regions[positive, k].any():
            for name, m in maps.items():
                share = attribution.share_inside(m[positive, ..., k], regions[positive, k])
                row[f"share_inside_{name}"] = None if np.all(np.isnan(share)) else float(np.nanmean(share))
                row["region_share_of_image"] = float(regions[positive, k].mean())
        rows.append(row)
    if draw:
        examples = np.stack([images[np.flatnonzero(labels[:, k] > 0.5)[0]] for k in shown])
        mean_maps = {name: np.stack([m[labels[:, k] > 0.5, ..., k].mean(axis=0) for k in shown])
                     for name, m in maps.items()}
        visualize.save_occlusion_maps(path, examples, mean_maps, [class_names[k] for k in shown],
                                      title="Mean occlusion maps on real test images with each class")
    return {"classes": rows, "patch": patch, "images": int(len(images))}


def _planted_line(planted: dict | None) -> list[str]:
    """The positive control's line of the memorisation section (none without a control)."""
    if not planted:
        return []
    lines = [f"- planted-copy control: **{planted['flagged']} of {planted['copies']}** training images planted as "
             f"copies ({planted['mirrored']} mirrored, moved {planted['shift']} px, noise std {planted['noise']}, "
             f"8-bit) flagged at the same threshold, {planted['traced_to_source']} traced to their own source "
             f"(median distance {planted['median_nearest']:.5f})"]
    if planted.get("by_noise"):
        lines.append("- the same copies at other noise stds (what a \"0 flagged\" bounds): " + "; ".join(
            f"{level['noise']:g}: {level['flagged']} of {level['copies']} (median {level['median_nearest']:.5f})"
            for level in planted["by_noise"]))
    return lines


def markdown(result: dict, prefix: str = "") -> list[str]:
    """The audit's section of a report (and the whole of audit.md); figure paths are the audit directory's,
    after `prefix` (e.g. "audit/" in the benchmark point's report.md)."""
    memo, fid = result["memorisation"], result["fidelity"]
    link = lambda key: prefix + result["figures"][key]  # noqa: E731
    lines = ["## Audit of the synthetic cohort", "",
             f"In the features of the real-trained judge; {memo['synthetic_images']} synthetic images against "
             f"{result['train_images']} real training images, calibrated on {memo['test_images']} real test images.",
             "", "### Memorisation", "",
             f"- flagged: **{memo['flagged']}** synthetic images nearer a training image than "
             f"{1 - memo['false_flag_rate']:.1%} of real test images are (threshold 1 - cos < "
             f"{memo['threshold']:.5f}); an honest cohort would give about {memo['flagged_expected_if_honest']:.1f} "
             f"({fmt.p_clause(memo['flagged_p_value'])})",
             *_planted_line(memo.get("planted_control")),
             f"- median distance to the nearest training image: synthetic {memo['median_nearest_synthetic']:.5f}, "
             f"real test {memo['median_nearest_test']:.5f}",
             (f"- data-copying test (Meehan et al. 2020): C_T = {memo['data_copying_statistic']:.2f} over "
              f"{memo['data_copying_cells_used']} cells ({fmt.p_clause(memo['data_copying_p_value'])}; well below 0 "
              "means synthetic images lie nearer the training images than unseen real images do, above 0 farther)"
              if memo["data_copying_statistic"] is not None else f"- {memo['data_copying_note']}"),
             f"- searched views ({len(result['views'])}): {'; '.join(result['views'])}", ""]
    lines += [f"![distances]({link('memorisation_distances')})", ""]
    for key in ("nearest_flagged", "nearest_closest"):
        if key in result["figures"]:
            lines += [f"![{key}]({link(key)})", ""]
    lines += ["### Fidelity (against the real training images)", ""]
    lines += fmt.markdown_table(
        ("images", "FD", "KID", "precision", "recall", "density", "coverage"),
        ((name.replace("_", " "), fmt.number(v["fd"], 2), f"{v['kid']:.4f} ± {v['kid_std']:.4f}",
          fmt.number(v["precision"]), fmt.number(v["recall"]), fmt.number(v["density"]), fmt.number(v["coverage"]))
         for name, v in fid["overall"].items()), align="lrrrrrr")
    lines += ["", "Per label combination (synthetic against real training images of the same labels):", ""]
    lines += fmt.markdown_table(
        ("label combination", "train", "synthetic", "FD", "KID", "precision", "recall"),
        ((" + ".join(e["names"]) or "(none)", str(e["train_images"]), str(e["synthetic_images"]),
          fmt.number(e.get("fd"), 2), fmt.number(e.get("kid"), 4), fmt.number(e.get("precision")),
          fmt.number(e.get("recall"))) for e in fid["per_combination"]), align="lrrrrrr")
    if "occlusion" in result:
        occlusion = result["occlusion"]
        lines += ["", "### Where the classifiers look (occlusion)", "",
                  f"A {occlusion['patch']} px grey patch slid over {occlusion['images']} real test images; the rise in "
                  "each class's BCE, for the classifier trained on real and on synthetic images. The share inside "
                  "is how much of a map's positive attribution falls on the finding itself (phantoms only); a "
                  "classifier that ignores where the finding is scores about the finding's area.", ""]
        lines += fmt.markdown_table(
            ("class", "images", "correlation of the maps", "inside the finding: real", "synthetic", "finding's area"),
            ((c["class"], str(c["images"]), fmt.number(c["correlation"]), fmt.number(c.get("share_inside_real")),
              fmt.number(c.get("share_inside_synthetic")), fmt.number(c.get("region_share_of_image")))
             for c in occlusion["classes"]), align="lrrrrr")
        lines += ["", f"![occlusion]({link('occlusion')})"]
    lines += ["", "### Embedding", "",
              f"Mixing of real and synthetic points on the map: {result['embedding']['neighbour_agreement']:.2f} of "
              "each point's 5 nearest points are of its own kind (0.5: mixed, 1.0: apart).", "",
              f"![embedding]({link('embedding')})", ""]
    return lines
