"""Phantoms: deterministic rendering, findings drawn where their rule says, cohorts, on-disk layouts."""

import collections
import csv
import os
import re
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from PIL import Image

from medgan.data import builders, chexpert, phantoms, rsna_ich
from medgan.data.labels import CHEXPERT_FINDINGS, CLASSES_BY_MODALITY, ICH_SUBTYPES
from medgan.data.phantoms import layouts as phantom_layouts
from medgan.data.phantoms.chest import CHEST_RULES, Chest
from medgan.data.phantoms.seeds import _rng
from medgan.data.records import ImageRecord
from medgan.data.sources import Source
from medgan.data.windowing import apply_window

MODALITIES = ("chest", "head_ct", "mammo")
RENDER = {"chest": phantoms.render_chest, "head_ct": phantoms.render_head_ct_hu, "mammo": phantoms.render_mammo}


def labels_of(modality, *names):
    classes = CLASSES_BY_MODALITY[modality]
    unknown = set(names) - set(classes)
    assert not unknown, unknown
    return tuple(int(name in names) for name in classes)


def grey(modality, labels, resolution, seed, acquisition=0, conspicuity=phantoms.DEFAULT_CONSPICUITY):
    """What a reader (or a classifier) sees: uint8, head CT through the brain window 40/80."""
    image = RENDER[modality](labels, resolution, seed, acquisition, conspicuity)
    return apply_window(image, 40, 80) if modality == "head_ct" else image


FINDINGS = [
    (modality, name)
    for modality in MODALITIES
    for name in CLASSES_BY_MODALITY[modality][1:]  # the first class of each is the exclusive "none"
]


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("modality", MODALITIES)
def test_same_seed_same_bytes_other_seed_or_acquisition_other_image(modality):
    labels = (0,) + (1,) * (len(CLASSES_BY_MODALITY[modality]) - 1)
    first = RENDER[modality](labels, 48, 7, 2)
    assert first.tobytes() == RENDER[modality](labels, 48, 7, 2).tobytes()
    assert first.tobytes() != RENDER[modality](labels, 48, 8, 2).tobytes()
    assert first.tobytes() != RENDER[modality](labels, 48, 7, 3).tobytes()


@pytest.mark.parametrize(
    "modality, resolution", [(m, r) for m in MODALITIES for r in (32, 33, 100)] + [("head_ct", 1024)]
)
def test_any_resolution_gives_a_square_image_of_the_modality_dtype(modality, resolution):
    image = RENDER[modality](labels_of(modality, CLASSES_BY_MODALITY[modality][0]), resolution, 1)
    assert image.shape == (resolution, resolution)
    assert image.dtype == (np.int16 if modality == "head_ct" else np.uint8)


@pytest.mark.parametrize("resolution", [31, 1025, 64.0])
def test_resolution_outside_32_to_1024_is_refused(resolution):
    with pytest.raises(ValueError, match=r"resolution must be an int in \[32, 1024\]"):
        phantoms.render_chest(labels_of("chest", "No Finding"), resolution, 0)


@pytest.mark.parametrize("labels", [(1, 0), (0,) * 5 + (2,)])
def test_labels_of_the_wrong_length_or_value_are_refused(labels):
    with pytest.raises(ValueError, match="head_ct labels must be 6 values"):
        phantoms.render_head_ct_hu(labels, 32, 0)


@pytest.mark.parametrize("modality", MODALITIES)
def test_geometry_is_in_normalised_coordinates_so_resolutions_agree(modality):
    labels = labels_of(modality, CLASSES_BY_MODALITY[modality][0])
    fine = grey(modality, labels, 128, 5).astype(float).reshape(32, 4, 32, 4).mean(axis=(1, 3))
    coarse = grey(modality, labels, 32, 5).astype(float)
    assert np.corrcoef(fine.ravel(), coarse.ravel())[0, 1] > 0.85


