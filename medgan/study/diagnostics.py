"""Why a sweep's relative AUC moves: each point's audit read along the sweep's axis.

The study reads the rise of relative AUC at the smallest n of its samples
sweep as the GAN overfitting the labels, not as better images. A sweep's
points carry the numbers that test such a reading (medgan/study/audit.py):

* memorisation: the median distance of a synthetic image to its nearest
  training image, against the same median for unseen real test images. A
  ratio below 1 means the synthetic images sit closer to the training set
  than new real images do: the GAN reproduces what it saw.
* attention: the share of each judge's occlusion map inside the phantom's
  true finding region, for the real- and the synthetic-trained judge, beside
  the region's share of the image (what a judge that looks nowhere in
  particular scores). A synthetic-trained judge far below the real one
  learned something the GAN attached to the label, not the finding.
* fidelity: FD, KID and precision/recall of the synthetic images against
  the real training images in the judge's features, each beside what the
  unseen real test images score against the same training images, and the
  GAN-test AUC (the real judge on the synthetic images against their labels)
  beside the real judge's AUC on the real test split (`fidelity_table`).

`row_from_result` turns a point's results.json into these numbers (None where
the point has no audit), `markdown_table` and `plot` show them against an
axis of the sweep; medgan/study/aggregate.py writes them beside the
relative-AUC table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medgan import (
    report_format as fmt,  # noqa: E402
    visualize,  # noqa: E402
)

LEGEND = (
    "NN synthetic / test: median distance of a synthetic image to its nearest training image over the same\n"
    "median for unseen real test images (< 1: the GAN reproduces its training images). Occlusion inside: the\n"
    "share of a judge's occlusion map inside the phantom's finding on real test images with the finding; region\n"
    "share: the finding's share of the image, what a judge looking nowhere in particular scores. KID, precision\n"
    "and recall: synthetic against real training images in the judge's features. Planted found: training images\n"
    "planted as copies (mirrored, moved, noisy) that the audit flags; by noise std: the same copies at each noise\n"
    "std, what a \"0 flagged\" bounds."
)
# Columns of the diagnostics, in aggregate.csv after the relative-AUC columns.
COLUMNS = (
    "nn_median_synthetic", "nn_median_test", "nn_ratio", "flagged", "synthetic_images",
    "planted_flagged", "planted_copies", "planted_by_noise",
    "kid", "kid_std", "precision", "recall", "fd", "fd_real_test", "precision_real_test", "recall_real_test",
    "occlusion_inside_real", "occlusion_inside_synthetic", "occlusion_region_share", "occlusion_positives",
)
MARKDOWN_HEADER = (
    "model", "k", "n", "res", "relative AUC", "NN synthetic / test", "flagged", "planted found",
    "planted found by noise std", "KID", "precision", "recall", "occlusion inside (real)",
    "occlusion inside (synthetic)", "region share",
    "results",
)


def _get(result: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(result, dict) or key not in result:
            return None
        result = result[key]
    return result


def _occlusion(classes: Any) -> dict:
    """Image-weighted means over the finding classes of the occlusion audit (those with a region)."""
    rows = [c for c in classes or () if isinstance(c, dict) and c.get("region_share_of_image") is not None]
    out = {"occlusion_inside_real": None, "occlusion_inside_synthetic": None, "occlusion_region_share": None,
           "occlusion_positives": sum(int(c.get("images", 0)) for c in rows) if rows else None}
    for name, key in (("occlusion_inside_real", "share_inside_real"),
                      ("occlusion_inside_synthetic", "share_inside_synthetic"),
                      ("occlusion_region_share", "region_share_of_image")):
        pairs = [(c[key], c.get("images", 1)) for c in rows if c.get(key) is not None]
        if pairs:
            values, weights = zip(*pairs)
            out[name] = float(np.average(values, weights=weights))
    return out


def _by_noise(levels: Any) -> str | None:
    """The planted-copy curve as text, "0: 20, 0.01: 17, 0.02: 8" (copies flagged at each noise std)."""
    if not levels:
        return None
    return ", ".join(f"{level['noise']:g}: {level['flagged']}" for level in levels)


def row_from_result(result: Any) -> dict:
    """The diagnostics (COLUMNS) of one point's parsed results.json; None for what its audit lacks."""
    memorisation = _get(result, "audit", "memorisation") or {}
    synthetic = _get(result, "audit", "fidelity", "overall", "synthetic") or {}
    real_test = _get(result, "audit", "fidelity", "overall", "real_test") or {}
    planted = memorisation.get("planted_control") or {}
    nn_synthetic, nn_test = memorisation.get("median_nearest_synthetic"), memorisation.get("median_nearest_test")
    row = {
        "nn_median_synthetic": nn_synthetic, "nn_median_test": nn_test,
        "nn_ratio": nn_synthetic / nn_test if nn_synthetic is not None and nn_test else None,
        "flagged": memorisation.get("flagged"), "synthetic_images": memorisation.get("synthetic_images"),
        "planted_flagged": planted.get("flagged"), "planted_copies": planted.get("copies"),
        "planted_by_noise": _by_noise(planted.get("by_noise")),
        "kid": synthetic.get("kid"), "kid_std": synthetic.get("kid_std"),
        "precision": synthetic.get("precision"), "recall": synthetic.get("recall"),
        "fd": synthetic.get("fd"), "fd_real_test": real_test.get("fd"),
        "precision_real_test": real_test.get("precision"), "recall_real_test": real_test.get("recall"),
        **_occlusion(_get(result, "audit", "occlusion", "classes")),
    }
    return {name: row[name] for name in COLUMNS}


