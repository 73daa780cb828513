"""The study's patch rules: tissue share of normal patches, lesion offsets, augmentation, and a patch set."""

import dataclasses

import numpy as np
import pytest

from medgan.data import cbis_ddsm, mammo_cohort, mammo_patches
from medgan.data.phantoms import cbis_layout, mammo_full

RULES = mammo_patches.PatchRules(size=32, max_offset=16)


def _image():
    """A 200 x 120 'mammogram': tissue (0.5) left of column 90, background right; a lesion block (1.0)."""
    image = np.full((200, 120), 0.02, np.float32)
    image[:, :90] = 0.5
    lesion = np.zeros(image.shape, bool)
    lesion[100:104, 40:44] = True
    image[lesion] = 1.0
    return image, lesion


def test_normal_patches_hold_enough_tissue_and_no_lesion():
    image, lesion = _image()
    tissue = mammo_patches.tissue_mask(image)
    assert tissue[:, :88].all() and not tissue[:, 95:].any()
    rng = np.random.default_rng(0)
    for _ in range(100):
        patch, mask = mammo_patches.normal_patch(image, tissue, lesion, RULES, rng)
        assert patch.shape == (32, 32) and not mask.any()
        assert np.mean(patch > 0.1) >= 0.87  # >= 90% tissue before resampling blurs the border
        assert patch.max() < 0.99  # never the lesion
    tiny = mammo_patches.PatchRules(size=32, min_tissue=1.0)
    assert mammo_patches.normal_patch(image[:, 80:], mammo_patches.tissue_mask(image[:, 80:]), lesion[:, 80:],
                                      tiny, rng) is None  # no window is all tissue


def test_a_lesion_patch_holds_the_lesion_pixel_within_the_offset_of_its_centre():
    image = np.full((300, 300), 0.5, np.float32)
    mask = np.zeros(image.shape, bool)
    mask[150, 150] = True
    rng = np.random.default_rng(1)
    rules = mammo_patches.PatchRules(size=32, max_offset=16, scale=(1.0, 1.0))
    offsets = []
    for _ in range(300):
        patch, patch_mask = mammo_patches.lesion_patch(image, mask, mask, rules, rng)
        (row, col), = np.argwhere(patch_mask)
        offsets.append((row - 15.5, col - 15.5))
    offsets = np.abs(np.array(offsets))
    assert offsets.max() <= 16.5 and offsets.max() > 14  # up to half the patch, and the whole range is used
    assert np.mean(offsets.max(1) < 4) < 0.2  # not always near the centre
    scaled = mammo_patches.PatchRules(size=32, max_offset=16)
    for _ in range(20):
        patch, _ = mammo_patches.lesion_patch(image, mask, mask, scaled, rng)
        assert patch.shape == (32, 32)
    with pytest.raises(ValueError, match="mask is empty"):
        mammo_patches.lesion_patch(image, np.zeros_like(mask), mask, rules, rng)


