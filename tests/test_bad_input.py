"""Bad input, in one place: every case fails with an error naming the file, row or config key, or
is skipped, counted and reported; none leaves output that looks complete.

Cases already covered elsewhere, and not repeated here:
  truncated JPEG, missing and junk image files (test_imaging); truncated, junk and missing DICOM
  (test_rsna_ich); missing columns and unknown label values in either CSV (test_chexpert,
  test_rsna_ich); a cohort too small for a fold (test_folds, test_study_folds); unreadable images skipped,
  counted and reported, all unreadable an error leaving no dataset (test_builders); unknown
  config keys and a GAN resolution that is not a power of two (test_configuration); a missing
  synthetic cohort or generator directory (test_train_classifier, test_train_gan).
"""

import io
import json

import ml_collections
import numpy as np
import pytest
from helpers import ct_dataset
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate

from medgan import configuration
from medgan.data import builders, chexpert, cohorts, folds, imaging, rsna_ich
from medgan.data.labels import CHEXPERT_FINDINGS
from medgan.data.records import ImageRecord, UnreadableImage
from medgan.workdir import DATASET_DIR, MANIFEST_FILE

# --- JPEG and PNG -------------------------------------------------------------------------


def _encoded(fmt: str, side: int = 32) -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (side, side), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format=fmt)
    return buffer.getvalue()


def _png_with_corrupt_idat() -> bytes:
    """A PNG whose compressed pixel data is damaged (and its CRC no longer matches)."""
    data = bytearray(_encoded("PNG"))
    start = data.index(b"IDAT") + 4
    for i in range(start + 10, start + 30):
        data[i] ^= 0x5A
    return bytes(data)


