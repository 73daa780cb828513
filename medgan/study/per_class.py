"""Per-class relative AUC along a sweep: the study's per-class view of its resolution sweep.

The study's mean relative AUC hides classes that move against the rest: in
its resolution sweep Support Devices falls as resolution rises while most
findings hold. Each point's results.json has the per-class AUCs of both
judges and DeLong's per-class paired test (delong.classes); here they become
one relative AUC per class with the DeLong CI of the difference mapped onto
the ratio (as for the mean: relative = 1 - difference / real AUC), a CSV of
every point and class, and one figure per line of a sweep.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medgan import fileio, visualize  # noqa: E402

CSV_FILE = "per_class.csv"
COLUMNS = ("path", "class", "positives", "real_auc", "synthetic_auc", "relative_auc", "relative_ci_low",
           "relative_ci_high", "delong_p_value")


def rows_from_result(result: Any, path: str) -> list[dict]:
    """One row (COLUMNS) per class whose paired test is defined in the point's results.json, in class order."""
    classes = (result.get("delong") or {}).get("classes") or {} if isinstance(result, dict) else {}
    rows = []
    for name, test in classes.items():
        if not isinstance(test, dict) or not test.get("defined") or not test.get("auc_a"):
            continue
        real, difference = test["auc_a"], test["difference"]
        low = high = None
        if test.get("variance_defined") and test.get("ci_low") is not None:
            low, high = 1.0 - test["ci_high"] / real, 1.0 - test["ci_low"] / real
        rows.append({"path": path, "class": name, "positives": test.get("positives"), "real_auc": real,
                     "synthetic_auc": test["auc_b"], "relative_auc": 1.0 - difference / real,
                     "relative_ci_low": low, "relative_ci_high": high, "delong_p_value": test.get("p_value")})
    return rows


def write_csv(path: str, rows: Sequence[dict]) -> None:
    """Every point's per-class rows, floats exact (repr); atomically."""
    with fileio.atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(["" if row[c] is None else repr(row[c]) if isinstance(row[c], float) else row[c]
                             for c in COLUMNS])


def plot(path: str, points: Sequence[tuple[float, list[dict]]], x_label: str, title: str, *,
         log_base: float | None = None) -> str | None:
    """Per-class relative AUC against x: `points` is [(x, that point's per-class rows)] of one sweep line.

    One line per class with a value at 2 or more x, DeLong CI error bars, the
    line of the mean-AUC ratio 1 dashed. Returns None when written
    (atomically), else why not.
    """
    by_class: dict[str, list[tuple[float, dict]]] = {}
    for x, rows in sorted(points, key=lambda p: p[0]):
        for row in rows:
            by_class.setdefault(row["class"], []).append((x, row))
    drawn = {name: values for name, values in by_class.items() if len(values) >= 2}
    if not drawn:
        return "no class has a paired test at 2 points of the line"
    figure, ax = plt.subplots(figsize=(7.2, 4.6))
    ax.axhline(1.0, color="0.5", linewidth=0.8, linestyle="--", label="synthetic = real")
    colours = plt.get_cmap("tab10")
    for i, (name, values) in enumerate(sorted(drawn.items())):
        x = np.array([v[0] for v in values], dtype=float) * (1 + 0.01 * (i - len(drawn) / 2))
        y = np.array([v[1]["relative_auc"] for v in values], dtype=float)
        low = np.array([np.nan if v[1]["relative_ci_low"] is None else v[1]["relative_ci_low"] for v in values])
        high = np.array([np.nan if v[1]["relative_ci_high"] is None else v[1]["relative_ci_high"] for v in values])
        ax.errorbar(x, y, yerr=np.nan_to_num(np.stack([y - low, high - y])), label=name, color=colours(i % 10),
                    marker="o", markersize=4, capsize=2, linewidth=1.2, linestyle="-" if i < 10 else "--")
    visualize.sweep_x_axis(ax, sorted({v[0] for values in drawn.values() for v in values}), x_label, log_base)
    ax.set_ylabel("relative AUC of the class (synthetic / real)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    with fileio.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    return None
