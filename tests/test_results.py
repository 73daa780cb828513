"""RESULTS.md states only what the committed results hold.

Every row of a RESULTS.md measurement table names a committed point
(`results/<study>/points/<point>/results.json`); its real, synthetic and
relative AUC, relative-AUC CI, DeLong p-value, the synthetic AUC's CI, the GAN's best FD and the wall time
must be those of that file (medgan/study/results_tables.py, which prints them: launch/results_tables.py);
so must the diagnostics, fidelity and per-class rows, which name their point in the last cell. A number typed
by hand, or a result rerun without updating the page, fails here.
"""

import json
import os
import re

import pytest

from medgan import report_format as fmt
from medgan.study import results_tables

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_MD = os.path.join(REPO, "RESULTS.md")
ROW = re.compile(r"^\| `(?P<path>results/[^`]+/points/[^`]+)` \|(?P<cells>.*)\|\s*$")


def _rows():
    if not os.path.exists(RESULTS_MD):
        return []
    with open(RESULTS_MD) as f:
        return [m for m in (ROW.match(line) for line in f) if m]


def test_results_md_has_measurement_rows():
    assert os.path.exists(RESULTS_MD), "RESULTS.md is the project's answer and must exist"
    assert len(_rows()) >= 1


@pytest.mark.parametrize("row", _rows(), ids=lambda m: m["path"])
def test_every_row_is_the_committed_results_json(row):
    path = os.path.join(REPO, row["path"], "results.json")
    assert os.path.exists(path), f"RESULTS.md cites {row['path']}, which has no committed results.json"
    with open(path) as f:
        result = json.load(f)
    cells = [c.strip() for c in row["cells"].split("|")]
    assert cells == results_tables.point_cells(result, row["path"])[1:]


PATH_LAST = re.compile(r"^\|(?P<cells>.*)\| `(?P<path>results/[^`]+/points/[^`]+)` \|\s*$")


def _path_last_rows():
    with open(RESULTS_MD) as f:
        return [m for m in (PATH_LAST.match(line) for line in f) if m]


@pytest.mark.parametrize("row", _path_last_rows(), ids=lambda m: f"{m['path']}:{m['cells'].split('|')[0].strip()}")
def test_every_diagnostics_and_per_class_row_is_the_committed_results_json(row):
    with open(os.path.join(REPO, row["path"], "results.json")) as f:
        result = json.load(f)
    cells = [c.strip() for c in row["cells"].split("|")] + [f"`{row['path']}`"]
    if len(cells) == len(results_tables.DIAGNOSTICS_HEADER):
        assert cells == results_tables.diagnostics_cells(result, row["path"])
    elif len(cells) == len(results_tables.FIDELITY_HEADER):
        assert cells == results_tables.fidelity_cells(result, row["path"])
    else:
        assert len(cells) == len(results_tables.PER_CLASS_HEADER), f"{row['path']}: a row of no known table"
        assert cells in results_tables.per_class_cells(result, row["path"])


MAMMO_RESULT = os.path.join(REPO, "results", "mammo_demo", "results.json")


def test_the_mammography_table_is_the_committed_study_result():
    from medgan.study import mammo

    with open(MAMMO_RESULT) as f:
        result = json.load(f)
    with open(RESULTS_MD) as f:
        page = f.read().splitlines()
    for line in mammo.markdown_table(result["table"]):
        assert line in page, f"RESULTS.md lacks the mammography table row {line!r} of {MAMMO_RESULT}"


READERS = os.path.join(REPO, "results", "demo_readers")
RESOLUTION_READERS = os.path.join(REPO, "results", "resolution_readers")


@pytest.mark.parametrize("readers", [READERS, RESOLUTION_READERS], ids=os.path.basename)
def test_the_simulated_reader_tables_are_the_committed_scores(readers):
    with open(RESULTS_MD) as f:
        page = f.read().splitlines()
    with open(os.path.join(readers, "simulated", "scores.md")) as f:
        rows = [line for line in f.read().splitlines() if line.startswith("| classifier")]
    assert rows, "the committed simulated-reader scores have no classifier row"
    for line in rows:
        assert line in page, f"RESULTS.md lacks the simulated reader's row {line!r}"


