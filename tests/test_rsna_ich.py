"""medgan.data.rsna_ich and medgan.data.windowing: labels, DICOM -> HU, windows, loading."""

import dataclasses

import numpy as np
import pydicom
import pytest
from helpers import ct_dataset
from pydicom.uid import (
    JPEG2000Lossless,
    RLELossless,
)

from medgan.data import rsna_ich
from medgan.data.labels import ICH_CLASSES
from medgan.data.records import ImageRecord, UnreadableImage
from medgan.data.windowing import WINDOWS, apply_window


def _ct(stored, slope=None, intercept=None, bits_stored=16, patient_id="ID_patient1"):
    """A minimal single-frame CT DICOM dataset holding `stored` (uint16 or int16 [H, W])."""
    ds = ct_dataset(patient_id)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(stored.dtype == np.int16)
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    ds.PixelData = stored.tobytes()
    return ds


def _save(ds, path):
    ds.save_as(path, enforce_file_format=True)
    return path


# uint16, slope 1, intercept -1024: stored = HU + 1024.
UNSIGNED = np.array(
    [[0, 24, 1024, 1044], [1064, 1084, 1104, 4024], [1024, 1024, 1024, 1024], [0, 0, 0, 0]],
    np.uint16,
)
UNSIGNED_HU = np.array(
    [[-1024, -1000, 0, 20], [40, 60, 80, 3000], [0, 0, 0, 0], [-1024] * 4], np.float32
)
# int16, slope 0.5, intercept 10: stored = 2 * (HU - 10).
SIGNED = np.array(
    [[-2020, -20, 0, 20], [60, 100, 140, 5980], [-4000, -3000, 1, -1], [0, 0, 0, 0]], np.int16
)
SIGNED_HU = np.array(
    [[-1000, 0, 10, 20], [40, 60, 80, 3000], [-1990, -1490, 10.5, 9.5], [10] * 4], np.float32
)
BRAIN_ROW = [0, 0, 128, 255]  # brain window (40/80) of HU [-1000, 0, 40, 3000]


# --- windowing ------------------------------------------------------------------


def test_brain_window_exact_values():
    hu = np.array([-1000, 0, 20, 40, 60, 80, 3000], np.float32)
    np.testing.assert_array_equal(apply_window(hu, 40, 80), [0, 0, 64, 128, 191, 255, 255])


@pytest.mark.parametrize(
    "name, hu, expected",
    [
        ("subdural", [-20, 80, 180, 0], [0, 128, 255, 26]),  # 0 HU: 20/200*255 = 25.5 -> 26
        ("bone", [-800, 600, 2000, 0], [0, 128, 255, 73]),  # 0 HU: 800/2800*255 = 72.9 -> 73
    ],
)
def test_extra_windows(name, hu, expected):
    out = apply_window(np.array(hu, np.float32), *WINDOWS[name])
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_window_rejects_nonpositive_width():
    with pytest.raises(ValueError, match="width"):
        apply_window(np.zeros(3), 40, 0)


# --- read_labels ----------------------------------------------------------------


def _label_csv(tmp_path, rows, header="ID,Label"):
    path = tmp_path / "stage_2_train.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _image_rows(image_id, any_, **subtypes):
    rows = [f"{image_id}_{s},{subtypes.get(s, 0)}" for s in rsna_ich.CSV_SUBTYPES[:-1]]
    return rows + [f"{image_id}_any,{any_}"]


def test_pivot_with_identical_duplicates_and_no_finding(tmp_path):
    rows = (
        _image_rows("ID_00a1", 1, subdural=1, subarachnoid=1)
        + _image_rows("ID_00b2", 0)
        + ["ID_00a1_subdural,1", "ID_00b2_any,0"]  # verbatim repeats, as in the release
        + _image_rows("ID_00c3", 1, epidural=1)[::-1]  # any order within an image
    )
    labels = rsna_ich.read_labels(_label_csv(tmp_path, rows))
    assert labels == {
        # (no finding, epidural, intraparenchymal, intraventricular, subarachnoid, subdural)
        "ID_00a1": (0, 0, 0, 0, 1, 1),
        "ID_00b2": (1, 0, 0, 0, 0, 0),
        "ID_00c3": (0, 1, 0, 0, 0, 0),
    }
    assert list(labels) == ["ID_00a1", "ID_00b2", "ID_00c3"]
    assert len(ICH_CLASSES) == 6


def test_conflicting_duplicate_names_both_rows(tmp_path):
    rows = _image_rows("ID_00a1", 1, subdural=1) + ["ID_00a1_subdural,0"]
    with pytest.raises(ValueError, match=r"row 8: ID_00a1_subdural = 0 conflicts with row 6, which gives 1"):
        rsna_ich.read_labels(_label_csv(tmp_path, rows))


def test_missing_subtype_row_names_image(tmp_path):
    rows = _image_rows("ID_00a1", 0) + [r for r in _image_rows("ID_00b2", 0) if "epidural" not in r]
    with pytest.raises(ValueError, match=r"image ID_00b2 has no row for epidural"):
        rsna_ich.read_labels(_label_csv(tmp_path, rows))