@pytest.mark.parametrize("modality", ["chest", "head_ct"])
def test_two_acquisitions_of_a_patient_are_closer_than_another_patient(modality):
    labels = labels_of(modality, CLASSES_BY_MODALITY[modality][0])
    for seed in range(4):
        image = grey(modality, labels, 64, seed, 0).astype(float)
        again = grey(modality, labels, 64, seed, 1).astype(float)
        other = grey(modality, labels, 64, seed + 100, 0).astype(float)
        assert np.abs(image - again).mean() < np.abs(image - other).mean()


def test_head_ct_is_in_hounsfield_units():
    hu = phantoms.render_head_ct_hu(labels_of("head_ct", "no finding"), 128, 3)
    assert -1024 <= hu[:8, :8].min() and hu[:8, :8].max() <= -960  # air
    assert 1000 <= hu.max() <= 1900  # skull
    assert 15 <= np.median(hu[56:72, 40:56]) <= 45  # parenchyma beside the ventricles


@pytest.mark.parametrize("name", ICH_SUBTYPES)
def test_haemorrhage_is_blood_dense(name):
    region = phantoms.finding_region("head_ct", name, 128, 4)
    hu = phantoms.render_head_ct_hu(labels_of("head_ct", name), 128, 4, conspicuity=1.0)  # the rule itself
    # The region also holds partial-volume edges and, for intraparenchymal, the hypodense oedema rim.
    assert 55 <= np.percentile(hu[region], 75) <= 95


# --------------------------------------------------------------------------- finding rules


@pytest.mark.parametrize("modality, name", FINDINGS)
@pytest.mark.parametrize("resolution, min_change", [(32, 6.0), (64, 10.0)])
def test_toggling_a_finding_changes_pixels_inside_its_region(modality, name, resolution, min_change):
    for seed in range(3):
        off = labels_of(modality)
        on = labels_of(modality, name)
        change = np.abs(  # at the rules' full contrast
            grey(modality, on, resolution, seed, seed, 1.0).astype(float) - grey(modality, off, resolution, seed, seed)
        )
        region = phantoms.finding_region(modality, name, resolution, seed, seed)
        assert region.dtype == bool and region.shape == (resolution, resolution)
        assert change[region].sum() >= 0.9 * change.sum(), f"{name}, seed {seed}: drawn outside its region"
        assert change[region].mean() >= min_change, f"{name}, seed {seed}: {change[region].mean():.1f} grey levels"


@pytest.mark.parametrize("modality, name", FINDINGS)
def test_conspicuity_scales_a_finding_from_invisible_to_full_contrast(modality, name):
    seed, off, on = 5, labels_of(modality), labels_of(modality, name)
    region = phantoms.finding_region(modality, name, 64, seed)
    normal = grey(modality, off, 64, seed, conspicuity=0.0).astype(float)
    assert np.array_equal(grey(modality, on, 64, seed, conspicuity=0.0), normal)  # 0: nothing drawn
    changes = [np.abs(grey(modality, on, 64, seed, conspicuity=c) - normal)[region].mean() for c in (0.25, 0.5, 1.0)]
    assert 0 < changes[0] < changes[1] < changes[2], changes
    # 1 is the rules' image, whatever the default.
    assert np.array_equal(grey(modality, on, 64, seed, conspicuity=1.0), grey(modality, on, 64, seed, 0, 1.0))


def test_conspicuity_is_part_of_a_phantom_cohorts_identity_and_is_checked():
    source = phantoms.PhantomSource("head_ct", 5, 0, conspicuity=0.3)
    assert builders.source_params(source)["conspicuity"] == 0.3  # shards of another value are not reused
    record = source.index()[0][0]
    image = source.load(record, 32)[0][..., 0]
    assert np.array_equal(image, grey("head_ct", record.labels, 32, *phantoms.render_seeds(0, record), 0.3))
    with pytest.raises(ValueError, match="conspicuity must be a number in \\[0, 4\\], got 5"):
        phantoms.PhantomSource("head_ct", 5, 0, conspicuity=5)