def test_augmentation_flips_and_rotates_by_quarter_turns():
    image = np.arange(32 * 32, dtype=np.float32).reshape(32, 32) / 1024
    rng = np.random.default_rng(2)
    seen = set()
    for _ in range(64):
        patch, _ = mammo_patches._augment(image, np.zeros((32, 32), bool), 32, rng)
        matches = [(f, k) for f in (0, 1) for k in range(4)
                   if np.array_equal(patch, np.rot90(image[:, ::-1] if f else image, k))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 8  # every flip x rotation occurs


def test_a_patch_set_of_a_cbis_release_has_every_kind_and_counts_what_it_missed(tmp_path):
    mammograms = mammo_full.sample_mammograms(6, seed=4)
    cbis_layout.write_cbis_ddsm_layout(tmp_path, mammograms, 256, seed=4, swapped_fraction=0.0,
                                       oversized_fraction=0.0)
    found = cbis_ddsm.read_cases(tmp_path)
    assert found.dropped == {}
    cases = found.cases
    loaded = [(x.case, x.image, x.masks) for x in (cbis_ddsm.load_case(case, 256) for case in cases)]
    patches, missed = mammo_patches.sample_patch_set(loaded, RULES, per_lesion=3, normals_per_image=2, seed=0)
    lesions = sum(len(case.abnormalities) for case in cases)
    assert len(patches) + sum(missed.values()) == 3 * lesions + 2 * len(cases)
    assert len(patches.where("normal")) == 2 * len(cases) - missed.get("normal_no_room", 0)
    assert np.all(~patches.masks[patches.where("normal")])
    lesion_rows = np.concatenate([patches.where("mass"), patches.where("calcification")])
    assert patches.masks[lesion_rows].any((1, 2)).mean() > 0.9  # lesion patches hold their lesion
    assert set(patches.pathology[lesion_rows].tolist()) <= {1, 2}
    assert patches.images.dtype == np.uint8 and patches.images.shape[1:] == (32, 32)


def test_the_patches_job_cuts_every_split_once_and_reports_it(tmp_path):
    from medgan import configuration, main

    config = configuration.base_config("mammo_patches")
    config.mammo.update(phantom_patients=10, height=256, patch=32, per_lesion=2, normals_per_image=4)
    result = main.run_job(config, str(tmp_path / "patches"))
    splits = result["splits"]
    assert set(splits) == {"train", "val", "test"} and result["dropped_rows"] == {}
    assert result["kept_rows"] == result["rows"] > 0 and result["series_index"] == "metadata.csv"
    assert sum(s["patients"] for s in splits.values()) == 10
    assert result["total"] == sum(s["patches"] for s in splits.values()) > 0
    assert splits["train"]["counts"]["normal/normal"] == 4 * splits["train"]["images"]
    assert (tmp_path / "patches" / result["figures"]["patches"]).read_bytes()[:4] == b"\x89PNG"
    loaded = mammo_cohort.load_patches(result["patches_dir"])
    assert len(loaded["train"]) == splits["train"]["patches"]
    patients = [set(loaded[s].patient_ids.tolist()) for s in ("train", "val", "test")]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    assert main.run_job(config, str(tmp_path / "patches")) == result  # finished: skipped


def test_a_download_whose_rows_all_fail_is_an_error_and_nothing_is_cached(tmp_path, capsys):
    from medgan import configuration, main
    from medgan.data.records import TooFewKept

    download = tmp_path / "download"
    rows = cbis_layout.write_cbis_ddsm_layout(download, mammo_full.sample_mammograms(4, seed=2), 256, seed=2)
    manifest = next(download.glob("manifest-*"))
    (manifest / "CBIS-DDSM").rename(tmp_path / "elsewhere")  # metadata.csv lists every series; no file is there
    config = configuration.base_config("mammo_patches")
    config.mammo.update(root=str(download), height=256, patch=32, per_lesion=2, normals_per_image=4)
    workdir = tmp_path / "patches"
    with pytest.raises(TooFewKept, match=rf"kept 0 of {len(rows)} rows.*image_file_missing {len(rows)}\. "
                                         r"First dropped \(image_file_missing\): \w+_case_description_\w+_set\.csv "
                                         r"row \d+: .*CBIS-DDSM.*metadata\.csv"):
        main.run_job(config, str(workdir))
    assert not list(workdir.rglob("results.json")) and not list(workdir.rglob(mammo_cohort.REPORT_FILE))
    (tmp_path / "elsewhere").rename(manifest / "CBIS-DDSM")
    result = main.run_job(config, str(workdir))  # the data fixed: cut now, not "already cut (0 patches)"
    assert result["kept_rows"] == len(rows) and result["total"] > 0
    assert f"kept {len(rows)} of {len(rows)} rows; none dropped" in capsys.readouterr().out


def test_the_roles_of_each_lesion_model():
    kind = np.array([0, 0, 1, 1, 2, 2], np.int8)  # normal, normal, mass, mass, calcification, calcification
    pathology = np.array([0, 0, 1, 2, 1, 2], np.int8)  # -, -, benign, malignant, benign, malignant
    patches = mammo_patches.PatchSet(np.zeros((6, 4, 4), np.uint8), np.zeros((6, 4, 4), bool), kind, pathology,
                                     np.array(["p"] * 6), np.array(["i"] * 6))
    mass = mammo_patches.contextual_roles(patches, "mass")
    assert {k: v.tolist() for k, v in mass.items()} == {"base": [0, 1], "real": [3], "benign": [2, 4],
                                                        "normal": [0, 1]}
    removal = mammo_patches.contextual_roles(patches, "removal")
    assert {k: v.tolist() for k, v in removal.items()} == {"base": [3, 5], "real": [0, 1], "benign": [2, 4],
                                                           "normal": [3, 5]}
    with pytest.raises(ValueError, match=r"none for the role\(s\) \['real'\] of the calcification model"):
        mammo_patches.contextual_roles(dataclasses.replace(patches, pathology=np.array([0, 0, 1, 2, 1, 1])),
                                       "calcification")
