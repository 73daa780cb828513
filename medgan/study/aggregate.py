"""A sweep's benchmark points in one table and the study's figures.

A sweep writes one work directory per point (`launch/sweep.py`):

    <root>/<point name>/results.json     the point's answer (medgan/jobs/benchmark.py)
    <root>/<point name>/<stage>/...      stage outputs, some with their own results.json

`collect` walks `root`, keeps every results.json that is a benchmark point
(it has the "point" and "relative_auc" keys), and does not descend below a
point's directory. A results.json with neither key (a stage's, or a point
that has not finished) is ignored and counted; one that does not parse, or has
one of the keys but lacks a required one, is a problem reported by path and
counted, never silently dropped.

Outputs (written atomically): `aggregate.csv` (one row per point, exact
values), `aggregate.md` (the same as a Markdown table), and the figures of
Figure 1 of the study: relative AUC against the number of label combinations
k, against the images per combination n, and (when the sweep varies it)
against the resolution, one line per model and fixed setting, with the
DeLong CI of the ratio (relative_auc.ci_low / ci_high) as error bars. Points
with an audit also get their diagnostics (medgan/study/diagnostics.py:
memorisation, where the judges look, fidelity) as CSV columns, a table in
`diagnostics.md` and one `diagnostics_vs_<axis>_<line>.png` per line of a figure;
points with per-class paired tests get `per_class.csv` and one
`per_class_vs_<axis>_<line>.png` per line (medgan/study/per_class.py).

Several roots (`aggregate(["a/points", "b/points"], out)`) put two sweeps in
one table and figure, e.g. a second seed beside the first; each row's path
then starts with its root.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import functools
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: clusters and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medgan import (
    fileio,  # noqa: E402
    report_format as fmt,  # noqa: E402
    visualize,  # noqa: E402
)
from medgan.study import diagnostics, per_class  # noqa: E402
from medgan.study.study_gans import model_label  # noqa: E402
from medgan.workdir import RESULT_FILE  # noqa: E402

CSV_FILE = "aggregate.csv"
MARKDOWN_FILE = "aggregate.md"
DIAGNOSTICS_FILE = "diagnostics.md"
FIGURE_FILES = {
    "num_combinations": "relative_auc_vs_classes.png",
    "per_combination": "relative_auc_vs_samples.png",
    "resolution": "relative_auc_vs_resolution.png",
}

# One CSV column per entry: (column, path of keys into results.json). Paths
# marked required make a point without them a problem; the rest may be absent
# (an empty cell), e.g. delong.mean is null when the paired test is undefined.
COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("study", ("point", "study")),
    ("source", ("point", "source")),
    ("model", ("point", "model")),
    ("resolution", ("point", "resolution")),
    ("num_combinations", ("point", "num_combinations")),
    ("per_combination", ("point", "per_combination")),
    # The run's seed (GAN and judge initialisation and data order; the fold is fixed by fold.seed).
    ("seed", ("configs", "benchmark", "seed")),
    ("real_mean_auc", ("real", "mean_auc")),
    ("synthetic_mean_auc", ("synthetic", "mean_auc")),
    ("relative_auc", ("relative_auc", "mean")),
    ("relative_auc_ci_low", ("relative_auc", "ci_low")),
    ("relative_auc_ci_high", ("relative_auc", "ci_high")),
    # Do the labels reach the pixels: the real judge's mean AUC on the synthetic images against their
    # generation labels (GAN-test), and the synthetic judge's own validation AUC.
    ("gan_test", ("label_fidelity", "gan_test", "mean_auc")),
    ("synthetic_val_auc", ("label_fidelity", "synthetic_val_auc")),
    # DeLong's paired test of a - b = real - synthetic (positive: synthetic is worse).
    ("delong_difference", ("delong", "mean", "difference")),
    ("delong_ci_low", ("delong", "mean", "ci_low")),
    ("delong_ci_high", ("delong", "mean", "ci_high")),
    ("delong_p_value", ("delong", "mean", "p_value")),
    ("delong_level", ("delong", "level")),
    ("train_size", ("fold", "sizes", "train")),
    ("val_size", ("fold", "sizes", "val")),
    ("test_size", ("fold", "sizes", "test")),
    ("wall_seconds_total", ("wall_seconds", "total")),
)
REQUIRED = (
    "study", "source", "model", "resolution", "num_combinations", "per_combination",
    "real_mean_auc", "synthetic_mean_auc", "relative_auc",
)
CSV_COLUMNS = tuple(name for name, _ in COLUMNS) + diagnostics.COLUMNS + ("path",)

# The axes of a benchmark point; a figure puts one on x and keeps the others fixed per line.
AXES = ("num_combinations", "per_combination", "resolution")
AXIS_LABELS = {
    "num_combinations": "number of label combinations k",
    "per_combination": "training images per label combination n",
    "resolution": "resolution (px)",
}
# Axes drawn on a log scale and its base; k stays linear, as in the study's Figure 1a.
AXIS_LOG_BASE = {"per_combination": 10, "resolution": 2}
AXIS_SHORT = {"num_combinations": "k", "per_combination": "n", "resolution": "res"}
# The classes sweep of the study ties n to k (fewer combinations, more images
# each: chest (20, 1450) ... (2, 6300)), so in the classes figure n may follow
# k along one line. No other axis may: a line never mixes other settings.
FOLLOWS = {"num_combinations": ("per_combination",)}


@dataclasses.dataclass
class Collected:
    """What `collect` found under a root.

    rows: one dict per benchmark point, keys CSV_COLUMNS (None for an absent
    optional value), sorted by `sort_key`; path is the results.json relative
    to the root. problems: (path, reason) of results.json files that do not
    parse or lack a required key. ignored: paths of results.json files that
    are not benchmark points (stage results, unfinished points).
    """

    rows: list[dict]
    problems: list[tuple[str, str]]
    ignored: list[str]


def sort_key(row: dict) -> tuple:
    """Study, model, seed, k, n, resolution (then path): the order of the table."""
    return (row["study"], row["model"], -1 if row["seed"] is None else row["seed"], row["num_combinations"],
            row["per_combination"], row["resolution"], row["path"])


def _lookup(result: Any, keys: Sequence[str]) -> tuple[bool, Any]:
    """(found, value) of result[keys[0]][keys[1]]...; a null on the way is found-as-None."""
    value = result
    for key in keys:
        if value is None:
            return True, None
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def row_from_result(result: Any, path: str) -> dict:
    """The CSV row of one point's parsed results.json; ValueError naming the missing key."""
    if not isinstance(result, dict):
        raise ValueError(f"not a JSON object but {type(result).__name__}")
    row = {}
    for name, keys in COLUMNS:
        found, value = _lookup(result, keys)
        if name in REQUIRED and (not found or (value is None and keys[0] == "point")):
            raise ValueError(f"{'missing key' if not found else 'null value of'} {'.'.join(keys)}")
        row[name] = value
    row.update(diagnostics.row_from_result(result))
    row["path"] = path
    row["per_class"] = per_class.rows_from_result(result, path)  # not a CSV column: per_class.csv
    return row