@pytest.mark.parametrize("modality", MODALITIES)
def test_the_exclusive_class_draws_nothing(modality):
    none = CLASSES_BY_MODALITY[modality][0]
    image = grey(modality, labels_of(modality, none), 48, 2)
    assert np.array_equal(image, grey(modality, labels_of(modality), 48, 2))
    assert not phantoms.finding_region(modality, none, 48, 2).any()


def test_finding_region_names_an_unknown_finding():
    with pytest.raises(ValueError, match="unknown chest finding 'Nodule'"):
        phantoms.finding_region("chest", "Nodule", 32, 0)


def centroid(modality, name, seed):
    """Centre of a finding's region in image coordinates, x right and y down in [-1, 1]."""
    region = phantoms.finding_region(modality, name, 128, seed)
    rows, cols = np.nonzero(region)
    return (cols.mean() + 0.5) / 64 - 1, (rows.mean() + 0.5) / 64 - 1, region


@pytest.mark.parametrize("seed", range(3))
def test_finding_regions_sit_where_the_anatomy_says(seed):
    x, y, _ = centroid("chest", "Enlarged Cardiomediastinum", seed)
    assert abs(x) < 0.2 and y < 0.0  # superior mediastinum
    x, _, _ = centroid("chest", "Cardiomegaly", seed)
    assert x > 0.1  # the heart grows towards the patient's left, the image's right
    _, y_effusion, _ = centroid("chest", "Pleural Effusion", seed)
    assert y_effusion > 0.2  # lung bases
    _, y_pneumothorax, _ = centroid("chest", "Pneumothorax", seed)
    assert y_pneumothorax < y_effusion - 0.3  # apical and lateral
    _, y, _ = centroid("chest", "Lung Opacity", seed)
    assert y < 0.25  # upper or mid zone
    _, _, edema = centroid("chest", "Edema", seed)
    assert edema[:, :60].sum() > 0.3 * edema.sum() and edema[:, 68:].sum() > 0.3 * edema.sum()  # bilateral
    for name in ("epidural", "subdural"):
        x, y, region = centroid("head_ct", name, seed)
        rows, cols = np.nonzero(region)
        assert np.hypot((cols + 0.5) / 64 - 1, (rows + 0.5) / 64 - 1).min() > 0.4  # against the skull
    x, y, _ = centroid("head_ct", "intraventricular", seed)
    assert abs(x) < 0.35


def test_cardiomegaly_raises_the_cardiothoracic_ratio_above_one_half():
    def ratio(scene):
        heart = (scene.layers["heart"] * (1 - scene.abdomen)) > 0.5
        lungs = (scene.layers["lung0"] + scene.layers["lung1"]) > 0.5
        columns = np.nonzero(heart.any(axis=0))[0]
        thorax = max(np.ptp(np.nonzero(row)[0]) + 1 for row in lungs if row.any())
        return (columns.max() - columns.min() + 1) / thorax

    for seed in range(8):
        scene = Chest(seed, seed, 128)
        assert ratio(scene) < 0.5
        scene.draw(CHEST_RULES["Cardiomegaly"], _rng(seed, "chest", "finding", "Cardiomegaly"))
        assert ratio(scene) > 0.55


# --------------------------------------------------------------------------- cohorts


