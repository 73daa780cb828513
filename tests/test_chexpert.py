"""medgan.data.chexpert: train.csv parsing, label policies, path resolution, loading."""

import csv

import numpy as np
import pytest
from PIL import Image

from medgan.data import chexpert
from medgan.data.labels import CHEXPERT_FINDINGS
from medgan.data.records import ImageRecord, UnreadableImage

HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_FINDINGS]
PREFIX = "CheXpert-v1.0-small/train"


def _row(path, view="Frontal", **findings):
    """A CSV row; findings by name with spaces as underscores, others blank."""
    values = {name: "" for name in CHEXPERT_FINDINGS}
    for key, value in findings.items():
        values[key.replace("_", " ")] = value
    return [path, "Female", "68", view, "AP" if view == "Frontal" else ""] + [
        values[name] for name in CHEXPERT_FINDINGS
    ]


# Rows 2-7 of the file (header = row 1).
ROWS = [
    # Only "No Finding" positive; explicit 0.0 elsewhere in places.
    _row(f"{PREFIX}/patient00001/study1/view1_frontal.jpg", No_Finding="1.0", Edema="0.0"),
    # Lateral of the same study: dropped.
    _row(f"{PREFIX}/patient00001/study1/view2_lateral.jpg", view="Lateral", Edema="1.0"),
    # Uncertain cardiomegaly with a certain oedema.
    _row(
        f"{PREFIX}/patient00002/study1/view1_frontal.jpg",
        Cardiomegaly="-1.0", Edema="1.0", Support_Devices="0.0",
    ),
    # Nothing positive (0.0 and blank): dropped under every policy.
    _row(f"{PREFIX}/patient00002/study2/view1_frontal.jpg", Edema="0.0", Fracture="0.0"),
    # Only an uncertain finding: positive under "ones" only.
    _row(f"{PREFIX}/patient00003/study1/view1_frontal.jpg", Pleural_Effusion="-1.0"),
    # Support device plus a positive finding, integer spellings.
    _row(f"{PREFIX}/patient00003/study2/view1_frontal.jpg", Lung_Opacity="1", Support_Devices="1"),
]


def _vector(*names):
    return tuple(int(name in names) for name in CHEXPERT_FINDINGS)


def _write_csv(folder, rows, header=HEADER, name="train.csv"):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return folder


@pytest.fixture
def root(tmp_path):
    return _write_csv(tmp_path / "CheXpert-v1.0-small", ROWS)


def test_policy_ones(root):
    records, dropped = chexpert.read_index(root)
    assert dropped == {"lateral": 1, "uncertain": 0, "no_positive": 1}
    assert records == [
        ImageRecord(
            "patient00001/study1/view1_frontal", "patient00001", _vector("No Finding"),
            "train/patient00001/study1/view1_frontal.jpg",
        ),
        ImageRecord(
            "patient00002/study1/view1_frontal", "patient00002", _vector("Cardiomegaly", "Edema"),
            "train/patient00002/study1/view1_frontal.jpg",
        ),
        ImageRecord(
            "patient00003/study1/view1_frontal", "patient00003", _vector("Pleural Effusion"),
            "train/patient00003/study1/view1_frontal.jpg",
        ),
        ImageRecord(
            "patient00003/study2/view1_frontal", "patient00003",
            _vector("Lung Opacity", "Support Devices"),
            "train/patient00003/study2/view1_frontal.jpg",
        ),
    ]


def test_policy_zeros(root):
    records, dropped = chexpert.read_index(root, policy="zeros")
    assert dropped == {"lateral": 1, "uncertain": 0, "no_positive": 2}
    assert [(r.image_id, r.labels) for r in records] == [
        ("patient00001/study1/view1_frontal", _vector("No Finding")),
        ("patient00002/study1/view1_frontal", _vector("Edema")),
        ("patient00003/study2/view1_frontal", _vector("Lung Opacity", "Support Devices")),
    ]


def test_policy_ignore_drops_uncertain_rows(root):
    records, dropped = chexpert.read_index(root, policy="ignore")
    assert dropped == {"lateral": 1, "uncertain": 2, "no_positive": 1}
    assert [(r.image_id, r.labels) for r in records] == [
        ("patient00001/study1/view1_frontal", _vector("No Finding")),
        ("patient00003/study2/view1_frontal", _vector("Lung Opacity", "Support Devices")),
    ]


def test_unknown_policy(root):
    with pytest.raises(ValueError, match="'u-mixed'"):
        chexpert.read_index(root, policy="u-mixed")
    with pytest.raises(ValueError, match="'u-mixed'"):
        chexpert.CheXpertSource(root, policy="u-mixed")


def test_bad_value_names_file_row_and_column(tmp_path):
    rows = list(ROWS)
    rows[2] = _row(f"{PREFIX}/patient00002/study1/view1_frontal.jpg", Edema="2.0")
    root = _write_csv(tmp_path / "CheXpert-v1.0-small", rows)
    with pytest.raises(ValueError) as error:
        chexpert.read_index(root)
    message = str(error.value)
    assert str(root / "train.csv") in message
    assert "row 4" in message and "'Edema'" in message and "'2.0'" in message


def test_bad_value_in_a_dropped_row_still_fails(tmp_path):
    rows = [_row(f"{PREFIX}/patient00001/study1/view2_lateral.jpg", view="Lateral", Edema="yes")]
    root = _write_csv(tmp_path / "CheXpert-v1.0-small", rows)
    with pytest.raises(ValueError, match=r"row 2, column 'Edema': 'yes'"):
        chexpert.read_index(root)