def is_point(result: Any) -> bool:
    """A benchmark point's results.json has "point" or "relative_auc"; a stage's has neither."""
    return isinstance(result, dict) and ("point" in result or "relative_auc" in result)


def collect(root: str) -> Collected:
    """Every benchmark point's results.json under `root` (see the module docstring)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: no such directory")
    rows, problems, ignored = [], [], []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        if RESULT_FILE not in files:
            continue
        path = os.path.join(directory, RESULT_FILE)
        relative = os.path.relpath(path, root)
        try:
            result = fileio.read_json(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            problems.append((relative, f"unreadable JSON: {error}"))
            continue  # its stage directories may hold results.json files: look, and ignore them
        if not is_point(result):
            ignored.append(relative)
            continue
        subdirs[:] = []  # a point's stage directories are its own business
        try:
            rows.append(row_from_result(result, relative))
        except ValueError as error:
            problems.append((relative, str(error)))
    rows.sort(key=sort_key)
    return Collected(rows=rows, problems=problems, ignored=ignored)


def _csv_cell(value: Any) -> str:
    """Exact text of a value: repr of a float (round-trips), empty for None."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv(path: str, rows: Iterable[dict]) -> None:
    """One row per point, columns CSV_COLUMNS, floats exact; atomically."""
    with fileio.atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            for row in rows:
                writer.writerow([_csv_cell(row[name]) for name in CSV_COLUMNS])


