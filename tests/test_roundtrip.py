"""Phantom cohorts written in the real on-disk layouts read back by the real loaders.

medgan.data.phantoms writes CheXpert (CSV + JPEG) and RSNA ICH (CSV + DICOM)
layouts and returns the records the loaders should recover; this checks the
two modules agree on every label, id and patient, and that the pixels survive.
"""

import csv
import dataclasses

import numpy as np
import pydicom
import pytest

from medgan.data import chexpert, imaging, phantoms, rsna_ich

SEED = 3


@pytest.fixture(scope="module")
def chest_layout(tmp_path_factory):
    """12 chest patients written at 40 px with many laterals and uncertain labels."""
    records = phantoms.sample_cohort("chest", 12, SEED)
    root = tmp_path_factory.mktemp("chexpert") / "CheXpert-v1.0-small"
    written = phantoms.write_chexpert_layout(
        root, records, resolution=40, seed=SEED, lateral_fraction=0.3, uncertain_fraction=0.3
    )
    return records, root, written


def test_chexpert_index_recovers_written_records(chest_layout):
    _, root, written = chest_layout
    with open(root / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    laterals = sum(row["Frontal/Lateral"] == "Lateral" for row in rows)
    assert laterals > 0 and any("-1.0" in row.values() for row in rows)  # the rules are exercised

    records, dropped = chexpert.CheXpertSource(root).index()
    assert records == written
    assert dropped == {"lateral": laterals, "uncertain": 0, "no_positive": 0}


def test_chexpert_loads_written_pixels(chest_layout):
    originals, root, written = chest_layout
    source = chexpert.CheXpertSource(root)
    phantom = phantoms.PhantomSource("chest", 12, SEED)
    for original, record in zip(originals, written, strict=True):
        image, patient_id = source.load(record, 32)
        assert image.shape == (32, 32, 1) and image.dtype == np.uint8
        assert patient_id == record.patient_id
        expected = imaging.resize(phantom.load(original, 40)[0][..., 0], 32)
        assert np.abs(image[..., 0].astype(int) - expected).mean() < 2  # JPEG q95 error only


@pytest.fixture(scope="module")
def head_layout(tmp_path_factory):
    """10 head CT patients written at 32 px, half of the files compressed."""
    records = phantoms.sample_cohort("head_ct", 10, SEED)
    root = tmp_path_factory.mktemp("rsna")
    written = phantoms.write_rsna_layout(root, records, resolution=32, seed=SEED, compressed_fraction=0.5)
    return records, root, written


def test_rsna_roundtrip_labels_patients_and_pixels(head_layout):
    originals, root, written = head_layout
    syntaxes = {
        pydicom.dcmread(root / record.path, stop_before_pixels=True).file_meta.TransferSyntaxUID.is_compressed
        for record in written
    }
    assert syntaxes == {True, False}  # compressed and native files are both exercised

    source = rsna_ich.RsnaIchSource(root)
    records, dropped = source.index()
    assert dropped == {}
    assert [dataclasses.replace(r, patient_id="") for r in written] == records

    phantom = phantoms.PhantomSource("head_ct", 10, SEED)
    loaded = []
    for original, record in zip(originals, records, strict=True):
        image, patient_id = source.load(record, 32)
        loaded.append(dataclasses.replace(record, patient_id=patient_id))
        # Stored HU are exact for every storage convention, so the brain
        # window of the file equals the phantom's own brain-window rendering.
        np.testing.assert_array_equal(image, phantom.load(original, 32)[0])
    assert loaded == written


def test_rsna_loads_several_windows_at_other_resolutions(head_layout):
    _, root, written = head_layout
    source = rsna_ich.RsnaIchSource(root, windows=("brain", "subdural", "bone"))
    image, _ = source.load(written[0], 16)
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