def has_diagnostics(row: dict) -> bool:
    return any(row.get(name) is not None for name in COLUMNS)


def markdown_cells(row: dict) -> list[str]:
    """One point's diagnostics for people (MARKDOWN_HEADER order); `row` is an aggregate row."""
    def ratio(a: Any, b: Any) -> str:
        return fmt.MISSING if a is None or b is None else f"{a} of {b}"

    return [
        str(row["model"]), fmt.axis(row["num_combinations"]), fmt.axis(row["per_combination"]), str(row["resolution"]),
        fmt.number(row["relative_auc"]), fmt.number(row["nn_ratio"]),
        ratio(row["flagged"], row["synthetic_images"]), ratio(row["planted_flagged"], row["planted_copies"]),
        row["planted_by_noise"] or fmt.MISSING,
        fmt.number(row["kid"]), fmt.number(row["precision"]), fmt.number(row["recall"]),
        fmt.number(row["occlusion_inside_real"]), fmt.number(row["occlusion_inside_synthetic"]),
        fmt.number(row["occlusion_region_share"]), str(row["path"]),
    ]


def markdown_table(rows: Sequence[dict]) -> str:
    """The points with an audit as a Markdown table (rows in the order given)."""
    cells = [markdown_cells(row) for row in rows if has_diagnostics(row)]
    return "\n".join(fmt.markdown_table(MARKDOWN_HEADER, cells)) + "\n"


FIDELITY_LEGEND = (
    "FD, precision and recall: the synthetic images, then the unseen real test images, both against the real\n"
    "training images in the real judge's features (the audit's k). GAN-test: the real judge's mean AUC on the\n"
    "synthetic images against their generation labels; real AUC: its mean AUC on the real test split."
)
FIDELITY_HEADER = ("model", "seed", "k", "n", "res", "FD", "FD real test", "precision", "precision real test",
                   "recall", "recall real test", "GAN-test", "real AUC", "results")


