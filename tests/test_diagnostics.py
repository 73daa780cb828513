"""A sweep's diagnostics (medgan/study/diagnostics.py) from fabricated audits, aggregated beside relative AUC."""

import csv
import os

import pytest
from test_aggregate import fabricate, png_size, write

from medgan.study import aggregate, diagnostics, per_class

OCCLUSION = [  # "no finding" has no region; b has no synthetic share
    {"class": "no finding", "images": 4, "correlation": 0.2},
    {"class": "a", "images": 2, "correlation": 0.1, "share_inside_real": 0.3, "share_inside_synthetic": 0.1,
     "region_share_of_image": 0.05},
    {"class": "b", "images": 6, "correlation": 0.3, "share_inside_real": 0.1, "share_inside_synthetic": None,
     "region_share_of_image": 0.15},
]


def audited(n, nn_synthetic):
    result = fabricate("pggan", 2, n, study="cpu_samples")
    result["audit"] = {
        "memorisation": {"median_nearest_synthetic": nn_synthetic, "median_nearest_test": 0.004, "flagged": 3,
                         "synthetic_images": 500, "planted_control": {
                             "copies": 20, "flagged": 19, "by_noise": [
                                 {"noise": 0.0, "copies": 20, "flagged": 20},
                                 {"noise": 0.02, "copies": 20, "flagged": 19},
                                 {"noise": 0.04, "copies": 20, "flagged": 7}]}},
        "fidelity": {"overall": {
            "synthetic": {"kid": 0.2, "kid_std": 0.01, "precision": 0.7, "recall": 0.1, "fd": 3.25},
            "real_test": {"fd": 0.5, "precision": 0.9, "recall": 0.8}}},
        "occlusion": {"classes": OCCLUSION},
    }
    return result


def test_row_reads_the_audit_with_image_weighted_occlusion_means():
    row = diagnostics.row_from_result(audited(50, 0.002))
    assert row["nn_ratio"] == pytest.approx(0.5)
    assert row["occlusion_inside_real"] == pytest.approx((0.3 * 2 + 0.1 * 6) / 8)
    assert row["occlusion_inside_synthetic"] == pytest.approx(0.1)  # b has no synthetic share
    assert row["occlusion_region_share"] == pytest.approx((0.05 * 2 + 0.15 * 6) / 8)
    assert row["occlusion_positives"] == 8
    assert (row["flagged"], row["synthetic_images"], row["planted_flagged"], row["planted_copies"]) == (3, 500, 19, 20)
    assert row["planted_by_noise"] == "0: 20, 0.02: 19, 0.04: 7"
    assert (row["kid"], row["precision"], row["recall"]) == (0.2, 0.7, 0.1)
    fidelity = (row["fd"], row["fd_real_test"], row["precision_real_test"], row["recall_real_test"])
    assert fidelity == (3.25, 0.5, 0.9, 0.8)
    assert list(row) == list(diagnostics.COLUMNS)
    cells = dict(zip(diagnostics.MARKDOWN_HEADER, diagnostics.markdown_cells(
        aggregate.row_from_result(audited(50, 0.002), "p/results.json"))))
    assert (cells["planted found"], cells["planted found by noise std"]) == ("19 of 20", "0: 20, 0.02: 19, 0.04: 7")


def test_a_point_without_an_audit_has_no_diagnostics():
    row = diagnostics.row_from_result(fabricate("pggan", 2, 50))
    assert set(row.values()) == {None}
    assert not diagnostics.has_diagnostics(row)