MARKDOWN_HEADER = (
    "study", "source", "model", "seed", "res", "k", "n", "real AUC", "synthetic AUC", "relative AUC", "relative CI",
    "GAN-test", "DeLong real − syn", "DeLong CI", "p", "train/val/test", "wall s", "results",
)


def markdown_cells(row: dict) -> list[str]:
    """The Markdown table's cells of one row (MARKDOWN_HEADER order), rounded for people."""
    sizes = [row["train_size"], row["val_size"], row["test_size"]]
    return [
        str(row["study"]), str(row["source"]), model_label(str(row["model"])),
        fmt.MISSING if row["seed"] is None else str(row["seed"]), str(row["resolution"]),
        str(row["num_combinations"]), str(row["per_combination"]),
        fmt.number(row["real_mean_auc"]), fmt.number(row["synthetic_mean_auc"]), fmt.number(row["relative_auc"]),
        fmt.interval(row["relative_auc_ci_low"], row["relative_auc_ci_high"]), fmt.number(row["gan_test"]),
        fmt.number(row["delong_difference"]), fmt.interval(row["delong_ci_low"], row["delong_ci_high"]),
        fmt.p_value(row["delong_p_value"]),
        fmt.MISSING if None in sizes else "/".join(str(s) for s in sizes),
        fmt.number(row["wall_seconds_total"], 0), str(row["path"]),
    ]


def markdown_table(rows: Iterable[dict]) -> str:
    """The points as a Markdown table sorted by study, model, k, n, resolution."""
    cells = (markdown_cells(row) for row in sorted(rows, key=sort_key))
    return "\n".join(fmt.markdown_table(MARKDOWN_HEADER, cells)) + "\n"


@dataclasses.dataclass
class Series:
    """One line of a figure: points of one model and one fixed setting, x ascending.

    yerr: [2, m] distances below and above y to the DeLong CI of the ratio
    (relative_auc.ci_low / ci_high); NaN where the point has no CI.
    setting: the fixed values of the line (study, source, model and the axes
    that are neither x nor allowed to follow x); followers: {axis: values
    along the line} of the axes that follow x (n in the classes figure).
    floor: 0.5 / the real judge's mean AUC at each point, the relative AUC
    of a synthetic judge at chance (NaN where the real AUC is missing).
    """

    label: str
    model: str
    setting: dict
    x: np.ndarray
    y: np.ndarray
    yerr: np.ndarray
    followers: dict
    paths: list[str]
    floor: np.ndarray