BAD_IMAGES = {
    "half.png": lambda: _encoded("PNG")[: len(_encoded("PNG")) // 2],
    "header_only.png": lambda: _encoded("PNG")[:40],
    "corrupt_idat.png": _png_with_corrupt_idat,
    "header_only.jpg": lambda: _encoded("JPEG")[:40],
    "empty.png": lambda: b"",
    "empty.jpg": lambda: b"",
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_truncated_or_corrupt_png_and_jpeg_are_unreadable_naming_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BAD_IMAGES[name]())
    with pytest.raises(UnreadableImage, match=name):
        imaging.read_grayscale(path)


# --- DICOM --------------------------------------------------------------------------------


def _slice(pixels=None, **tags) -> Dataset:
    """A minimal uncompressed CT slice (uint16 [8, 8] unless `pixels`), tags overridden by `tags`."""
    pixels = np.full((8, 8), 1024, np.uint16) if pixels is None else pixels
    ds = ct_dataset()
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8 * pixels.itemsize
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = pixels.tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def _write(ds: Dataset, path, **kwargs):
    ds.save_as(path, enforce_file_format=True, **kwargs)
    return path


def _colour(photometric: str) -> Dataset:
    """An 8-bit three-sample slice: what an RGB or YBR secondary capture looks like."""
    ds = _slice(np.zeros((8, 8), np.uint8), SamplesPerPixel=3, PhotometricInterpretation=photometric,
                PlanarConfiguration=0)
    ds.PixelData = np.zeros((8, 8, 3), np.uint8).tobytes()
    return ds


def test_dicom_without_pixel_data_is_unreadable(tmp_path):
    ds = _slice()
    del ds.PixelData
    path = _write(ds, tmp_path / "ID_nopixels.dcm")
    with pytest.raises(UnreadableImage, match=r"ID_nopixels\.dcm: .*no \(7FE0,0010\) PixelData element"):
        rsna_ich.load_dicom(path, 4)


@pytest.mark.parametrize("syntax, name", [("1.2.3.4.5.6", "1.2.3.4.5.6"),
                                          ("1.2.840.10008.1.2.4.100", "MPEG2")])
def test_dicom_with_an_unknown_or_unsupported_transfer_syntax_is_unreadable(tmp_path, syntax, name):
    ds = _slice()
    ds.file_meta.TransferSyntaxUID = syntax
    if syntax.startswith("1.2.840"):
        ds.PixelData = encapsulate([ds.PixelData])
        path = _write(ds, tmp_path / "ID_syntax.dcm")
    else:  # a private syntax: pydicom needs to be told how to write the data set
        path = _write(ds, tmp_path / "ID_syntax.dcm", implicit_vr=False, little_endian=True)
    with pytest.raises(UnreadableImage, match=rf"ID_syntax\.dcm: .*Transfer Syntax UID.*{name}.*not supported"):
        rsna_ich.load_dicom(path, 4)


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR"])
def test_colour_dicom_is_refused_by_its_header(tmp_path, photometric):
    if photometric == "PALETTE COLOR":  # one sample per pixel: would decode to a 2-D array of palette indices
        ds = _slice(PhotometricInterpretation=photometric)
    else:
        ds = _colour(photometric)
    path = _write(ds, tmp_path / "ID_colour.dcm")
    with pytest.raises(UnreadableImage, match=rf"ID_colour\.dcm: .*PhotometricInterpretation '{photometric}'"):
        rsna_ich.load_dicom(path, 4)


def test_multi_frame_dicom_is_refused_by_its_header(tmp_path):
    ds = _slice(np.zeros((3, 8, 8), np.uint16), NumberOfFrames=3)
    path = _write(ds, tmp_path / "ID_frames.dcm")
    with pytest.raises(UnreadableImage, match=r"ID_frames\.dcm: .*NumberOfFrames 3"):
        rsna_ich.load_dicom(path, 4)


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS:UserWarning")
@pytest.mark.parametrize("slope", ["nan", "inf"])
def test_non_finite_rescale_is_unreadable(tmp_path, slope):
    path = _write(_slice(RescaleSlope=slope), tmp_path / "ID_rescale.dcm")
    with pytest.raises(UnreadableImage, match=r"ID_rescale\.dcm: .*RescaleSlope"):
        rsna_ich.load_dicom(path, 4)


def _ich_csv(root, text: str, encoding: str = "utf-8") -> None:
    (root / "stage_2_train.csv").write_bytes(text.encode(encoding))


def _ich_rows(image_id: str, any_: int = 0) -> list[str]:
    subtypes = [f"{image_id}_{s},0" for s in rsna_ich.CSV_SUBTYPES[:-1]]
    return subtypes + [f"{image_id}_any,{any_}"]


def test_a_colour_dicom_in_a_cohort_is_skipped_counted_and_reported(tmp_path):
    root = tmp_path / "rsna"
    (root / "stage_2_train").mkdir(parents=True)
    _ich_csv(root, "\n".join(["ID,Label", *_ich_rows("ID_0a"), *_ich_rows("ID_0b")]) + "\n")
    _write(_slice(), root / "stage_2_train" / "ID_0a.dcm")
    _write(_colour("RGB"), root / "stage_2_train" / "ID_0b.dcm")
    prepared = builders.prepare(rsna_ich.RsnaIchSource(root), 4, tmp_path / "prepared", load_workers=1)
    assert (prepared.num_indexed, prepared.num_written, prepared.num_skipped) == (2, 1, 1)
    report = json.loads((tmp_path / prepared.dataset_dir / builders.REPORT_FILE).read_text())
    [skipped] = report["skipped"]
    assert skipped["image_id"] == "ID_0b" and "PhotometricInterpretation 'RGB'" in skipped["error"]
    assert [r.image_id for r in builders.read_index(prepared.dataset_dir)] == ["ID_0a"]


# --- CSV ----------------------------------------------------------------------------------


def _chexpert_text(line_end: str = "\n") -> str:
    header = ",".join(["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_FINDINGS])
    findings = ["1.0"] + [""] * (len(CHEXPERT_FINDINGS) - 1)
    row = ",".join(["CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg", "Female", "68",
                    "Frontal", "AP", *findings])
    return line_end.join([header, row]) + line_end


def test_empty_csv_files_name_the_file(tmp_path):
    (tmp_path / "train.csv").write_bytes(b"")
    with pytest.raises(ValueError, match=r"train\.csv: empty file; expected a header row with the columns Path"):
        chexpert.read_index(tmp_path)
    _ich_csv(tmp_path, "")
    with pytest.raises(ValueError, match=r"stage_2_train\.csv: empty file; expected a header row with the columns ID"):
        rsna_ich.read_labels(tmp_path / "stage_2_train.csv")


def test_a_csv_with_only_a_header_yields_no_images_and_prepare_says_so(tmp_path):
    (tmp_path / "train.csv").write_text(_chexpert_text().splitlines()[0] + "\n")
    source = chexpert.CheXpertSource(tmp_path)
    assert source.index() == ([], {"lateral": 0, "uncertain": 0, "no_positive": 0})
    with pytest.raises(ValueError, match="chexpert: index\\(\\) returned no images"):
        builders.prepare(source, 16, tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists() or not any((tmp_path / "prepared").rglob(builders.INDEX_FILE))


@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_byte_order_mark_and_crlf_simply_work(tmp_path, bom, line_end):
    encoding = "utf-8-sig" if bom else "utf-8"
    (tmp_path / "train.csv").write_bytes(_chexpert_text(line_end).encode(encoding))
    records, _ = chexpert.read_index(tmp_path)
    assert [r.image_id for r in records] == ["patient00001/study1/view1_frontal"]
    _ich_csv(tmp_path, line_end.join(["ID,Label", *_ich_rows("ID_0a", 0)]) + line_end, encoding)
    assert rsna_ich.read_labels(tmp_path / "stage_2_train.csv") == {"ID_0a": (1, 0, 0, 0, 0, 0)}


def test_csv_that_is_not_utf8_names_the_file(tmp_path):
    text = "\n".join(["ID,Label", *_ich_rows("ID_0a")]) + "\n"
    (tmp_path / "stage_2_train.csv").write_bytes(text.encode().replace(b"ID_0a_any", b"ID_0a_\xe9ny"))
    with pytest.raises(ValueError, match=r"stage_2_train\.csv, near row \d+: not UTF-8 CSV text"):
        rsna_ich.read_labels(tmp_path / "stage_2_train.csv")


# --- paths that do not exist --------------------------------------------------------------


def _data(source: str, root: str) -> ml_collections.ConfigDict:
    data = configuration.data_config()
    data.source, data.root = source, root
    return data


@pytest.mark.parametrize("source", ["chexpert", "rsna_ich"])
def test_a_cohort_root_that_does_not_exist_names_the_config_key(tmp_path, source):
    with pytest.raises(FileNotFoundError, match=r"config\.data\.root='.*nowhere': no such directory"):
        cohorts.make_source(_data(source, str(tmp_path / "nowhere")))


def test_a_label_csv_that_does_not_exist_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train\.csv"):
        chexpert.CheXpertSource(tmp_path).index()
    with pytest.raises(FileNotFoundError, match=r"stage_2_train\.csv"):
        rsna_ich.RsnaIchSource(tmp_path).index()


def _prepared(name: str = "medgan_prepared/coded_16px_x/1.0.0", class_names=("a", "b", "c"), dataset_dir="") -> \
        builders.PreparedDataset:
    return builders.PreparedDataset(name, dataset_dir, tuple(class_names), 16, 1, 0, 0, 0)


def test_a_fold_manifest_that_does_not_exist_names_the_config_key(tmp_path):
    fold = ml_collections.ConfigDict(configuration.fold_config())
    fold.manifest = str(tmp_path / "absent.json")
    with pytest.raises(FileNotFoundError, match=r"config\.fold\.manifest='.*absent\.json' does not exist"):
        cohorts.fold_of(fold, str(tmp_path), _prepared())


@pytest.mark.parametrize("content, match", [
    ("", "not JSON"),
    ("[1, 2]", "a JSON list, not an object"),
    (json.dumps({"format": folds.MANIFEST_FORMAT, "dataset": "d"}), "not a complete fold manifest"),
])
def test_a_manifest_that_is_not_one_names_the_file(tmp_path, content, match):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ValueError, match=rf"manifest\.json: .*{match}"):
        folds.read_manifest(tmp_path / "manifest.json")


# --- folds --------------------------------------------------------------------------------


def _records(patients_of: dict[tuple[int, ...], list[str]]) -> list[ImageRecord]:
    """Two images per (combination, patient)."""
    return [
        ImageRecord(f"{p}-{''.join(map(str, c))}-{i}", p, c)
        for c, patients in patients_of.items()
        for p in patients
        for i in range(2)
    ]


def test_an_empty_cohort_has_no_fold():
    with pytest.raises(ValueError, match="no records to draw a fold from"):
        folds.make_fold([], class_names=("a", "b"), dataset="d", num_combinations=1, per_combination=1,
                        val_per_combination=1, test_per_combination=1, seed=0)


def test_an_unbalanced_fold_with_a_combination_without_training_images_fails():
    patients = [f"p{i:03d}" for i in range(40)]
    split_of = folds._assign_patients(_records({(1, 0): patients}), (0.8, 0.1, 0.1), seed=0)
    held_out = [p for p in patients if split_of[p] != "train"]
    records = _records({(1, 0): patients, (0, 1): held_out[:2]})
    with pytest.raises(ValueError, match=r"too small for this fold.*\n  b \[0, 1\] train: 0 images among the "
                                         r"train patients, 1 requested"):
        folds.make_fold(records, class_names=("a", "b"), dataset="d", num_combinations=0, per_combination=0,
                        val_images=2, test_images=2, seed=0)


# --- a synthetic cohort whose label set differs from the real fold's ----------------------


def _fold(combinations, class_names=("a", "b", "c")) -> folds.Fold:
    patients = [f"p{i:03d}" for i in range(30)]
    records = _records({c: patients for c in combinations})
    return folds.make_fold(records, class_names=class_names, dataset="d", num_combinations=len(combinations),
                           per_combination=2, val_per_combination=1, test_per_combination=1, seed=0)


def _synthetic_dir(tmp_path, fold: folds.Fold, with_dataset: bool = True) -> str:
    directory = tmp_path / "synthetic"
    directory.mkdir()
    folds.write_manifest(fold, directory / MANIFEST_FILE)
    if with_dataset:
        (directory / DATASET_DIR).mkdir()
    return str(directory)


def test_a_synthetic_cohort_with_the_real_label_set_is_accepted(tmp_path):
    real = _fold([(1, 0, 0), (0, 1, 0)])
    data = cohorts.training_data(_synthetic_dir(tmp_path, real), _prepared(), real)
    assert data.train_ids == real.ids["train"] and data.description.startswith("synthetic:")


def test_a_synthetic_cohort_with_other_class_names_is_refused(tmp_path):
    real = _fold([(1, 0, 0), (0, 1, 0)])
    other = _fold([(1, 0, 0), (0, 1, 0)], class_names=("a", "b", "z"))
    with pytest.raises(ValueError, match=r"manifest\.json: classes \('a', 'b', 'z'\) differ from the real"):
        cohorts.training_data(_synthetic_dir(tmp_path, other), _prepared(), real)


def test_a_synthetic_cohort_with_other_label_combinations_is_refused(tmp_path):
    real = _fold([(1, 0, 0), (0, 1, 0)])
    other = _fold([(1, 0, 0), (0, 0, 1)])
    with pytest.raises(ValueError, match=r"manifest\.json: the synthetic cohort's label combinations differ "
                                         r"from the real fold's \(only synthetic: \['c'\]; only real: \['b'\]\)"):
        cohorts.training_data(_synthetic_dir(tmp_path, other), _prepared(), real)


def test_a_synthetic_cohort_without_its_dataset_is_refused(tmp_path):
    real = _fold([(1, 0, 0), (0, 1, 0)])
    with pytest.raises(FileNotFoundError, match=r"config\.classifier\.train_data=.*no dataset/ beside manifest"):
        cohorts.training_data(_synthetic_dir(tmp_path, real, with_dataset=False), _prepared(), real)


# --- config -------------------------------------------------------------------------------


def test_a_start_resolution_that_is_not_a_power_of_two_names_the_key():
    config = configuration.base_config("train_gan")
    config.gan.start_resolution = 12
    with pytest.raises(configuration.ConfigError, match=r"config\.gan\.start_resolution=12: expected a power of two"):
        configuration.validate(config)


@pytest.mark.parametrize("key, value, devices, message", [
    ("classifier.global_batch_size", 48, 5, r"config\.classifier\.global_batch_size=48: not divisible by the 5"),
    ("gan.global_batch_size", 12, 8, r"config\.gan\.global_batch_size=12: not divisible by the 8"),
    ("synthesize.global_batch_size", 10, 4, r"config\.synthesize\.global_batch_size=10: not divisible by the 4"),
    ("gan.batch_by_resolution", ((8, 64), (16, 12)), 8,
     r"config\.gan\.batch_by_resolution: the global batch 12 of stage 16 px is not divisible by the 8"),
])
def test_a_batch_that_does_not_split_over_the_devices_names_the_key(key, value, devices, message):
    config = configuration.base_config("benchmark")
    section, leaf = key.split(".")
    config[section][leaf] = value
    configuration.validate(config)  # valid in itself: only the device count makes it impossible
    with pytest.raises(configuration.ConfigError, match=message):
        configuration.check_devices(config, devices)


@pytest.mark.parametrize("job", sorted(configuration.JOBS))
def test_the_default_batches_split_over_one_and_eight_devices(job):
    for devices in (1, 8):
        configuration.check_devices(configuration.base_config(job), devices)


def test_a_job_refuses_a_batch_that_does_not_split_before_it_touches_the_cohort(tmp_path):
    import jax

    from medgan import main

    config = configuration.base_config("train_gan")
    config.data.source = "phantom_head_ct"
    config.data.prepared_dir = str(tmp_path / "prepared")
    config.gan.global_batch_size = jax.device_count() + 1
    config.gan.batch_by_resolution = ()
    with pytest.raises(configuration.ConfigError, match=r"config\.gan\.global_batch_size=\d+: not divisible"):
        main.run_job(config, str(tmp_path / "gan"))
    assert not (tmp_path / "prepared").exists()
