"""Full-field phantom mammograms: lesions drawn by pathology, written as CBIS-DDSM and read back by the real loader."""

import numpy as np
import pytest

from medgan.data import cbis_ddsm
from medgan.data.phantoms import cbis_layout, mammo_full

HEIGHT = 128


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("cbis")
    mammograms = mammo_full.sample_mammograms(8, seed=3)
    rows = cbis_layout.write_cbis_ddsm_layout(root, mammograms, HEIGHT, seed=3, misfiled_mask_fraction=0.3)
    return root, mammograms, rows


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


def test_the_release_reads_back_with_every_lesion_and_its_mask(release):
    root, mammograms, rows = release
    cases, dropped = cbis_ddsm.read_cases(root)
    assert dropped == {}
    assert {case.image_id for case in cases} == {m.image_id for m in mammograms}
    by_id = {case.image_id: case for case in cases}
    misfiled = 0
    for mammogram in mammograms:
        case = by_id[mammogram.image_id]
        assert (case.patient_id, case.side, case.view) == (mammogram.patient_id, mammogram.side, mammogram.view)
        assert [(a.kind, a.pathology) for a in case.abnormalities] == [
            (lesion.kind, lesion.pathology.lower()) for lesion in mammogram.lesions]
        image, masks, notes = cbis_ddsm.load_case(root, case, HEIGHT)
        rendered, rendered_masks, _ = mammo_full.render_full_mammogram(mammogram, HEIGHT)
        np.testing.assert_allclose(image, rendered / 255.0, atol=1e-6)
        np.testing.assert_array_equal(masks, rendered_masks)
        misfiled += len(notes)
    assert misfiled == sum(row["misfiled_mask"] for row in rows) > 0  # each misfiled mask path found and mended
    assert {row["split"] for row in rows} == {"train", "test"}


def test_bad_rows_and_missing_files_are_counted_not_fatal(release, tmp_path):
    import shutil

    root, _, _ = release
    copy = tmp_path / "cbis"
    shutil.copytree(root, copy)
    name = next(n for n in cbis_ddsm.CSV_FILES if (copy / n).exists())
    lines = (copy / name).read_text().splitlines()
    header, first, second = lines[0].split(","), lines[1].split(","), lines[2].split(",")
    first[header.index("pathology")] = "UNKNOWN"
    (copy / "CBIS-DDSM" / second[header.index("image file path")]).unlink()
    (copy / name).write_text("\n".join([lines[0], ",".join(first), ",".join(second), *lines[3:]]) + "\n")
    _, dropped = cbis_ddsm.read_cases(copy)
    assert dropped["unknown_pathology"] == 1 and dropped["missing_image_file"] >= 1
    (copy / name).write_text("patient_id,pathology\nP_1,BENIGN\n")
    with pytest.raises(ValueError, match=f"{name}: missing column"):
        cbis_ddsm.read_cases(copy)
    with pytest.raises(FileNotFoundError, match="none of the CBIS-DDSM case-description CSVs"):
        cbis_ddsm.read_cases(tmp_path / "empty")