def fidelity_cells(row: dict) -> list[str]:
    """One point's fidelity beside the real test split's (FIDELITY_HEADER order); `row` is an aggregate row."""
    return [str(row["model"]), fmt.MISSING if row.get("seed") is None else str(row["seed"]),
            fmt.axis(row["num_combinations"]), fmt.axis(row["per_combination"]), str(row["resolution"]),
            fmt.number(row["fd"], 2), fmt.number(row["fd_real_test"], 2),
            fmt.number(row["precision"]), fmt.number(row["precision_real_test"]),
            fmt.number(row["recall"]), fmt.number(row["recall_real_test"]),
            fmt.number(row.get("gan_test")), fmt.number(row["real_mean_auc"]), str(row["path"])]


def fidelity_table(rows: Sequence[dict]) -> str:
    """Each audited point's fidelity beside the real test split's (FIDELITY_LEGEND), in the order given."""
    cells = [fidelity_cells(row) for row in rows if has_diagnostics(row)]
    return "\n".join(fmt.markdown_table(FIDELITY_HEADER, cells)) + "\n"


# (panel title, y label, [(column, legend, style)], horizontal reference line or None)
PANELS = (
    ("relative AUC", "synthetic / real mean AUC (DeLong CI)",
     [("relative_auc", "relative AUC", "o-")], 1.0),
    ("memorisation", "median NN distance, synthetic / unseen real",
     [("nn_ratio", "synthetic vs test images", "o-")], 1.0),
    ("what the judges look at", "occlusion share inside the finding",
     [("occlusion_inside_real", "real-trained judge", "o-"),
      ("occlusion_inside_synthetic", "synthetic-trained judge", "s--"),
      ("occlusion_region_share", "region's share of the image", "^:")], None),
    ("fidelity", "precision / recall (KID on the right)",
     [("precision", "precision", "o-"), ("recall", "recall", "s--")], None),
)


def plot(path: str, rows: Sequence[dict], x_axis: str, x_label: str, title: str, *,
         log_base: float | None = None) -> str | None:
    """Draws the diagnostics of `rows` (one line of points: one model, one setting) against `x_axis`.

    `log_base` as in visualize.sweep_x_axis (None: a linear axis).

    Returns None when written (atomically), else why not: fewer than 2 points with an audit.
    """
    points = sorted((r for r in rows if has_diagnostics(r)), key=lambda r: r[x_axis])
    if len(points) < 2:
        return f"{len(points)} point(s) with an audit, need 2"
    x = np.array([r[x_axis] for r in points], dtype=float)

    def series(name: str) -> np.ndarray:
        return np.array([np.nan if r[name] is None else r[name] for r in points], dtype=float)

    figure, axes = plt.subplots(1, len(PANELS), figsize=(17, 3.9))
    for ax, (panel, ylabel, lines, reference) in zip(axes, PANELS):
        for column, legend, style in lines:
            ax.plot(x, series(column), style, label=legend, markersize=4, linewidth=1.2)
        if reference is not None:
            ax.axhline(reference, color="0.5", linewidth=0.8, linestyle="--",
                       label="no memorisation" if panel == "memorisation" else "synthetic = real")
        if panel == "relative AUC":
            ax.plot(x, 0.5 / series("real_mean_auc"), "v:", color="0.35", markersize=4, linewidth=1.0,
                    label="synthetic judge at chance (0.5 / real AUC)")
            y = series("relative_auc")
            ax.errorbar(x, y, yerr=np.nan_to_num([y - series("relative_auc_ci_low"),
                                                  series("relative_auc_ci_high") - y]),
                        fmt="none", ecolor="tab:blue", capsize=3, linewidth=1.0)
        if panel == "fidelity":
            ax.set_ylim(0.0, 1.02)
            kid = ax.twinx()
            kid.errorbar(x, series("kid"), yerr=np.nan_to_num(series("kid_std")), fmt="^:", color="tab:red",
                         markersize=4, capsize=3, linewidth=1.0, label="KID")
            kid.set_ylabel("KID", color="tab:red")
            kid.legend(fontsize=7, loc="lower right")
        ax.set_title(panel, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        visualize.sweep_x_axis(ax, x, x_label, log_base)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    visualize.save_figure(figure, path, title, title_size=10)
    return None
