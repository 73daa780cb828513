"""Bounded, deterministic fuzzing of the readers of raw cohort files: label CSVs, DICOM, JPEG/PNG.

Property, for every reader: the input either reads to a valid result or is refused with the
project's error for that input (ValueError for a label CSV, UnreadableImage for an image), and
the message names the file. Any other exception type is a crash the prepare stage would not
count as a skipped image, so it would abort a build of thousands of images instead.

Inputs are valid files with a few bytes overwritten or cut short, files built from the formats'
own tokens in random order, and arbitrary bytes. `derandomize=True`: every run (and CI) tries
the same examples.
"""

import io
import os
import shutil
import warnings

import numpy as np
import pytest
from helpers import ct_dataset
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from medgan.data import chexpert, imaging, rsna_ich
from medgan.data.labels import CHEXPERT_FINDINGS
from medgan.data.records import UnreadableImage

# Fuzzed files make pydicom and PIL warn about every odd value they then read or reject.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One folder per test function, reused by its examples (hypothesis forbids function-scoped fixtures)."""
    root = tmp_path_factory.mktemp("fuzz")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _mutated(seeds: list[bytes]):
    """A seed file with up to 8 bytes overwritten and, sometimes, its tail cut off."""

    @st.composite
    def build(draw):
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(0, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
        return bytes(data)

    return build()


# --- JPEG and PNG -------------------------------------------------------------------------


def _image_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (12, 20), dtype=np.uint8)
    images = [
        (Image.fromarray(gray), "PNG"),
        (Image.fromarray(gray), "JPEG"),
        (Image.fromarray(np.stack([gray] * 3, -1)), "PNG"),
        (Image.fromarray(np.stack([gray] * 3, -1)), "JPEG"),
        (Image.fromarray(gray.astype(np.uint16) * 257), "PNG"),  # 16-bit grayscale, as some exports
    ]
    seeds = []
    for image, fmt in images:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        seeds.append(buffer.getvalue())
    return seeds


@FUZZ
@given(content=st.one_of(_mutated(_image_seeds()), st.binary(max_size=200)))
def test_image_reader_reads_or_refuses_naming_the_file(scratch, content):
    path = scratch / "image.png"
    path.write_bytes(content)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about the odd metadata it skips
            image = imaging.read_grayscale(path)
    except UnreadableImage as err:
        assert str(path) in str(err)
    else:
        assert image.dtype == np.uint8 and image.ndim == 2 and image.size > 0


# --- DICOM --------------------------------------------------------------------------------

PHOTOMETRIC = ["MONOCHROME2", "MONOCHROME1", "RGB", "YBR_FULL", "PALETTE COLOR", "", "monochrome2"]
SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit, "1.2.3.4.5"]


def _dicom_bytes(rows=6, columns=6, samples=1, photometric="MONOCHROME2", frames=None, bits=16,
                 signed=0, slope="1", intercept="-1024", syntax=ExplicitVRLittleEndian, pixels=True,
                 compress=False) -> bytes:
    """A CT slice with the given header, its pixel data sized for the nominal 6 x 6 x 16-bit image."""
    ds = ct_dataset()
    ds.Rows, ds.Columns = 6, 6
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = np.arange(36, dtype=np.uint16).reshape(6, 6).tobytes()
    if compress:
        ds.compress(RLELossless)
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, samples, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, signed
    if frames is not None:
        ds.NumberOfFrames = frames
    if not pixels:
        del ds.PixelData
    buffer = io.BytesIO()
    if not compress:
        ds.file_meta.TransferSyntaxUID = syntax
        if pixels and syntax == JPEGBaseline8Bit:  # raw pixels labelled as a JPEG stream
            ds.PixelData = encapsulate([ds.PixelData])
    private = not compress and syntax == "1.2.3.4.5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buffer, enforce_file_format=True,
                   **({"implicit_vr": False, "little_endian": True} if private else {}))
    return buffer.getvalue()


@st.composite
def _dicom_headers(draw) -> bytes:
    """A slice whose header fields are drawn one by one, each from values good and bad.

    Only values pydicom agrees to write; unparseable ones come from the byte mutations.
    """
    compress = draw(st.booleans())
    return _dicom_bytes(
        rows=draw(st.sampled_from([6, 0, 3, 12, 1000])),
        columns=draw(st.sampled_from([6, 0, 1, 12])),
        samples=draw(st.sampled_from([1, 3, 0])),
        photometric=draw(st.sampled_from(PHOTOMETRIC)),
        frames=draw(st.sampled_from([None, "1", "3", "0"])),
        bits=draw(st.sampled_from([16, 8, 12, 32])),
        signed=draw(st.sampled_from([0, 1])),
        slope=draw(st.sampled_from(["1", "0.5", "0", "-1", "1e30", "NaN"])),
        intercept=draw(st.sampled_from(["-1024", "0", "inf", ""])),
        syntax=draw(st.sampled_from(SYNTAXES)),
        pixels=draw(st.booleans()) or draw(st.booleans()),
        compress=compress,
    )