def test_the_simulated_readers_held_out_aucs_are_stated_as_committed():
    with open(RESULTS_MD) as f:
        page = " ".join(f.read().split())
    with open(os.path.join(READERS, "results.json")) as f:
        (held,) = json.load(f)["simulated_reader"]["per_resolution"].values()
    stated = f"on {held['held_out_images']} further held-out images (a tenth of each pool) is also " \
             f"{fmt.number(held['held_out_auc'])}"
    assert stated in page, "RESULTS.md must state the demo's simulated reader's held-out AUC as committed"
    with open(os.path.join(RESOLUTION_READERS, "results.json")) as f:
        per_resolution = json.load(f)["simulated_reader"]["per_resolution"]
    stated = "held-out AUC " + " and ".join(
        f"{fmt.number(h['held_out_auc'])} on {h['held_out_images']} images at {px} px"
        for px, h in sorted(per_resolution.items(), key=lambda item: int(item[0])))
    assert stated in page, f"RESULTS.md must state {stated!r}"


def test_every_number_of_the_summary_is_in_a_checked_table_of_the_page():
    with open(RESULTS_MD) as f:
        text = f.read()
    before, after = text.split("## Summary", 1)
    summary, rest = after.split("\n## ", 1)
    numbers = re.findall(r"\b\d\.\d{3}\b", summary)
    assert numbers, "the summary states no measured number"
    for number in numbers:
        assert re.search(rf"\| {re.escape(number)} \|", before + rest), (
            f"the summary's {number} is in no table of RESULTS.md")


MAMMO_VARIANT = re.compile(r"^\| `(?P<path>results/mammo_[^`]+)` \| [^|]+ \|(?P<cells>.*)\|\s*$")


def mammo_variant_cells(result: dict) -> str:
    """The measured cells of a mammography-variant row: GAN steps, AUC per share, each GAN's score shift."""
    steps = ", ".join(str(result["gans"][lesion]["steps"]) for lesion in ("mass", "calcification", "removal"))
    aucs = [fmt.number(row["auc"]) for row in result["table"] if row["p0"] in (0.0, 0.5, 1.0)]
    shifts = {e["lesion"]: f"{fmt.number(e['mean_before'])} -> {fmt.number(e['mean_after'])}"
              for e in result["lesion_effects"]}
    return " | ".join([steps, *aucs, *(shifts[lesion] for lesion in ("mass", "calcification", "removal"))])


def test_every_mammography_variant_row_is_its_committed_study_result():
    with open(RESULTS_MD) as f:
        rows = [m for m in (MAMMO_VARIANT.match(line) for line in f) if m]
    assert len(rows) >= 2, "RESULTS.md compares the mammography variants in a table"
    for row in rows:
        with open(os.path.join(REPO, row["path"], "results.json")) as f:
            result = json.load(f)
        assert row["cells"].strip() == mammo_variant_cells(result), row["path"]


INSTRUMENT_RESULT = os.path.join(REPO, "results", "instrument", "results.json")


def test_the_instrument_ladder_is_the_committed_run():
    from medgan.study import instrument

    with open(INSTRUMENT_RESULT) as f:
        result = json.load(f)
    with open(RESULTS_MD) as f:
        page = f.read().splitlines()
    for line in instrument.markdown_table(result):
        assert line in page, f"RESULTS.md lacks the instrument table row {line!r} of {INSTRUMENT_RESULT}"
    for check in result["checks"]:
        verdict = "passed" if check["passed"] else "failed"
        assert any(check["check"] in line and verdict in line for line in page), (
            f"RESULTS.md does not state that {check['check']!r} {verdict}")
