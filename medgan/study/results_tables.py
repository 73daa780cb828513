"""The Markdown rows of RESULTS.md, made from committed benchmark points.

RESULTS.md states what medgan measured; every row of its sweep tables is one
of these functions applied to a committed results.json, so that
tests/test_results.py can rebuild each row and compare, and a person can print
them after a sweep instead of typing numbers:

  python launch/results_tables.py results/cpu_samples/points

Three kinds of row, each naming its point `results/<sweep>/points/<name>`:

* point rows (`POINT_HEADER`): k, n, the two judges' mean AUC, relative AUC
  with its DeLong CI and p, the synthetic AUC's CI, the GAN's best Fréchet
  distance and the wall time; the point's path is the first cell.
* diagnostics rows (medgan/study/diagnostics.py, `DIAGNOSTICS_HEADER`); the
  path is the last cell.
* per-class rows (medgan/study/per_class.py, `PER_CLASS_HEADER`): one per
  class with a paired test; the path is the last cell.
* fidelity rows (`FIDELITY_HEADER`, diagnostics.fidelity_cells): FD,
  precision, recall and GAN-test beside the real test split's; the path is
  the last cell.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from medgan import fileio, report_format as fmt
from medgan.study import aggregate, diagnostics, per_class

POINT_HEADER = ("point", "k", "n", "real AUC", "synthetic AUC", "relative AUC", "relative 95% CI", "DeLong p",
                "synthetic AUC 95% CI", "best FD (judge features)", "minutes")
DIAGNOSTICS_HEADER = diagnostics.MARKDOWN_HEADER[:-1] + ("point",)
FIDELITY_HEADER = diagnostics.FIDELITY_HEADER[:-1] + ("point",)
PER_CLASS_HEADER = ("class", "res", "k", "n", "positives", "real AUC", "synthetic AUC", "relative AUC",
                    "relative 95% CI", "DeLong p", "point")


def point_cells(result: dict, point: str) -> list[str]:
    """The cells of a point row (POINT_HEADER) of one results.json at `point` (results/<sweep>/points/<name>)."""
    info, relative, mean, gan = result["point"], result["relative_auc"], result["delong"]["mean"], result["gan"]
    fd = (fmt.MISSING if gan.get("best_fd") is None
          else f"{gan['best_fd']:.2f} at step {gan['selected_step']} of {gan['steps']}")
    return [
        f"`{point}`", fmt.axis(info["num_combinations"]), fmt.axis(info["per_combination"]),
        fmt.number(result["real"]["mean_auc"]), fmt.number(result["synthetic"]["mean_auc"]),
        fmt.number(relative["mean"]), fmt.interval(relative["ci_low"], relative["ci_high"]),
        fmt.p_value(mean["p_value"] if mean else None),
        fmt.interval(*(result["synthetic"]["mean_auc_ci"] or (None, None))),
        fd, fmt.number(result["wall_seconds"]["total"] / 60, 1),
    ]


def diagnostics_cells(result: dict, point: str) -> list[str]:
    """The cells of a diagnostics row (DIAGNOSTICS_HEADER)."""
    return diagnostics.markdown_cells(aggregate.row_from_result(result, point))[:-1] + [f"`{point}`"]


def fidelity_cells(result: dict, point: str) -> list[str]:
    """The cells of a fidelity row (FIDELITY_HEADER)."""
    return diagnostics.fidelity_cells(aggregate.row_from_result(result, point))[:-1] + [f"`{point}`"]


def per_class_cells(result: dict, point: str) -> list[list[str]]:
    """The per-class rows (PER_CLASS_HEADER) of one point, in class order."""
    info = result["point"]
    k, n = fmt.axis(info["num_combinations"]), fmt.axis(info["per_combination"])
    return [[row["class"], str(info["resolution"]), k, n, str(row["positives"]),
             fmt.number(row["real_auc"]), fmt.number(row["synthetic_auc"]),
             fmt.number(row["relative_auc"]), fmt.interval(row["relative_ci_low"], row["relative_ci_high"]),
             fmt.p_value(row["delong_p_value"]), f"`{point}`"]
            for row in per_class.rows_from_result(result, point)]


def tables(points_dir: str) -> str:
    """The four tables of every point directory under `points_dir` (sorted like aggregate.csv)."""
    collected = aggregate.collect(points_dir)
    if not collected.rows:
        raise ValueError(f"{points_dir}: no benchmark point's results.json")
    results = []
    for row in collected.rows:
        directory = os.path.dirname(os.path.join(points_dir, row["path"]))
        results.append((fileio.read_json(os.path.join(directory, "results.json")), os.path.normpath(directory)))
    out = ["\n".join(fmt.markdown_table(POINT_HEADER, [point_cells(r, p) for r, p in results]))]
    audited = [(r, p) for r, p in results if diagnostics.has_diagnostics(diagnostics.row_from_result(r))]
    if audited:
        out.append("\n".join(fmt.markdown_table(DIAGNOSTICS_HEADER, [diagnostics_cells(r, p) for r, p in audited])))
        out.append("\n".join(fmt.markdown_table(FIDELITY_HEADER, [fidelity_cells(r, p) for r, p in audited])))
    classes = [cells for r, p in results for cells in per_class_cells(r, p)]
    if classes:
        out.append("\n".join(fmt.markdown_table(PER_CLASS_HEADER, classes)))
    return "\n\n".join(out) + "\n"


def main(argv: Sequence[str]) -> int:
    """CLI: `python launch/results_tables.py results/<sweep>/points`; prints the tables."""
    if len(argv) != 1:
        print("usage: python launch/results_tables.py results/<sweep>/points", file=sys.stderr)
        return 2
    try:
        print(tables(argv[0]))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