@pytest.mark.parametrize("modality", MODALITIES)
def test_cohort_ids_patients_and_label_rules(modality):
    records = phantoms.sample_cohort(modality, 300, 11)
    classes = CLASSES_BY_MODALITY[modality]
    per_patient = collections.Counter(record.patient_id for record in records)
    assert sorted(per_patient) == [f"{modality}-p{i:06d}" for i in range(1, 301)]
    for record in records:
        assert re.fullmatch(rf"{record.patient_id}-i[1-8]", record.image_id)
        assert record.path is None and len(record.labels) == len(classes)
        assert sum(record.labels) >= 1
        pathology = [
            name for name, label in zip(classes[1:], record.labels[1:]) if label and name != "Support Devices"
        ]
        assert record.labels[0] == (not pathology), record  # the "none" class is set exactly when nothing is
    sizes = list(per_patient.values())
    assert min(sizes) == 1 and max(sizes) >= 4 and 1.8 <= np.mean(sizes) <= 3.0
    labels_by_patient = collections.defaultdict(set)
    for record in records:
        labels_by_patient[record.patient_id].add(record.labels)
    assert any(len(labels) > 1 for labels in labels_by_patient.values())  # findings vary between images


def test_chest_cohort_is_long_tailed_with_chexpert_like_prevalences():
    records = phantoms.sample_cohort("chest", 600, 3)
    counts = sorted(collections.Counter(record.labels for record in records).values(), reverse=True)
    assert len(counts) >= 80
    assert counts[0] >= 20 * np.median(counts)
    prevalence = dict(zip(CHEXPERT_FINDINGS, np.mean([record.labels for record in records], axis=0)))
    common = sorted(CHEXPERT_FINDINGS, key=prevalence.get, reverse=True)[:3]
    assert set(common) == {"Support Devices", "Lung Opacity", "Pleural Effusion"}
    for rare in ("Fracture", "Lung Lesion", "Pleural Other"):
        assert 0.005 < prevalence[rare] < 0.08, (rare, prevalence[rare])
    support_only = labels_of("chest", "No Finding", "Support Devices")
    assert any(record.labels == support_only for record in records)


def test_head_ct_cohort_has_frequent_positives_and_rsna_like_subtypes():
    records = phantoms.sample_cohort("head_ct", 600, 3)
    prevalence = dict(zip(CLASSES_BY_MODALITY["head_ct"], np.mean([record.labels for record in records], axis=0)))
    assert 0.3 <= prevalence["no finding"] <= 0.5
    assert min(prevalence["subdural"], prevalence["intraparenchymal"]) > prevalence["intraventricular"]
    assert prevalence["epidural"] == min(prevalence[name] for name in ICH_SUBTYPES)
    assert np.mean([sum(record.labels[1:]) >= 2 for record in records]) > 0.15  # mixed haemorrhages


@pytest.mark.parametrize("modality", MODALITIES)
def test_cohort_is_reproducible_and_a_bigger_one_extends_a_smaller_one(modality):
    small = phantoms.sample_cohort(modality, 20, 5)
    big = phantoms.sample_cohort(modality, 30, 5)
    assert small == phantoms.sample_cohort(modality, 20, 5)
    assert big[: len(small)] == small
    assert small != phantoms.sample_cohort(modality, 20, 6)


def test_cohort_does_not_depend_on_the_python_hash_seed():
    """Processes of one multi-host job must draw the same cohort (set iteration order varies)."""
    script = (
        "import hashlib; from medgan.data import phantoms; "
        "print(hashlib.sha256(repr([phantoms.sample_cohort(m, 200, 0) "
        "for m in ('chest', 'head_ct', 'mammo')]).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script], env=dict(os.environ, PYTHONHASHSEED=str(hash_seed)),
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout
        for hash_seed in (1, 2, 3)
    }
    assert len(digests) == 1


def test_render_seeds_share_the_patient_and_differ_per_image():
    a, b = ImageRecord("chest-p000001-i1", "chest-p000001", ()), ImageRecord("chest-p000001-i2", "chest-p000001", ())
    (seed_a, acquisition_a), (seed_b, acquisition_b) = phantoms.render_seeds(0, a), phantoms.render_seeds(0, b)
    assert seed_a == seed_b and acquisition_a != acquisition_b
    assert phantoms.render_seeds(1, a)[0] != seed_a