@pytest.mark.parametrize(
    "bad_row, match",
    [
        ("ID_00a1_haematoma,0", r"row 8, column 'ID': unknown subtype 'haematoma'"),
        ("ID_zz_epidural,0", r"row 8, column 'ID': 'ID_zz_epidural' is not ID_<hex>_<subtype>"),
        ("ID_00a1_epidural,0.5", r"row 8, column 'Label': '0.5' is not 0 or 1"),
        ("ID_00a1_epidural", r"row 8: 1 fields, the header has 2"),
    ],
)
def test_malformed_rows_name_the_row(tmp_path, bad_row, match):
    path = _label_csv(tmp_path, _image_rows("ID_00a1", 0) + [bad_row])
    with pytest.raises(ValueError, match=match) as error:
        rsna_ich.read_labels(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("any_, subtypes", [(0, {"epidural": 1}), (1, {})])
def test_any_inconsistent_with_subtypes(tmp_path, any_, subtypes):
    rows = _image_rows("ID_00a1", any_, **subtypes)
    with pytest.raises(ValueError, match=r"image ID_00a1 has any = .*must be their OR"):
        rsna_ich.read_labels(_label_csv(tmp_path, rows))


def test_missing_label_column(tmp_path):
    with pytest.raises(ValueError, match=r"missing column\(s\) 'Label'"):
        rsna_ich.read_labels(_label_csv(tmp_path, ["ID_00a1_any,0"], header="ID,Target"))


# --- dicom_to_hu ------------------------------------------------------------------


def test_hu_unsigned_slope1_intercept_minus1024():
    hu = rsna_ich.dicom_to_hu(_ct(UNSIGNED, slope=1, intercept=-1024))
    assert hu.dtype == np.float32
    np.testing.assert_array_equal(hu, UNSIGNED_HU)


def test_hu_signed_slope_half_intercept_10():
    hu = rsna_ich.dicom_to_hu(_ct(SIGNED, slope=0.5, intercept=10))
    np.testing.assert_array_equal(hu, SIGNED_HU)


def test_hu_defaults_without_rescale_tags():
    stored = np.array([[-1000, 0], [40, 3000]], np.int16)
    np.testing.assert_array_equal(rsna_ich.dicom_to_hu(_ct(stored)), stored.astype(np.float32))


def test_hu_signed_12bit_is_sign_extended():
    # -1000 in 12-bit two's complement with garbage-free high bits: 0x0C18.
    stored = np.array([[0x0C18, 40]], np.uint16).view(np.int16)
    np.testing.assert_array_equal(rsna_ich.dicom_to_hu(_ct(stored, 1, 0, bits_stored=12)), [[-1000, 40]])


def test_hu_rsna_wrapped_12bit_fix():
    """BitsStored 12, unsigned, intercept > -100: HU stored modulo 4096 (see dicom_to_hu)."""
    stored = np.array([[3096, 4095, 0, 40], [1000, 2047, 2048, 3095]], np.uint16)
    hu = rsna_ich.dicom_to_hu(_ct(stored, slope=1, intercept=1, bits_stored=12))
    np.testing.assert_array_equal(hu, [[-1000, -1, 0, 40], [1000, 2047, 2048, 3095]])
    # The same values with a consistent header are left alone.
    hu = rsna_ich.dicom_to_hu(_ct(stored, slope=1, intercept=-1024, bits_stored=12))
    np.testing.assert_array_equal(hu, stored.astype(np.float32) - 1024)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "j2k"])
def test_compressed_dicom_decodes_to_same_hu(tmp_path, syntax):
    # Tiled to 32 x 32: OpenJPEG's default 6 resolution levels need >= 32 px.
    for stored, slope, intercept, expected in [
        (UNSIGNED, 1, -1024, UNSIGNED_HU),
        (SIGNED, 0.5, 10, SIGNED_HU),
    ]:
        stored, expected = np.tile(stored, (8, 8)), np.tile(expected, (8, 8))
        ds = _ct(stored, slope, intercept)
        ds.compress(syntax)
        path = _save(ds, tmp_path / "c.dcm")
        read = pydicom.dcmread(path)
        assert read.file_meta.TransferSyntaxUID == syntax
        np.testing.assert_array_equal(rsna_ich.dicom_to_hu(read), expected)


# --- load_dicom -------------------------------------------------------------------


def test_load_dicom_windows_exact(tmp_path):
    path = _save(_ct(UNSIGNED, slope=1, intercept=-1024), tmp_path / "ID_0a.dcm")
    image, patient_id = rsna_ich.load_dicom(path, 4, windows=("brain", "subdural", "bone"))
    assert image.dtype == np.uint8 and image.shape == (4, 4, 3)
    assert patient_id == "ID_patient1"
    for channel, name in enumerate(("brain", "subdural", "bone")):
        np.testing.assert_array_equal(image[..., channel], apply_window(UNSIGNED_HU, *WINDOWS[name]))
    np.testing.assert_array_equal(image[1, :3, 0], [128, 191, 255])


