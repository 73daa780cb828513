"""Aggregation of a sweep (medgan/study/aggregate.py, launch/aggregate.py) on fabricated results.json files.

The sweep: 2 models x 3 label-combination counts k x 2 images-per-combination
n at 32 px, relative AUC = 1 - 0.05 k + n / 1000 (+ 0.01 for cpd), CI
[rel - 0.02, rel + 0.03] (none for one point), plus stage results.json files,
an unfinished point, a corrupt file and one without relative_auc.
"""

import csv
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from medgan.study import aggregate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("pggan", "cpd")
KS = (2, 4, 6)
NS = (50, 100)
NO_CI = ("cpd", 4, 100)  # the point whose paired test was undefined


def relative(model, k, n):
    return 1 - 0.05 * k + n / 1000 + (0.01 if model == "cpd" else 0.0)


def fabricate(model, k, n, *, study="demo_sweep", resolution=32, ci=True, seed=0):
    """A benchmark point's results.json (the keys medgan/jobs/benchmark.py writes) with known numbers."""
    rel = relative(model, k, n)
    real = 0.8 + k / 100
    return {
        "point": {"study": study, "source": "phantom_head_ct", "dataset": f"phantom_head_ct_{resolution}",
                  "resolution": resolution, "model": model, "num_combinations": k, "per_combination": n},
        "real": {"mean_auc": real, "mean_auc_ci": [real - 0.05, real + 0.05], "per_class_auc": {"a": real}},
        "synthetic": {"mean_auc": real * rel, "mean_auc_ci": None, "per_class_auc": {"a": real * rel}},
        "relative_auc": {"mean": rel, "ci_low": rel - 0.02 if ci else None, "ci_high": rel + 0.03 if ci else None,
                         "per_class": {"a": rel}},
        "delong": {"a": "real", "b": "synthetic", "level": 0.95,
                   "mean": None if not ci else {
                       "auc_a": real, "auc_b": real * rel, "difference": real - real * rel,
                       "ci_low": real - real * rel - 0.01, "ci_high": real - real * rel + 0.02,
                       "variance": 1e-4, "z": 2.5, "p_value": 0.0124 / k}, "classes": {}},
        "gan": {"model": model},
        "label_fidelity": {"gan_test": {"mean_auc": 0.5 + k / 100}, "synthetic_val_auc": 0.9} if ci else {},
        "fold": {"manifest": "manifest.json", "sizes": {"train": 8 * k * n // 10, "val": k * n // 10,
                                                        "test": k * n // 10}},
        "wall_seconds": {"prepare": 1.5, "total": 100.25 * k},
        "report": "report.md",
        "configs": {"benchmark": {"seed": seed}},
    }


def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    for model in MODELS:
        for k in KS:
            for n in NS:
                point = root / f"model-{model}_classes-{k}_per_class-{n}"
                write(str(point / "results.json"), fabricate(model, k, n, ci=(model, k, n) != NO_CI))
                write(str(point / "real_classifier" / "results.json"), {"best_step": 3, "mean_auc": 0.7})
                # Below a point nothing counts, even something that looks like a point.
                write(str(point / "synthetic" / "results.json"), fabricate(model, 99, 9999))
    write(str(root / "unfinished" / "gan" / "results.json"), {"steps": 10})
    write(str(root / "broken" / "results.json"), '{"point": {"study": ')
    no_relative = fabricate("pggan", 3, 50)
    del no_relative["relative_auc"]
    write(str(root / "no_relative" / "results.json"), no_relative)
    return str(root)


def test_collect_keeps_points_ignores_stages_and_reports_problems(sweep):
    collected = aggregate.collect(sweep)
    assert len(collected.rows) == 12
    # A finished point's stage directories are not even walked; an unfinished point's are, and ignored.
    assert collected.ignored == ["unfinished/gan/results.json"]
    problems = dict(collected.problems)
    assert sorted(problems) == ["broken/results.json", "no_relative/results.json"]
    assert problems["broken/results.json"].startswith("unreadable JSON")
    assert problems["no_relative/results.json"] == "missing key relative_auc.mean"
    assert all(row["num_combinations"] != 99 for row in collected.rows)


def test_csv_rows_and_values_are_exact(sweep, tmp_path):
    path = str(tmp_path / "out.csv")
    aggregate.write_csv(path, aggregate.collect(sweep).rows)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == aggregate.CSV_COLUMNS
    assert len(rows) == 12
    by_point = {(r["model"], int(r["num_combinations"]), int(r["per_combination"])): r for r in rows}
    for model in MODELS:
        for k in KS:
            for n in NS:
                row, expected = by_point[(model, k, n)], fabricate(model, k, n, ci=(model, k, n) != NO_CI)
                assert row["study"] == "demo_sweep" and row["source"] == "phantom_head_ct"
                assert row["resolution"] == "32"
                assert float(row["relative_auc"]) == expected["relative_auc"]["mean"]  # exact: repr round-trips
                assert float(row["real_mean_auc"]) == expected["real"]["mean_auc"]
                assert float(row["synthetic_mean_auc"]) == expected["synthetic"]["mean_auc"]
                assert float(row["wall_seconds_total"]) == 100.25 * k
                assert (row["train_size"], row["val_size"], row["test_size"]) == (
                    str(8 * k * n // 10), str(k * n // 10), str(k * n // 10))
                assert row["path"] == f"model-{model}_classes-{k}_per_class-{n}/results.json"
                if (model, k, n) == NO_CI:
                    assert row["relative_auc_ci_low"] == row["delong_difference"] == row["delong_p_value"] == ""
                else:
                    assert float(row["relative_auc_ci_low"]) == expected["relative_auc"]["ci_low"]
                    assert float(row["relative_auc_ci_high"]) == expected["relative_auc"]["ci_high"]
                    assert float(row["delong_difference"]) == expected["delong"]["mean"]["difference"]
                    assert float(row["delong_ci_low"]) == expected["delong"]["mean"]["ci_low"]
                    assert float(row["delong_p_value"]) == expected["delong"]["mean"]["p_value"]


def test_markdown_table_sorted_by_study_model_k_n(sweep):
    rows = aggregate.collect(sweep).rows
    other = aggregate.row_from_result(fabricate("pggan", 2, 50, study="a_first"), "x/results.json")
    lines = aggregate.markdown_table(list(reversed(rows)) + [other]).strip().split("\n")
    assert len(lines) == 2 + 13
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [c[0] for c in cells] == ["a_first"] + ["demo_sweep"] * 12
    order = [(c[2], int(c[5]), int(c[6])) for c in cells[1:]]
    assert order == [(m, k, n) for m in ("cpd", "pggan") for k in KS for n in NS]
    first = cells[1]  # cpd, k=2, n=50
    rel = relative("cpd", 2, 50)
    assert first[:7] == ["demo_sweep", "phantom_head_ct", "cpd", "0", "32", "2", "50"]
    assert first[9] == f"{rel:.3f}"
    assert first[10] == f"[{rel - 0.02:.3f}, {rel + 0.03:.3f}]"
    assert first[11] == "0.520"  # GAN-test
    assert first[15] == "80/10/10"
    no_ci = cells[1 + 3]  # cpd, k=4, n=100: no CI, no label fidelity
    assert no_ci[10] == no_ci[11] == no_ci[12] == no_ci[14] == "n/a"


def test_medgan_extensions_are_labelled_as_such_in_the_table_and_the_figure_legend():
    rows = [aggregate.row_from_result(fabricate(model, k, 100), f"{model}{k}/results.json")
            for model in ("pggan", "stylegan2") for k in KS]
    table = aggregate.markdown_table(rows).split("\n")[2:-1]
    assert {[c.strip() for c in line.strip("|").split("|")][2] for line in table} == {
        "pggan", "stylegan2 (medgan extension)"}
    lines, _ = aggregate.figure_series(rows, "num_combinations")
    aggregate._label(lines)
    assert sorted(line.label.split(",")[0] for line in lines) == ["pggan", "stylegan2 (medgan extension)"]


def test_classes_series_one_line_per_model_and_n_with_ci_error_bars(sweep):
    lines, notes = aggregate.figure_series(aggregate.collect(sweep).rows, "num_combinations")
    assert notes == []
    assert [(line.model, line.setting["per_combination"]) for line in lines] == [
        ("cpd", 50), ("cpd", 100), ("pggan", 50), ("pggan", 100)]
    assert [line.label for line in lines] == ["cpd, n=50", "cpd, n=100", "pggan, n=50", "pggan, n=100"]
    for line in lines:
        model, n = line.model, line.setting["per_combination"]
        np.testing.assert_array_equal(line.x, KS)
        y = np.array([relative(model, k, n) for k in KS])
        np.testing.assert_array_equal(line.y, y)
        low = np.array([np.nan if (model, k, n) == NO_CI else relative(model, k, n) - 0.02 for k in KS])
        high = np.array([np.nan if (model, k, n) == NO_CI else relative(model, k, n) + 0.03 for k in KS])
        np.testing.assert_array_equal(line.yerr, np.stack([y - low, high - y]))  # NaN where no CI
        np.testing.assert_allclose(line.floor, [0.5 / (0.8 + k / 100) for k in KS])  # chance / real AUC
    assert np.isnan(lines[1].yerr[:, 1]).all() and not np.isnan(lines[0].yerr).any()


def test_samples_series_one_line_per_model_and_k(sweep):
    lines, _ = aggregate.figure_series(aggregate.collect(sweep).rows, "per_combination")
    assert [line.label for line in lines] == [f"{m}, k={k}" for m in ("cpd", "pggan") for k in KS]
    for line in lines:
        np.testing.assert_array_equal(line.x, NS)
        np.testing.assert_array_equal(line.y, [relative(line.model, line.setting["num_combinations"], n) for n in NS])


def test_classes_sweep_n_follows_k_and_is_not_a_samples_line():
    """The study's classes sweep ties n to k: one line per model in the classes figure, none in the samples one."""
    pairs = ((20, 1450), (10, 2000), (2, 6300))
    rows = [aggregate.row_from_result(fabricate(m, k, n, study="chexpert_classes", resolution=256), f"{m}{k}")
            for m in MODELS for k, n in pairs]
    lines, _ = aggregate.figure_series(rows, "num_combinations")
    assert [line.label for line in lines] == ["cpd, n=6300…1450", "pggan, n=6300…1450"]
    np.testing.assert_array_equal(lines[0].x, [2, 10, 20])
    assert lines[0].followers == {"per_combination": [6300, 2000, 1450]}
    samples, notes = aggregate.figure_series(rows, "per_combination")
    assert samples == [] and len(notes) == 1 and notes[0].startswith("6 point(s) of study 'chexpert_classes'")


def test_duplicate_setting_keeps_first_path_and_notes_it():
    rows = [aggregate.row_from_result(fabricate("pggan", k, 50), f"{name}/results.json")
            for k, name in ((2, "b"), (2, "a"), (4, "c"))]
    rows[0]["relative_auc"] = 0.5
    lines, notes = aggregate.figure_series(rows, "num_combinations")
    assert lines[0].paths == ["a/results.json", "c/results.json"]
    assert len(notes) == 1 and notes[0].startswith("b/results.json")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_aggregate_writes_table_and_figures_skips_unvaried_resolution(sweep, tmp_path):
    out = str(tmp_path / "report")
    written = aggregate.aggregate(sweep, out)
    names = [os.path.basename(p) for p in written.paths]
    assert names == ["aggregate.csv", "aggregate.md", "relative_auc_vs_classes.png", "relative_auc_vs_samples.png"]
    assert "relative_auc_vs_resolution.png" in written.skipped
    assert "1 distinct value" in written.skipped["relative_auc_vs_resolution.png"]
    for name in names[2:]:
        path = os.path.join(out, name)
        width, height = png_size(path)
        assert 500 <= width <= 2000 and 300 <= height <= 2000
        assert os.path.getsize(path) > 10_000
    with open(os.path.join(out, "aggregate.md")) as f:
        assert written.table in f.read()
    assert not [n for n in os.listdir(out) if n.startswith(".")]  # no temporary files left


def test_resolution_figure_when_the_sweep_varies_it(tmp_path):
    root = tmp_path / "res"
    for model in MODELS:
        for resolution in (32, 64, 128):
            write(str(root / f"{model}-{resolution}" / "results.json"),
                  fabricate(model, 6, 100, study="rsna_resolution", resolution=resolution))
    written = aggregate.aggregate(str(root))
    assert os.path.basename(written.paths[-1]) == "relative_auc_vs_resolution.png"
    assert set(written.skipped) == {"relative_auc_vs_classes.png", "relative_auc_vs_samples.png"}
    lines, _ = aggregate.figure_series(aggregate.collect(str(root)).rows, "resolution")
    assert [line.label for line in lines] == ["cpd", "pggan"]
    np.testing.assert_array_equal(lines[0].x, [32, 64, 128])


def test_two_seeds_of_a_point_draw_two_lines_labelled_by_seed(tmp_path):
    root = tmp_path / "seeds"
    for seed in (0, 1):
        for k in KS:
            result = fabricate("pggan", k, 100, seed=seed)
            result["relative_auc"]["mean"] += 0.1 * seed
            write(str(root / f"seed{seed}" / f"classes-{k}" / "results.json"), result)
    rows = aggregate.collect(str(root)).rows
    assert [row["seed"] for row in rows] == [0, 0, 0, 1, 1, 1]
    lines, notes = aggregate.figure_series(rows, "num_combinations")
    assert not notes
    assert [line.label for line in lines] == ["pggan, seed=0, n=100", "pggan, seed=1, n=100"]
    np.testing.assert_allclose(lines[1].y - lines[0].y, 0.1)
    table = aggregate.markdown_table(rows).split("\n")[2:-1]
    assert [row.split("|")[4].strip() for row in table] == ["0", "0", "0", "1", "1", "1"]


def test_two_sweeps_as_roots_share_one_table_and_figure_paths_start_with_their_root(tmp_path):
    roots = []
    for seed in (0, 1):
        root = tmp_path / f"seed{seed}" / "points"
        for k in KS:
            write(str(root / f"classes-{k}" / "results.json"), fabricate("pggan", k, 100, seed=seed))
        roots.append(str(root))
    with pytest.raises(ValueError, match="--out"):
        aggregate.aggregate(roots)
    written = aggregate.aggregate(roots, str(tmp_path / "both"))
    assert [row["path"] for row in written.collected.rows] == [
        os.path.join(roots[seed], f"classes-{k}", "results.json") for seed in (0, 1) for k in KS]
    assert "relative_auc_vs_classes.png" not in written.skipped and not written.notes
    done = run_cli(*roots, "--out", str(tmp_path / "cli"))
    assert done.returncode == 0, done.stderr
    assert "6 point(s)" in done.stdout and os.path.isfile(tmp_path / "cli" / "relative_auc_vs_classes.png")


def run_cli(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "launch", "aggregate.py"), *args],
                          capture_output=True, text=True, timeout=60)


def test_cli(sweep, tmp_path):
    done = run_cli(sweep)
    assert done.returncode == 0, done.stderr
    assert "| demo_sweep | phantom_head_ct | pggan | 0 | 32 | 6 | 100 |" in done.stdout
    assert "12 point(s); 1 stage/unfinished results.json ignored; 2 problem(s)" in done.stdout
    assert "broken/results.json: unreadable JSON" in done.stderr
    assert "skipped relative_auc_vs_resolution.png" in done.stdout
    for name in ("aggregate.csv", "aggregate.md", "relative_auc_vs_classes.png", "relative_auc_vs_samples.png"):
        assert os.path.join(sweep, name) in done.stdout
        assert os.path.exists(os.path.join(sweep, name))


def test_main_strict_and_empty(sweep, tmp_path, capsys):
    """The CLI's exit statuses, in process (the subprocess test above covers the script itself)."""
    assert aggregate.main([sweep, "--strict", "--out", str(tmp_path / "strict")]) == 1
    assert os.path.exists(tmp_path / "strict" / "aggregate.csv")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert aggregate.main([str(empty)]) == 2
    assert "no benchmark point" in capsys.readouterr().err


@pytest.mark.parametrize("axis, scale, base", [("num_combinations", "linear", None), ("per_combination", "log", 10),
                                               ("resolution", "log", 2)])
def test_sweep_x_axis_ticks_only_the_swept_values_on_the_axis_scale(axis, scale, base):
    import matplotlib.pyplot as plt

    from medgan import visualize

    figure, ax = plt.subplots()
    xs = [32.0, 64.0, 128.0]
    ax.plot(xs, [0.7, 0.8, 0.6])
    visualize.sweep_x_axis(ax, xs, aggregate.AXIS_LABELS[axis], aggregate.AXIS_LOG_BASE.get(axis))
    assert ax.get_xscale() == scale
    if base is not None:
        assert ax.xaxis.get_transform().base == base
    np.testing.assert_array_equal(ax.get_xticks(), xs)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["32", "64", "128"]
    assert len(ax.xaxis.get_minor_locator().tick_values(32, 128)) == 0
    assert ax.get_xlabel() == aggregate.AXIS_LABELS[axis]
    plt.close(figure)