# --------------------------------------------------------------------------- source


@pytest.mark.parametrize("modality", MODALITIES)
def test_phantom_source_indexes_the_cohort_and_renders_records(modality):
    source = phantoms.PhantomSource(modality, 5, 9)
    assert isinstance(source, Source)
    assert source.name == f"phantom_{modality}" and source.channels == 1
    assert source.class_names == CLASSES_BY_MODALITY[modality]
    records, dropped = source.index()
    assert records == phantoms.sample_cohort(modality, 5, 9) and dropped == {}
    record = records[-1]
    image, patient_id = source.load(record, 40)
    assert image.shape == (40, 40, 1) and image.dtype == np.uint8 and patient_id == record.patient_id
    expected = grey(modality, record.labels, 40, *phantoms.render_seeds(9, record))
    assert np.array_equal(image[..., 0], expected)  # head CT: the brain window of the HU slice


def test_report_labels_miss_and_invent_findings_at_their_rates_and_rederive_the_exclusive_class():
    from medgan.data.phantoms.cohorts import reported_labels

    records = phantoms.sample_cohort("head_ct", 3000, 4)
    true = np.array([r.labels for r in records])
    assert all(reported_labels("head_ct", r.labels, 0.0, 0.0, _rng("t", i)) == r.labels for i, r in
               enumerate(records[:200]))
    noisy = np.array([reported_labels("head_ct", r.labels, 0.2, 0.05, _rng("t", i)) for i, r in enumerate(records)])
    findings_true, findings_noisy = true[:, 1:], noisy[:, 1:]
    n_pos, n_neg = findings_true.sum(), (1 - findings_true).sum()
    missed = (findings_true & ~findings_noisy.astype(bool)).sum()
    invented = ((1 - findings_true) & findings_noisy).sum()
    assert abs(missed / n_pos - 0.2) < 4 * np.sqrt(0.2 * 0.8 / n_pos)
    assert abs(invented / n_neg - 0.05) < 4 * np.sqrt(0.05 * 0.95 / n_neg)
    np.testing.assert_array_equal(noisy[:, 0], findings_noisy.sum(1) == 0)  # "no finding" iff none reported
    chest = phantoms.sample_cohort("chest", 300, 4)
    devices = CHEXPERT_FINDINGS.index("Support Devices")
    for i, record in enumerate(chest):
        labels = reported_labels("chest", record.labels, 0.3, 0.1, _rng("c", i))
        pathology = sum(labels[1:]) - labels[devices]
        assert labels[0] == int(pathology == 0)  # Support Devices sits beside No Finding, as in CheXpert


def test_a_noisy_phantom_source_indexes_reported_labels_and_renders_the_true_ones():
    source = phantoms.PhantomSource("head_ct", 60, 9, label_miss=0.3, label_false_positive=0.1)
    records, _ = source.index()
    true = phantoms.sample_cohort("head_ct", 60, 9)
    assert [r.image_id for r in records] == [r.image_id for r in true]
    changed = [(r, t) for r, t in zip(records, true) if r.labels != t.labels]
    assert 0 < len(changed) < len(records)
    record, truth = changed[0]
    image, _ = source.load(record, 32)
    assert np.array_equal(image[..., 0], grey("head_ct", truth.labels, 32, *phantoms.render_seeds(9, record)))
    assert source.index()[0] == records  # one draw per image: the same labels every time
    params = builders.source_params(source)
    assert (params["label_miss"], params["label_false_positive"]) == (0.3, 0.1)  # part of the shards' identity
    with pytest.raises(ValueError, match="label noise rates must lie in"):
        phantoms.PhantomSource("head_ct", 5, 0, label_miss=1.0)


def test_phantom_source_refuses_an_unknown_modality():
    with pytest.raises(ValueError, match="unknown phantom modality 'xray'"):
        phantoms.PhantomSource("xray", 5, 0)