def test_load_dicom_pads_with_air_and_resamples_hu(tmp_path):
    """Landscape 8 x 16 slice: brain (40 HU) with a bone column (1000 HU).

    Padding uses the slice minimum, so it is black in every window; area
    resampling in HU leaves no dark (undershoot) ring beside the bone.
    """
    stored = np.full((8, 16), 40 + 1024, np.uint16)
    stored[:, 8:] = 1000 + 1024
    stored[:, 0] = 0  # out-of-field value, -1024 HU
    path = _save(_ct(stored, 1, -1024), tmp_path / "ID_0b.dcm")
    image, _ = rsna_ich.load_dicom(path, 8, windows=("brain", "subdural"))
    assert image.shape == (8, 8, 2)
    np.testing.assert_array_equal(image[:2], 0)  # padding, 2 rows on each side
    np.testing.assert_array_equal(image[-2:], 0)  # (0 HU padding would be 26 in subdural)
    np.testing.assert_array_equal(image[2:6, 1:4, 0], 128)  # brain, never darker
    np.testing.assert_array_equal(image[2:6, 4:, 0], 255)  # bone


def test_load_dicom_resamples_before_windowing(tmp_path):
    """1 px bone columns among 3 px brain, shrunk 4x: mean 280 HU -> 255.

    Windowing first would give (255 + 3 x 128) / 4 = 160 (rsna_ich docstring).
    """
    stored = np.full((16, 16), 40 + 1024, np.uint16)
    stored[:, 3::4] = 1000 + 1024
    path = _save(_ct(stored, 1, -1024), tmp_path / "ID_0c.dcm")
    image, _ = rsna_ich.load_dicom(path, 4)
    np.testing.assert_array_equal(image, 255)


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter:UserWarning")
def test_unreadable_dicoms(tmp_path):
    with pytest.raises(UnreadableImage, match="ID_absent.dcm"):
        rsna_ich.load_dicom(tmp_path / "ID_absent.dcm", 4)
    (tmp_path / "ID_junk.dcm").write_bytes(b"\x00" * 300)
    with pytest.raises(UnreadableImage, match="ID_junk.dcm"):
        rsna_ich.load_dicom(tmp_path / "ID_junk.dcm", 4)
    for name, syntax in [("ID_cut.dcm", None), ("ID_cut_rle.dcm", RLELossless)]:
        ds = _ct(np.full((16, 16), 1024, np.uint16), 1, -1024)
        if syntax is not None:
            ds.compress(syntax)
        path = _save(ds, tmp_path / name)
        path.write_bytes(path.read_bytes()[:-40])
        with pytest.raises(UnreadableImage, match=name):
            rsna_ich.load_dicom(path, 4)


def test_unknown_window_name(tmp_path):
    with pytest.raises(ValueError, match=r"unknown CT window\(s\) \['lung'\]"):
        rsna_ich.load_dicom(tmp_path / "x.dcm", 4, windows=("brain", "lung"))
    with pytest.raises(ValueError, match="non-empty sequence"):
        rsna_ich.RsnaIchSource(tmp_path, windows="brain")


# --- RsnaIchSource ------------------------------------------------------------------


def test_source_index_and_load(tmp_path):
    _label_csv(tmp_path, _image_rows("ID_00a1", 1, subdural=1) + _image_rows("ID_00b2", 0))
    (tmp_path / "stage_2_train").mkdir()
    _save(_ct(UNSIGNED, 1, -1024, patient_id="ID_p7"), tmp_path / "stage_2_train" / "ID_00a1.dcm")
    _save(_ct(UNSIGNED, 1, -1024, patient_id=None), tmp_path / "stage_2_train" / "ID_00b2.dcm")

    source = rsna_ich.RsnaIchSource(tmp_path, windows=("brain", "subdural"))
    assert (source.name, source.class_names, source.channels) == ("rsna_ich", ICH_CLASSES, 2)
    records, dropped = source.index()
    assert dropped == {}
    assert records == [
        ImageRecord("ID_00a1", "", (0, 0, 0, 0, 0, 1), "stage_2_train/ID_00a1.dcm"),
        ImageRecord("ID_00b2", "", (1, 0, 0, 0, 0, 0), "stage_2_train/ID_00b2.dcm"),
    ]
    image, patient_id = source.load(records[0], 4)
    assert image.shape == (4, 4, 2) and image.dtype == np.uint8 and patient_id == "ID_p7"
    np.testing.assert_array_equal(image[..., 0], apply_window(UNSIGNED_HU, 40, 80))

    # No PatientID in the file: the record's id if it has one, else unusable.
    assert source.load(dataclasses.replace(records[1], patient_id="ID_p8"), 4)[1] == "ID_p8"
    with pytest.raises(UnreadableImage, match="no PatientID"):
        source.load(records[1], 4)