def figure_series(rows: Sequence[dict], x_axis: str) -> tuple[list[Series], list[str]]:
    """The lines of the relative-AUC figure over `x_axis` and notes on what was left out.

    Points are grouped by study, source, model, seed and every other axis, except
    that an axis in FOLLOWS[x_axis] does not split a group when it is a
    function of x within it (the classes sweep's n). Lines with fewer than 2
    points (noted once per study) and points without a relative AUC (noted) are left out; two points
    of one line at the same x keep the first by path (noted).
    """
    if x_axis not in AXES:
        raise ValueError(f"x_axis {x_axis!r}: expected one of {AXES}")
    notes = []
    others = [a for a in AXES if a != x_axis]
    base: dict[tuple, list[dict]] = collections.defaultdict(list)
    for row in rows:
        if row["relative_auc"] is None:
            notes.append(f"{row['path']}: no relative AUC")
            continue
        base[(row["study"], row["source"], row["model"], row["seed"])].append(row)
    groups: dict[tuple, list[dict]] = {}
    for (study, source, model, seed), members in base.items():
        split = []
        for axis in others:
            values_at_x = collections.defaultdict(set)
            for row in members:
                values_at_x[row[x_axis]].add(row[axis])
            if axis in FOLLOWS.get(x_axis, ()) and all(len(v) == 1 for v in values_at_x.values()):
                continue  # follows x along the line
            split.append(axis)
        for row in members:
            setting = {"study": study, "source": source, "model": model, "seed": seed, **{a: row[a] for a in split}}
            groups.setdefault(tuple(sorted(setting.items())), []).append(row)
    lines, alone = [], collections.defaultdict(list)
    for key in sorted(groups, key=lambda k: [(name, _natural(value)) for name, value in k]):
        setting = dict(key)
        by_x: dict[Any, dict] = {}
        for row in sorted(groups[key], key=lambda r: r["path"]):
            if row[x_axis] in by_x:
                notes.append(f"{row['path']}: same setting and {AXIS_SHORT[x_axis]}={row[x_axis]} as "
                             f"{by_x[row[x_axis]]['path']}; plotted the latter")
                continue
            by_x[row[x_axis]] = row
        chosen = [by_x[x] for x in sorted(by_x)]
        if len(chosen) < 2:
            alone[setting["study"]].append(chosen[0]["path"])
            continue
        y = np.array([r["relative_auc"] for r in chosen], dtype=float)
        low = np.array([np.nan if r["relative_auc_ci_low"] is None else r["relative_auc_ci_low"]
                        for r in chosen], dtype=float)
        high = np.array([np.nan if r["relative_auc_ci_high"] is None else r["relative_auc_ci_high"]
                         for r in chosen], dtype=float)
        followers = {a: [r[a] for r in chosen] for a in others if a not in setting}
        lines.append(Series(
            label="", model=setting["model"], setting=setting,
            x=np.array([r[x_axis] for r in chosen], dtype=float), y=y, yerr=np.stack([y - low, high - y]),
            followers=followers, paths=[r["path"] for r in chosen],
            floor=np.array([0.5 / r["real_mean_auc"] if r["real_mean_auc"] else np.nan for r in chosen], float),
        ))
    for study, paths in alone.items():
        notes.append(f"{len(paths)} point(s) of study {study!r} not drawn: no other point shares their settings "
                     f"besides {AXIS_SHORT[x_axis]} (e.g. {paths[0]})")
    _label(lines)
    return lines, notes


def _natural(value: Any) -> tuple:
    """Numbers before text, numbers by value: n=50 before n=100."""
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _label(lines: list[Series]) -> None:
    """Model, plus whatever else differs between the figure's lines; followers' ranges in brackets."""
    varying = [name for name in ("study", "source", "seed", *AXES)
               if len({str(line.setting.get(name)) for line in lines}) > 1]
    for line in lines:
        parts = [model_label(line.model)] + [
            f"{AXIS_SHORT.get(n, n)}={line.setting[n]}" if n in (*AXES, "seed") else str(line.setting[n])
            for n in varying if n in line.setting]
        for axis, values in line.followers.items():
            span = str(values[0]) if len(set(values)) == 1 else f"{values[0]}…{values[-1]}"
            parts.append(f"{AXIS_SHORT[axis]}={span}")
        line.label = ", ".join(parts)


