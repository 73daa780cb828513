"""Full-field phantom mammograms, written as each CBIS-DDSM download users have and read back by the real loader."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from medgan.data import cbis_ddsm
from medgan.data.phantoms import cbis_layout, mammo_full
from medgan.data.records import TooFewKept

HEIGHT = 128


def test_each_view_has_its_lesions_masks_inside_the_breast_and_the_mlo_view_a_pectoral_muscle():
    mammograms = mammo_full.sample_mammograms(6, seed=1)
    for mammogram in mammograms:
        image, masks, breast = mammo_full.render_full_mammogram(mammogram, 256)
        assert image.shape == (256, 160) and image.dtype == np.uint8
        assert masks.shape == (len(mammogram.lesions), 256, 160) and all(m.sum() > 10 for m in masks)
        assert np.all(breast[masks.any(0)])
        wall = 0 if mammogram.side == "LEFT" else -1  # the chest wall's column
        assert breast[:, wall].mean() > 0.6 and not breast[:, -1 - wall].any() or mammogram.view == "MLO"
        for lesion, mask in zip(mammogram.lesions, masks):
            row, col = mammo_full.lesion_centre(mammogram, lesion, 256)
            assert mask[int(round(row)) - 3:int(round(row)) + 4, int(round(col)) - 3:int(round(col)) + 4].any()
    cc, mlo = (mammo_full.render_full_mammogram(m, 256)[0] for m in mammograms[:2])
    corner = (slice(0, 20), slice(0, 10) if mammograms[0].side == "LEFT" else slice(-10, None))
    assert mlo[corner].mean() > cc[corner].mean() + 40  # the pectoral muscle is bright in the MLO corner only


def test_benign_masses_are_smooth_and_malignant_ones_irregular():
    def roughness(pathology):
        values = []
        for seed in range(6):
            lesion = mammo_full.Lesion("mass", pathology, 0.4, 0.0, 0.03)
            m = mammo_full.Mammogram("P_1", "LEFT", "CC", (lesion,), seed)
            mask = mammo_full.render_full_mammogram(m, 512)[1][0]
            perimeter = np.sum(mask[1:] != mask[:-1]) + np.sum(mask[:, 1:] != mask[:, :-1])
            values.append(perimeter / np.sqrt(mask.sum()))  # a circle: about 4.5 (pixel staircase)
        return np.mean(values)

    assert roughness("MALIGNANT") > 1.3 * roughness("BENIGN")




# (layout, metadata.csv written): the retriever's default and classic trees, both also without metadata.csv
# (the loader then indexes the DICOM headers), an older copy with 000000.dcm, and Kaggle's JPEGs.
VARIANTS = [("descriptive", True), ("classic", True), ("classic", False), ("legacy", False), ("jpeg", True)]
VARIANT_IDS = [f"{layout}-{'metadata' if metadata else 'headers'}" for layout, metadata in VARIANTS]


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    """Each variant written once: {variant: (root, mammograms, rows)}."""
    mammograms = mammo_full.sample_mammograms(8, seed=3)
    written = {}
    for layout, metadata in VARIANTS:
        root = tmp_path_factory.mktemp(f"{layout}_{metadata}")
        rows = cbis_layout.write_cbis_ddsm_layout(root, mammograms, HEIGHT, seed=3, layout=layout, metadata=metadata,
                                                  swapped_fraction=0.4, oversized_fraction=0.3)
        written[(layout, metadata)] = (root, mammograms, rows)
    return written


def _index_kind(layout, metadata):
    return "dicom_info.csv" if layout == "jpeg" else "metadata.csv" if metadata else "DICOM headers"


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_every_image_and_mask_is_found_by_series_never_a_crop(downloads, variant, tmp_path):
    root, mammograms, rows = downloads[variant]
    assert {row["swapped"] for row in rows} == {True, False} and {row["crop_series"] for row in rows} == {True, False}
    assert any(row["oversized"] for row in rows)
    found = cbis_ddsm.read_cases(root, cache_dir=tmp_path)
    assert found.index.kind == _index_kind(*variant) and found.release.layout == ("jpeg" if variant[0] == "jpeg"
                                                                                    else "dicom")
    assert found.dropped == {} and found.rows == found.kept == len(rows)
    assert {case.image_id for case in found.cases} == {m.image_id for m in mammograms}
    by_id = {case.image_id: case for case in found.cases}
    resized = from_crop_column = 0
    for mammogram in mammograms:
        case = by_id[mammogram.image_id]
        assert (case.patient_id, case.side, case.view) == (mammogram.patient_id, mammogram.side, mammogram.view)
        assert sorted((a.kind, a.abnormality_id, a.pathology) for a in case.abnormalities) == sorted(
            (lesion.kind, n, lesion.pathology.lower()) for n, lesion in enumerate(mammogram.lesions, start=1))
        loaded = cbis_ddsm.load_case(case, HEIGHT)
        assert loaded.dropped == {}
        rendered, rendered_masks, _ = mammo_full.render_full_mammogram(mammogram, HEIGHT)
        oversized = {row["abnormality_id"] for row in rows if row["image_id"] == case.image_id and row["oversized"]}
        lossy = variant[0] == "jpeg"
        if lossy:
            assert np.abs(loaded.image - rendered / 255.0).mean() < 0.01
        else:
            np.testing.assert_allclose(loaded.image, rendered / 255.0, atol=1e-6)
        for abnormality, mask in zip(loaded.case.abnormalities, loaded.masks):
            want = rendered_masks[abnormality.abnormality_id - 1]
            if lossy or abnormality.abnormality_id in oversized:  # JPEG's rim; a resized mask moves a pixel or two
                assert (mask & want).sum() >= 0.5 * (mask | want).sum()
            else:
                np.testing.assert_array_equal(mask, want)
        resized += loaded.mended.get("mask_resized", 0)
        from_crop_column += loaded.mended.get("mask_in_crop_column", 0)
    assert resized == sum(row["oversized"] for row in rows)
    assert from_crop_column == sum(row["swapped"] and row["crop_series"] for row in rows) > 0


def test_a_download_is_found_from_each_folder_a_user_may_name(downloads, tmp_path):
    root, _, rows = downloads[("descriptive", True)]
    manifest = next(root.glob("manifest-*"))
    assert [p.name for p in manifest.glob("*.csv")] == ["metadata.csv"]  # the CSVs are in the download folder
    for named in (root, manifest):
        assert cbis_ddsm.read_cases(named).kept == len(rows)
    legacy, _, legacy_rows = downloads[("legacy", False)]
    assert cbis_ddsm.read_cases(legacy / "CBIS-DDSM").kept == len(legacy_rows)  # the image folder itself
    kaggle, _, kaggle_rows = downloads[("jpeg", True)]
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "cbis-ddsm-breast-cancer-image-dataset").symlink_to(kaggle)
    for named in (kaggle, tmp_path / "downloads"):  # the unpacked folder, or the one holding it
        assert cbis_ddsm.read_cases(named).kept == len(kaggle_rows)


def _copy(downloads, variant, tmp_path) -> tuple[Path, list[dict]]:
    root, _, rows = downloads[variant]
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    return copy, rows


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_rows_whose_files_are_gone_are_dropped_exactly(downloads, variant, tmp_path):
    copy, rows = _copy(downloads, variant, tmp_path)
    gone_image = rows[0]["image_file"]
    (copy / gone_image).unlink()
    mask_row = next(row for row in rows if row["image_file"] != gone_image)
    for name in {mask_row["mask_file"], mask_row["crop_file"]}:
        (copy / name).unlink()
    found = cbis_ddsm.read_cases(copy, cache_dir=tmp_path)
    lost_images = sum(row["image_file"] == gone_image for row in rows)
    # A file gone from a listed series leaves the series in metadata.csv / dicom_info.csv but not in a header index.
    image_reason, mask_reason = (("image_series_not_in_index", "mask_series_not_in_index") if variant[1] is False
                                 else ("image_file_missing", "mask_file_missing"))
    assert found.dropped == {image_reason: lost_images, mask_reason: 1}
    assert found.kept == len(rows) - lost_images - 1
    assert found.first_dropped[image_reason].startswith(f"{rows[0]['csv']} row ")


def test_a_mask_far_off_the_mammograms_size_drops_its_abnormality_only(tmp_path):
    mammograms = mammo_full.sample_mammograms(3, seed=5)
    rows = cbis_layout.write_cbis_ddsm_layout(tmp_path, mammograms, HEIGHT, seed=5, oversized_fraction=0.5,
                                              oversize_px=20)
    found = cbis_ddsm.read_cases(tmp_path)
    loaded = [cbis_ddsm.load_case(case, HEIGHT) for case in found.cases]
    far = sum(row["oversized"] for row in rows)
    assert 0 < far < len(rows)
    assert sum(x.dropped.get("mask_size_mismatch", 0) for x in loaded) == far
    assert sum(len(x.case.abnormalities) for x in loaded) == len(rows) - far
    assert all(len(x.masks) == len(x.case.abnormalities) for x in loaded)
    assert len(loaded) == len(mammograms)  # the images stay, with their other abnormalities


def test_the_header_index_is_cached_and_refreshed_for_changed_files(downloads, tmp_path, monkeypatch):
    import pydicom

    copy, rows = _copy(downloads, ("legacy", False), tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    seen = []
    cbis_ddsm.read_cases(copy, cache_dir=cache, on_file=lambda done, total: seen.append((done, total)))
    files = len(list(copy.rglob("*.dcm")))
    assert seen[-1] == (files, files) and (cache / cbis_ddsm.HEADER_INDEX_FILE).exists()
    real_read = pydicom.dcmread
    reads = []
    monkeypatch.setattr(pydicom, "dcmread", lambda path, **kw: reads.append(path) or real_read(path, **kw))
    assert cbis_ddsm.read_cases(copy, cache_dir=cache).kept == len(rows) and reads == []
    changed = copy / rows[0]["image_file"]
    changed.write_bytes(changed.read_bytes() + b"\0" * 4)
    assert cbis_ddsm.read_cases(copy, cache_dir=cache).kept == len(rows) and reads == [changed]


def test_bad_rows_and_roots_are_counted_or_named(downloads, tmp_path):
    copy, rows = _copy(downloads, ("descriptive", True), tmp_path)
    name = rows[0]["csv"]
    lines = (copy / name).read_text().split("\n")
    header = lines[0].split(",")
    first = lines[1].split(",")
    first[header.index("pathology")] = "UNKNOWN"
    (copy / name).write_text("\n".join([lines[0], ",".join(first), *lines[2:]]))
    found = cbis_ddsm.read_cases(copy)
    assert found.dropped == {"unknown_pathology": 1} and found.kept == len(rows) - 1
    (copy / name).write_text("patient_id,pathology\nP_1,BENIGN\n")
    with pytest.raises(ValueError, match=f"{name}: missing column"):
        cbis_ddsm.read_cases(copy)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="none of the CBIS-DDSM case-description CSVs.*NBIA Data Retriever"):
        cbis_ddsm.read_cases(tmp_path / "empty")
    only_csvs = tmp_path / "only_csvs"
    only_csvs.mkdir()
    shutil.copy(copy / rows[1]["csv"], only_csvs)
    with pytest.raises(FileNotFoundError, match="the case-description CSVs but no images: expected metadata.csv"):
        cbis_ddsm.read_cases(only_csvs)


def test_check_kept_names_the_first_dropped_row_and_the_key():
    cbis_ddsm.check_kept(5, 10, {"x": 5}, {}, 0.5, "w", "e", "config.k")
    with pytest.raises(TooFewKept, match=r"kept 4 of 10 rows, below config\.k=0\.5\. Dropped: a 5, b 1\. "
                                         r"First dropped \(a\): f row 2: p\. medgan read it as TCIA"):
        cbis_ddsm.check_kept(4, 10, {"b": 1, "a": 5}, {"a": "f row 2: p", "b": "f row 3"}, 0.5, "w", "TCIA", "config.k")
    with pytest.raises(TooFewKept, match="kept 0 of 3"):
        cbis_ddsm.check_kept(0, 3, {}, {}, 0.0, "w", "e", "k")