# --------------------------------------------------------------------------- CheXpert layout


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_chexpert_layout_is_the_real_one_and_reads_back(tmp_path):
    root = tmp_path / "CheXpert-v1.0-small"
    cohort = phantoms.sample_cohort("chest", 8, 4)
    returned = phantoms.write_chexpert_layout(root, cohort, 32, 4, lateral_fraction=0.5, uncertain_fraction=0.3)

    header, *rows = read_csv(root / "train.csv")
    assert header == ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_FINDINGS]
    frontal = [row for row in rows if row[3] == "Frontal"]
    lateral = [row for row in rows if row[3] == "Lateral"]
    assert len(frontal) == len(cohort) == len(returned) and lateral
    assert all(row[4] in ("AP", "PA") for row in frontal) and all(row[4] == "" for row in lateral)
    values = collections.Counter(value for row in rows for value in row[5:])
    assert set(values) == {"1.0", "0.0", "-1.0", ""}
    assert {row[5] for row in rows} <= {"1.0", ""}  # No Finding is never uncertain or negated
    for row, record, phantom in zip(frontal, returned, cohort):
        assert row[0] == f"CheXpert-v1.0-small/{record.path}"
        assert row[1] in ("Female", "Male") and 18 <= int(row[2]) <= 90
        assert tuple(int(value != "" and float(value) != 0.0) for value in row[5:]) == phantom.labels  # U-ones
        assert record.patient_id == f"patient{int(phantom.patient_id.removeprefix('chest-p')):05d}"
        assert record.image_id == record.path.removeprefix("train/").removesuffix(".jpg")
        assert record.labels == phantom.labels
    for row in rows:
        with Image.open(tmp_path / row[0]) as image:
            assert image.format == "JPEG" and image.mode == "L" and image.size == (32, 32)
    assert [p.name for p in root.rglob(".*")] == []  # no temporary files left

    assert chexpert.read_index(root, policy="ones") == (
        returned, {"lateral": len(lateral), "uncertain": 0, "no_positive": 0}
    )
    with Image.open(root / returned[0].path) as image:
        stored = np.asarray(image, dtype=float)
    rendered = phantoms.PhantomSource("chest", 8, 4).load(cohort[0], 32)[0][..., 0]
    assert np.abs(stored - rendered).mean() < 3.0  # the same pixels, up to JPEG


def test_chexpert_patient_folder_keeps_the_phantom_patient_number():
    assert phantoms.chexpert_patient_id("chest-p000123") == "patient00123"
    with pytest.raises(ValueError, match="'head_ct-p000001' is not a chest phantom id"):
        phantoms.chexpert_patient_id("head_ct-p000001")


def test_a_crashed_chexpert_writer_leaves_no_csv(tmp_path, monkeypatch):
    calls = []

    def crash_on_third(*args):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return np.zeros((32, 32), np.uint8)

    monkeypatch.setattr(phantom_layouts, "render_chest", crash_on_third)
    with pytest.raises(RuntimeError, match="disk full"):
        phantoms.write_chexpert_layout(tmp_path, phantoms.sample_cohort("chest", 4, 0), 32, 0)
    assert not (tmp_path / "train.csv").exists()
    assert [p.name for p in tmp_path.rglob(".*")] == []


def test_writers_refuse_records_the_loaders_would_drop(tmp_path):
    with pytest.raises(ValueError, match="'x' has no positive label"):
        phantoms.write_chexpert_layout(tmp_path, [ImageRecord("x", "chest-p000001", (0,) * 14)], 32, 0)
    with pytest.raises(ValueError, match="head_ct needs 6 values"):
        phantoms.write_rsna_layout(tmp_path, [ImageRecord("x", "head_ct-p000001", (1,) * 14)], 32, 0)


# --------------------------------------------------------------------------- RSNA layout