def test_aggregate_writes_the_diagnostics_table_and_figure_of_audited_points(tmp_path):
    root = tmp_path / "samples"
    for n, nn in ((50, 0.002), (100, 0.003), (200, 0.004)):
        write(str(root / f"per_class-{n}" / "results.json"), audited(n, nn))
    write(str(root / "unaudited" / "results.json"), fabricate("cpd", 2, 50, study="cpu_samples"))
    written = aggregate.aggregate(str(root))
    names = [os.path.basename(p) for p in written.paths]
    assert names[-2:] == ["diagnostics.md", "diagnostics_vs_samples_pggan.png"]  # one line; cpd has one point
    width, height = png_size(written.paths[-1])
    assert width > 1000 and height > 300
    with open(root / "diagnostics.md") as f:
        audit, fidelity = f.read().split("## Fidelity beside the real test split")
    table = [line for line in audit.splitlines() if line.startswith("| pggan")]
    assert len(table) == 3  # the unaudited cpd point is not in the table
    assert table[0].split("|")[6].strip() == "0.500"  # NN ratio at n = 50
    assert "19 of 20" in table[0]
    lines = [line.split("|")[1:-1] for line in fidelity.splitlines() if line.startswith("| pggan")]
    assert len(lines) == 3
    cells = dict(zip(diagnostics.FIDELITY_HEADER, (c.strip() for c in lines[0])))
    assert [cells[c] for c in diagnostics.FIDELITY_HEADER[5:11]] == ["3.25", "0.50", "0.700", "0.900", "0.100", "0.800"]
    real = aggregate.row_from_result(audited(50, 0.002), "p")["real_mean_auc"]
    assert cells["real AUC"] == f"{real:.3f}"
    with open(root / "aggregate.csv") as f:
        rows = {r["path"]: r for r in csv.DictReader(f)}
    assert float(rows["per_class-100/results.json"]["nn_ratio"]) == pytest.approx(0.75)
    assert rows["unaudited/results.json"]["nn_ratio"] == ""


def paired(real, synthetic, low, high, *, positives=10, defined=True):
    difference = None if real is None else real - synthetic
    return {"auc_a": real, "auc_b": synthetic, "difference": difference, "ci_low": low, "ci_high": high,
            "p_value": 0.01, "positives": positives, "defined": defined, "variance_defined": defined}


def with_classes(n, support_devices_synthetic):
    result = fabricate("pggan", 6, 100, study="cpu_resolution", resolution=n)
    result["delong"]["classes"] = {
        "Support Devices": paired(0.8, support_devices_synthetic, 0.1, 0.3),
        "Fracture": paired(None, None, None, None, positives=0, defined=False),
    }
    return result


def test_per_class_relative_auc_maps_the_delong_ci_of_the_difference_onto_the_ratio():
    (row,) = per_class.rows_from_result(with_classes(32, 0.6), "p/results.json")  # the undefined class is left out
    assert row["class"] == "Support Devices"
    assert row["relative_auc"] == pytest.approx(0.75)
    assert (row["relative_ci_low"], row["relative_ci_high"]) == (pytest.approx(1 - 0.3 / 0.8),
                                                                pytest.approx(1 - 0.1 / 0.8))


def test_aggregate_writes_per_class_csv_and_figure_over_resolution(tmp_path):
    root = tmp_path / "resolution"
    for px, synthetic in ((32, 0.7), (64, 0.6), (128, 0.5)):
        write(str(root / f"resolution-{px}" / "results.json"), with_classes(px, synthetic))
    written = aggregate.aggregate(str(root))
    names = [os.path.basename(p) for p in written.paths]
    assert "per_class.csv" in names and "per_class_vs_resolution_pggan.png" in names
    assert "diagnostics.md" not in names  # no audit in these points
    with open(root / "per_class.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["path"].split("/")[0], r["class"]) for r in rows] == [
        (f"resolution-{px}", "Support Devices") for px in (32, 64, 128)]
    assert [float(r["relative_auc"]) for r in rows] == pytest.approx([0.875, 0.75, 0.625])


def test_results_tables_prints_point_diagnostics_and_per_class_rows_of_every_point(tmp_path, capsys):
    from medgan.study import results_tables

    root = tmp_path / "points"
    for px, synthetic in ((32, 0.7), (64, 0.6)):
        result = with_classes(px, synthetic)
        result["audit"] = audited(100, 0.002)["audit"]
        result["gan"].update(best_fd=1.234, selected_step=750, steps=1500)
        write(str(root / f"resolution-{px}" / "results.json"), result)
    assert results_tables.main([str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    point = f"`{os.path.normpath(root / 'resolution-32')}`"
    assert f"| {point} | 6 | 100 |" in lines[2] and "| 1.23 at step 750 of 1500 | 10.0 |" in lines[2]
    assert sum(line.endswith(f"| {point} |") for line in lines) == 3  # its diagnostics, fidelity and per-class rows
    fidelity = "| pggan | 0 | 6 | 100 | 32 | 3.25 | 0.50 | 0.700 | 0.900 | 0.100 | 0.800 | 0.560 | 0.860 |"
    assert f"{fidelity} {point} |" in lines
    assert any(line.startswith("| Support Devices | 64 | 6 | 100 | 10 | 0.800 | 0.600 | 0.750 |") for line in lines)
    assert results_tables.main([str(tmp_path / "none")]) == 2
