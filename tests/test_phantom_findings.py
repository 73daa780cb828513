"""The visibility table of the phantoms' findings: zero change when a finding is invisible, its rows, its picture."""

import numpy as np

from medgan.data.labels import CLASSES_BY_MODALITY
from medgan.study import phantom_findings


def test_an_invisible_finding_changes_nothing_and_a_visible_one_its_region():
    index = CLASSES_BY_MODALITY["head_ct"].index("intraparenchymal")
    hidden = phantom_findings.region_changes("head_ct", index, 32, 0.0, patients=40, seed=1, images=5)
    shown = phantom_findings.region_changes("head_ct", index, 32, 1.0, patients=40, seed=1, images=5)
    assert len(hidden) == len(shown) == 5
    np.testing.assert_array_equal(hidden, 0.0)
    assert np.all(shown > phantom_findings.VISIBLE_LEVELS)


def test_the_table_has_a_row_per_class_and_the_picture_a_pair_per_class(tmp_path):
    rows = phantom_findings.measure(0.6, patients=30, images=3, modalities=("head_ct",))
    assert [(r["class"], r["resolution"]) for r in rows][:2] == [("epidural", 32), ("epidural", 64)]
    lines = phantom_findings.markdown(rows, 0.6)
    body = [line for line in lines if line.startswith("| head_ct |")]
    assert len(body) == len(CLASSES_BY_MODALITY["head_ct"]) - 1
    cells = body[1].split("|")[3:-1]
    assert len(cells) == 5 and cells[1].strip().endswith("%")
    path = tmp_path / "head.png"
    phantom_findings.save_picture(str(path), "head_ct", 0.6, resolution=32)
    assert path.read_bytes()[:4] == b"\x89PNG"