def plot_relative_auc(path: str, rows: Sequence[dict], x_axis: str) -> str | None:
    """Draws relative AUC over `x_axis`, one line per model and setting, CI error bars; atomically.

    Returns None when written, else the reason it was skipped: `x_axis` has
    fewer than 2 distinct values in `rows`, or no line has 2 points.
    """
    distinct = sorted({row[x_axis] for row in rows})
    if len(distinct) < 2:
        return f"{AXIS_LABELS[x_axis]} has {len(distinct)} distinct value(s) {distinct}, need 2"
    lines, _ = figure_series(rows, x_axis)
    if not lines:
        return f"no line over {AXIS_LABELS[x_axis]} has 2 points with the other settings fixed"
    models = sorted({line.model for line in lines})
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    seen_per_model: collections.Counter = collections.Counter()
    figure, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.axhline(1.0, color="0.5", linewidth=0.8, linestyle="--", label="synthetic = real")
    log_x = x_axis in AXIS_LOG_BASE
    span = max(distinct) - min(distinct)
    for j, line in enumerate(lines):
        i = seen_per_model[line.model]
        seen_per_model[line.model] += 1
        # Dodge the lines a little along x so overlapping error bars stay readable (the data are not moved).
        shift = 0.012 * (j - (len(lines) - 1) / 2)
        x = line.x * (1 + shift) if log_x else line.x + shift * span
        ax.errorbar(x, line.y, yerr=np.nan_to_num(line.yerr, nan=0.0), label=line.label,
                    color=colours[line.model], linestyle=styles[i % len(styles)], marker=markers[i % len(markers)],
                    markersize=4, capsize=3, linewidth=1.2)
        ax.plot(x, line.floor, linestyle=":", marker="_", color=colours[line.model], linewidth=0.9, alpha=0.7,
                label="chance floor: 0.5 / real AUC (a synthetic judge at chance)" if j == 0 else None)
    visualize.sweep_x_axis(ax, sorted({float(x) for line in lines for x in line.x}), AXIS_LABELS[x_axis],
                           AXIS_LOG_BASE.get(x_axis))
    ax.set_ylabel("relative AUC (synthetic / real)")
    ax.set_title(f"relative AUC vs {AXIS_LABELS[x_axis]}\n(error bars: DeLong {_level(rows)} CI)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    visualize.save_figure(figure, path)
    return None


def _level(rows: Sequence[dict]) -> str:
    """The confidence level(s) of the points' DeLong CIs, e.g. "95%" (results.json delong.level)."""
    levels = sorted({row["delong_level"] for row in rows if row["delong_level"] is not None})
    return "/".join(f"{100 * level:g}%" for level in levels) or "no"


@dataclasses.dataclass
class Written:
    """What `aggregate` wrote (paths) and skipped (figure file -> reason), and the notes of the figures."""

    collected: Collected
    paths: list[str]
    skipped: dict[str, str]
    notes: list[str]
    table: str


def _under(root: str, path: str) -> str:
    return os.path.normpath(os.path.join(root, path))


def collect_roots(roots: Sequence[str]) -> Collected:
    """`collect` of one root, or of several with each path prefixed by its root (sorted together)."""
    if len(roots) == 1:
        return collect(roots[0])
    rows, problems, ignored = [], [], []
    for root in roots:
        part = collect(root)
        prefix = functools.partial(_under, root)
        rows.extend({**row, "path": prefix(row["path"]),
                     "per_class": [{**r, "path": prefix(r["path"])} for r in row["per_class"]]} for row in part.rows)
        problems.extend((prefix(path), reason) for path, reason in part.problems)
        ignored.extend(prefix(path) for path in part.ignored)
    rows.sort(key=sort_key)
    return Collected(rows=rows, problems=problems, ignored=ignored)


def aggregate(roots: str | Sequence[str], out: str | None = None) -> Written:
    """Collects the points under `roots` (one or several) and writes the CSV, Markdown table and figures into
    `out` (default: the root, when there is one).

    Raises ValueError when there is no benchmark point to aggregate (nothing is written).
    """
    roots = [roots] if isinstance(roots, str) else list(roots)
    if out is None and len(roots) != 1:
        raise ValueError(f"{len(roots)} roots: say where to write (--out)")
    out = roots[0] if out is None else out
    under = ", ".join(os.path.abspath(r) for r in roots)  # for the reports' headings
    collected = collect_roots(roots)
    if not collected.rows:
        raise ValueError(f"{under}: no benchmark point's {RESULT_FILE} found "
                         f"({len(collected.ignored)} ignored, {len(collected.problems)} with problems)")
    rows = collected.rows
    os.makedirs(out, exist_ok=True)
    csv_path, md_path = os.path.join(out, CSV_FILE), os.path.join(out, MARKDOWN_FILE)
    write_csv(csv_path, rows)
    table = markdown_table(rows)
    with fileio.atomic_path(md_path) as tmp, open(tmp, "w") as f:
        f.write(f"# Benchmark points under {under}\n\n")
        f.write("relative AUC = synthetic / real mean AUC on the real test fold; its CI is DeLong's paired CI\n"
                "of real − synthetic mapped to the ratio. DeLong real − syn > 0: the synthetic-trained\n"
                "classifier is worse.\n\n")
        f.write(table)
    paths, skipped, notes = [csv_path, md_path], {}, []
    for axis, name in FIGURE_FILES.items():
        path = os.path.join(out, name)
        reason = plot_relative_auc(path, rows, axis)
        if reason is None:
            paths.append(path)
            notes.extend(f"{name}: {n}" for n in figure_series(rows, axis)[1])
        else:
            skipped[name] = reason
    paths.extend(_write_line_reports(out, under, rows))
    return Written(collected=collected, paths=paths, skipped=skipped, notes=notes, table=table)


def _write_line_reports(out: str, under: str, rows: Sequence[dict]) -> list[str]:
    """diagnostics.md and per_class.csv, and for each line of a relative-AUC figure its diagnostics and
    per-class figures; each only where the points have an audit or per-class paired tests."""
    paths = []
    audited = any(diagnostics.has_diagnostics(row) for row in rows)
    if audited:
        path = os.path.join(out, DIAGNOSTICS_FILE)
        with fileio.atomic_path(path) as tmp, open(tmp, "w") as f:
            f.write(f"# Diagnostics of the benchmark points under {under}\n\n")
            f.write(diagnostics.LEGEND + "\n\n")
            f.write(diagnostics.markdown_table(rows))
            f.write("\n## Fidelity beside the real test split\n\n" + diagnostics.FIDELITY_LEGEND + "\n\n")
            f.write(diagnostics.fidelity_table(rows))
        paths.append(path)
    classes = [r for row in rows for r in row.get("per_class", ())]
    if classes:
        paths.append(os.path.join(out, per_class.CSV_FILE))
        per_class.write_csv(paths[-1], classes)
    by_path = {row["path"]: row for row in rows}
    for axis, name in FIGURE_FILES.items():
        for line in figure_series(rows, axis)[0]:
            slug = "".join(c if c.isalnum() else "_" for c in line.label).strip("_").lower()
            members = [by_path[p] for p in line.paths]
            figure = os.path.join(out, name.replace("relative_auc", "diagnostics").replace(".png", f"_{slug}.png"))
            if audited and diagnostics.plot(figure, members, axis, AXIS_LABELS[axis],
                                            f"Diagnostics against {AXIS_LABELS[axis]}: {line.label}",
                                            log_base=AXIS_LOG_BASE.get(axis)) is None:
                paths.append(figure)
            figure = os.path.join(out, name.replace("relative_auc", "per_class").replace(".png", f"_{slug}.png"))
            if classes and per_class.plot(
                figure, [(row[axis], row["per_class"]) for row in members], AXIS_LABELS[axis],
                f"Per-class relative AUC against {AXIS_LABELS[axis]}: {line.label}\n(error bars: DeLong CI)",
                log_base=AXIS_LOG_BASE.get(axis),
            ) is None:
                paths.append(figure)
    return paths


def main(argv: Sequence[str]) -> int:
    """CLI: `python launch/aggregate.py W [W ...] [--out DIR] [--strict]`; prints the table and the paths written."""
    import argparse

    parser = argparse.ArgumentParser(prog="launch/aggregate.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", metavar="root",
                        help="a sweep's work directory (points are <root>/<name>/results.json); several roots are "
                             "drawn together (then --out is needed)")
    parser.add_argument("--out", help="where to write the table and figures (default: the root)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a results.json could not be read or lacks a key")
    args = parser.parse_args(argv)
    try:
        written = aggregate(args.roots, args.out)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    collected = written.collected
    print(written.table)
    print(f"{len(collected.rows)} point(s); {len(collected.ignored)} stage/unfinished results.json ignored; "
          f"{len(collected.problems)} problem(s)")
    for path, reason in collected.problems:
        shown = os.path.join(args.roots[0], path) if len(args.roots) == 1 else path
        print(f"  problem: {shown}: {reason}", file=sys.stderr)
    for name, reason in written.skipped.items():
        print(f"skipped {name}: {reason}")
    for note in written.notes:
        print(f"note: {note}")
    print("wrote:", *written.paths, sep="\n  ")
    return 1 if args.strict and collected.problems else 0