def test_rsna_layout_is_the_real_one_and_stores_exact_hounsfield_units(tmp_path):
    cohort = phantoms.sample_cohort("head_ct", 8, 2)
    returned = phantoms.write_rsna_layout(tmp_path, cohort, 32, 2, compressed_fraction=0.5)

    header, *rows = read_csv(tmp_path / "stage_2_train.csv")
    assert header == ["ID", "Label"] and len(rows) == 6 * len(cohort)
    for i, (record, phantom) in enumerate(zip(returned, cohort)):
        assert re.fullmatch(r"ID_[0-9a-f]{9}", record.image_id) and re.fullmatch(r"ID_[0-9a-f]{8}", record.patient_id)
        assert record.path == f"stage_2_train/{record.image_id}.dcm" and record.labels == phantom.labels
        block = rows[6 * i : 6 * i + 6]
        assert [row[0] for row in block] == [f"{record.image_id}_{name}" for name in ICH_SUBTYPES + ("any",)]
        assert [int(row[1]) for row in block] == [*phantom.labels[1:], 1 - phantom.labels[0]]

    syntaxes, representations = set(), set()
    for record, phantom in zip(returned, cohort):
        ds = pydicom.dcmread(tmp_path / record.path)
        assert (ds.Modality, ds.PhotometricInterpretation, ds.BitsAllocated) == ("CT", "MONOCHROME2", 16)
        assert ds.PatientID == record.patient_id and ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.StudyInstanceUID and "WindowCenter" in ds and "WindowWidth" in ds
        syntaxes.add(ds.file_meta.TransferSyntaxUID.is_compressed)
        representations.add(ds.PixelRepresentation)
        hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        expected = phantoms.render_head_ct_hu(phantom.labels, 32, *phantoms.render_seeds(2, phantom))
        assert np.array_equal(hu, expected), ds.file_meta.TransferSyntaxUID.name
    assert syntaxes == {True, False} and representations == {0, 1}
    assert [p.name for p in tmp_path.rglob(".*")] == []

    source = rsna_ich.RsnaIchSource(tmp_path)
    index, _ = source.index()
    loaded = [ImageRecord(r.image_id, source.load(r, 32)[1], r.labels, r.path) for r in index]
    assert loaded == returned


@pytest.mark.parametrize("fraction, compressed", [(0.0, False), (1.0, True)])
def test_rsna_compressed_fraction_selects_the_transfer_syntax(tmp_path, fraction, compressed):
    cohort = phantoms.sample_cohort("head_ct", 2, 0)
    for record in phantoms.write_rsna_layout(tmp_path, cohort, 32, 0, compressed_fraction=fraction):
        syntax = pydicom.dcmread(tmp_path / record.path).file_meta.TransferSyntaxUID
        assert syntax.is_compressed == compressed and (
            not compressed or syntax.name in ("RLE Lossless", "JPEG 2000 Image Compression (Lossless Only)")
        )


def test_compressed_rsna_files_are_the_same_bytes_for_a_seed(tmp_path):
    cohort = phantoms.sample_cohort("head_ct", 2, 0)
    first = phantoms.write_rsna_layout(tmp_path / "a", cohort, 32, 0, compressed_fraction=1.0)
    phantoms.write_rsna_layout(tmp_path / "b", cohort, 32, 0, compressed_fraction=1.0)
    for record in first:
        assert (tmp_path / "a" / record.path).read_bytes() == (tmp_path / "b" / record.path).read_bytes(), record.path


def test_a_crashed_rsna_writer_leaves_no_csv(tmp_path, monkeypatch):
    def crash(*args):
        raise RuntimeError("killed")

    monkeypatch.setattr(phantom_layouts, "render_head_ct_hu", crash)
    with pytest.raises(RuntimeError, match="killed"):
        phantoms.write_rsna_layout(tmp_path, phantoms.sample_cohort("head_ct", 2, 0), 32, 0)
    assert not (tmp_path / "stage_2_train.csv").exists()