def test_missing_column_names_file_and_column(tmp_path):
    header = [name for name in HEADER if name != "Pneumothorax"]
    rows = [row[: HEADER.index("Pneumothorax")] + row[HEADER.index("Pneumothorax") + 1 :] for row in ROWS]
    root = _write_csv(tmp_path / "CheXpert-v1.0-small", rows, header=header)
    with pytest.raises(ValueError, match=r"train\.csv: missing column\(s\) 'Pneumothorax'"):
        chexpert.read_index(root)


@pytest.mark.parametrize(
    "row, match",
    [
        (_row(f"{PREFIX}/patient00009/study1/view1_frontal.jpg", view="Oblique"),
         r"row 2, column 'Frontal/Lateral': 'Oblique'"),
        (_row("CheXpert-v1.0-small/train/p9/study1/view1_frontal.jpg", Edema="1.0"),
         r"row 2, column 'Path'.*patientNNNNN"),
        (_row(f"{PREFIX}/patient00009/study1/view1_frontal.jpg")[:-1], r"row 2: 18 fields, the header has 19"),
    ],
)
def test_malformed_rows(tmp_path, row, match):
    root = _write_csv(tmp_path / "CheXpert-v1.0-small", [row])
    with pytest.raises(ValueError, match=match):
        chexpert.read_index(root)


def test_duplicate_image_names_both_rows(tmp_path):
    root = _write_csv(tmp_path / "CheXpert-v1.0-small", [ROWS[0], ROWS[2], ROWS[0]])
    with pytest.raises(ValueError, match=r"row 4.*patient00001/study1/view1_frontal already listed in row 2"):
        chexpert.read_index(root)


def test_blank_trailing_line_is_ignored(root):
    with open(root / "train.csv", "a") as f:
        f.write("\n")
    assert len(chexpert.read_index(root)[0]) == 4


# --- root convention ------------------------------------------------------------


def test_paths_relative_to_root_are_accepted(tmp_path):
    rows = [_row("train/patient00001/study1/view1_frontal.jpg", Edema="1.0")]
    root = _write_csv(tmp_path / "chexpert", rows)
    (root / "train").mkdir()
    [record], _ = chexpert.read_index(root)
    assert record.path == "train/patient00001/study1/view1_frontal.jpg"
    assert record.image_id == "patient00001/study1/view1_frontal"


def test_renamed_dataset_folder_strips_release_name(tmp_path):
    root = _write_csv(tmp_path / "my_chexpert", ROWS[:1])
    (root / "train").mkdir()
    [record], _ = chexpert.read_index(root)
    assert record.path == "train/patient00001/study1/view1_frontal.jpg"


def test_csv_beside_the_image_folder_resolves_via_parent(tmp_path):
    (tmp_path / "CheXpert-v1.0-small" / "train").mkdir(parents=True)
    root = _write_csv(tmp_path / "labels_v2", ROWS[:1])
    [record], _ = chexpert.read_index(root)
    assert record.path == "../CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"
    assert (root / record.path).parent.parent.parent.is_dir()


def test_valid_csv_and_trailing_slash(tmp_path):
    rows = [_row("CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg", Edema="1.0")]
    root = _write_csv(tmp_path / "CheXpert-v1.0-small", rows, name="valid.csv")
    [record], _ = chexpert.read_index(str(root) + "/", csv_name="valid.csv")
    assert record == ImageRecord(
        "patient64541/study1/view1_frontal", "patient64541", _vector("Edema"),
        "valid/patient64541/study1/view1_frontal.jpg",
    )


# --- CheXpertSource -----------------------------------------------------------------


def _save_jpeg(root, record, array):
    path = root / record.path
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=95)


def test_source_index_and_load(root):
    source = chexpert.CheXpertSource(root)
    assert (source.name, source.class_names, source.channels) == ("chexpert", CHEXPERT_FINDINGS, 1)
    records, dropped = source.index()
    assert (records, dropped) == chexpert.read_index(root)
    wide = np.full((40, 80), 200, np.uint8)  # landscape: "pad" adds black bands
    _save_jpeg(root, records[1], wide)
    image, patient_id = source.load(records[1], 32)
    assert image.shape == (32, 32, 1) and image.dtype == np.uint8
    assert patient_id == "patient00002"
    assert image[0, :, 0].max() <= 2 and image[-1, :, 0].max() <= 2  # padding
    assert abs(int(image[16, 16, 0]) - 200) <= 2  # content

    cropped, _ = chexpert.CheXpertSource(root, to_square="crop").load(records[1], 32)
    assert abs(cropped.astype(int) - 200).max() <= 2  # no bands


def test_source_missing_and_truncated_files(root):
    source = chexpert.CheXpertSource(root)
    records, _ = source.index()
    with pytest.raises(UnreadableImage, match="patient00001/study1/view1_frontal.jpg"):
        source.load(records[0], 32)
    _save_jpeg(root, records[0], np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))
    path = root / records[0].path
    path.write_bytes(path.read_bytes()[:-400])
    with pytest.raises(UnreadableImage, match="view1_frontal.jpg"):
        source.load(records[0], 32)


def test_source_rejects_unknown_square_mode(root):
    with pytest.raises(ValueError, match="'squash'"):
        chexpert.CheXpertSource(root, to_square="squash")