DICOM_SEEDS = [_dicom_bytes(), _dicom_bytes(compress=True), _dicom_bytes(syntax=ImplicitVRLittleEndian)]


@FUZZ
@given(content=st.one_of(_dicom_headers(), _mutated(DICOM_SEEDS), st.binary(max_size=300)))
def test_dicom_reader_reads_or_refuses_naming_the_file(scratch, content):
    path = scratch / "ID_fuzz.dcm"
    path.write_bytes(content)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about every odd value it then rejects or reads
            image, patient_id = rsna_ich.load_dicom(path, 4)
    except UnreadableImage as err:
        assert str(path) in str(err)
    else:
        assert image.dtype == np.uint8 and image.shape == (4, 4, 1)
        assert isinstance(patient_id, str)


def test_the_dicom_seeds_are_readable(scratch):
    """Otherwise the mutations above would only ever explore broken files."""
    for i, content in enumerate(DICOM_SEEDS):
        (scratch / f"ID_seed{i}.dcm").write_bytes(content)
        image, patient_id = rsna_ich.load_dicom(scratch / f"ID_seed{i}.dcm", 4)
        assert image.shape == (4, 4, 1) and patient_id == "ID_p1"


# --- label CSVs ---------------------------------------------------------------------------

CHEXPERT_HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_FINDINGS]
CHEXPERT_TOKENS = ["1.0", "0.0", "-1.0", "", "1", "-1", "2.0", "nan", "Frontal", "Lateral", "AP", "Female", '"a,b"',
                   "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg",
                   "train/patient00002/study1/view1_frontal.jpg", "/abs/patient00003/s/v.jpg", "Path", "\ufeff"]
ICH_TOKENS = ["ID", "Label", "ID_0a_epidural", "ID_0a_intraparenchymal", "ID_0a_intraventricular",
              "ID_0a_subarachnoid", "ID_0a_subdural", "ID_0a_any", "ID_zz_any", "ID_0a_haematoma", "0", "1", "0.5", ""]


def _csv_file(header: list[str], tokens: list[str], valid_row: list[str]):
    """A label file: a quarter of the time arbitrary bytes, otherwise a header (damaged a quarter of
    the time, so most examples reach the rows) and rows of tokens, some of them the valid row."""
    field = st.one_of(st.sampled_from(tokens), st.text(max_size=6))
    row = st.one_of(st.just(valid_row), st.lists(field, min_size=0, max_size=len(header) + 1))
    fuzzed_header = st.lists(st.sampled_from(tokens + header), max_size=len(header) + 1)

    @st.composite
    def build(draw):
        if draw(st.integers(0, 3)) == 0:
            return draw(st.binary(max_size=200))
        first = draw(fuzzed_header) if draw(st.integers(0, 3)) == 0 else header
        rows = [first, *draw(st.lists(row, max_size=8))]
        line_end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
        bom = draw(st.sampled_from(["", "\ufeff"]))
        return (bom + line_end.join(",".join(r) for r in rows) + draw(st.sampled_from(["", line_end]))).encode()

    return build()


def _chexpert_row() -> list[str]:
    return [CHEXPERT_TOKENS[13], "Female", "68", "Frontal", "AP", "1.0"] + [""] * (len(CHEXPERT_FINDINGS) - 1)


CHEXPERT_FILES = _csv_file(CHEXPERT_HEADER, CHEXPERT_TOKENS, _chexpert_row())
ICH_FILES = _csv_file(["ID", "Label"], ICH_TOKENS, ["ID_0a_any", "0"])


@FUZZ
@given(content=CHEXPERT_FILES, policy=st.sampled_from(chexpert.POLICIES))
def test_chexpert_csv_reader_reads_or_refuses_naming_the_file(scratch, content, policy):
    path = scratch / "train.csv"
    path.write_bytes(content)
    try:
        records, dropped = chexpert.read_index(scratch, policy=policy)
    except ValueError as err:
        assert os.fspath(path) in str(err)
    else:
        assert set(dropped) == {"lateral", "uncertain", "no_positive"}
        for record in records:
            assert len(record.labels) == len(CHEXPERT_FINDINGS) and set(record.labels) <= {0, 1}
            assert any(record.labels) and record.patient_id.startswith("patient")


@FUZZ
@given(content=ICH_FILES)
def test_rsna_csv_reader_reads_or_refuses_naming_the_file(scratch, content):
    path = scratch / "stage_2_train.csv"
    path.write_bytes(content)
    try:
        labels = rsna_ich.read_labels(path)
    except ValueError as err:
        assert os.fspath(path) in str(err)
    else:
        for image_labels in labels.values():
            assert len(image_labels) == 6 and set(image_labels) <= {0, 1}
            assert image_labels[0] == 1 - max(image_labels[1:])
