"""The mammography study's cohort: full mammograms (CBIS-DDSM, or phantoms written as one) cut into patches.

`prepare_patches` (once per `patches_dir`: a finished preparation is found
and reused) reads the release with the real loader (`cbis_ddsm`), splits
the patients 60/20/20 (`folds.split_patients`) before any patch is cut, and
cuts each split by the study's rules (`mammo_patches`): `per_lesion` patches
around every abnormality and `normals_per_image` of healthy tissue per image
in the training split, fewer in validation and test. It writes
patches_{train,val,test}.npz and patches.json (counts per split, kind and
pathology; rows dropped by the loader; images that could not be read;
patches that could not be cut), the report of what was used and what was not.
"""

from __future__ import annotations

import collections
import os

import ml_collections
import numpy as np
from absl import logging

from medgan import console, fileio
from medgan.data import cbis_ddsm, folds, mammo_patches
from medgan.data.records import UnreadableImage

REPORT_FILE = "patches.json"
PHANTOM_DIR = "phantom_cbis_ddsm"


def patches_dir(mammo: ml_collections.ConfigDict, workdir: str) -> str:
    return mammo.patches_dir or os.path.join(workdir, "patches")


def patch_path(directory: str, split: str) -> str:
    return os.path.join(directory, f"patches_{split}.npz")


def _release(mammo: ml_collections.ConfigDict, directory: str) -> str:
    """The CBIS-DDSM root to read: `mammo.root`, or phantoms written as a release under `directory` (once)."""
    if mammo.root:
        if not os.path.isdir(mammo.root):
            raise FileNotFoundError(f"config.mammo.root={mammo.root!r}: no such directory")
        return mammo.root
    from medgan.data.phantoms import cbis_layout, mammo_full

    root = os.path.join(directory, PHANTOM_DIR)
    if not any(os.path.exists(os.path.join(root, name)) for name in cbis_ddsm.CSV_FILES):
        mammograms = mammo_full.sample_mammograms(mammo.phantom_patients, mammo.phantom_seed)
        logging.info("writing %d phantom mammograms as a CBIS-DDSM release in %s", len(mammograms), root)
        with console.Progress(len(mammograms), "write phantom mammograms", unit="images") as progress:
            cbis_layout.write_cbis_ddsm_layout(root, mammograms, mammo.height, mammo.phantom_seed,
                                               conspicuity=mammo.phantom_conspicuity, on_image=progress.update)
    return root


def prepare_patches(mammo: ml_collections.ConfigDict, directory: str) -> dict:
    """Cuts (once) the patches of every split into `directory`; returns the report (patches.json)."""
    report_path = os.path.join(directory, REPORT_FILE)
    if os.path.exists(report_path):
        return fileio.read_json(report_path)
    os.makedirs(directory, exist_ok=True)
    root = _release(mammo, directory)
    cases, dropped = cbis_ddsm.read_cases(root)
    split_of = folds.split_patients((case.patient_id for case in cases), tuple(mammo.fractions), mammo.seed)
    rules = mammo_patches.PatchRules(size=mammo.patch, min_tissue=mammo.min_tissue,
                                     max_offset=mammo.max_offset or mammo.patch // 2)
    report = {"root": os.path.abspath(root), "dropped_rows": dropped, "rules": {
        "size": rules.size, "min_tissue": rules.min_tissue, "max_offset": rules.max_offset,
        "scale": list(rules.scale), "height": mammo.height}, "splits": {}}
    unreadable: list[str] = []
    notes: list[str] = []
    with console.Progress(len(cases), "cut mammogram patches", unit="images") as progress:
        for n_split, split in enumerate(folds.SPLITS):
            loaded = []
            for case in (c for c in cases if split_of[c.patient_id] == split):
                progress.update(progress.done + 1)
                try:
                    image, masks, case_notes = cbis_ddsm.load_case(root, case, mammo.height)
                except UnreadableImage as err:
                    unreadable.append(str(err))
                    continue
                notes += case_notes
                loaded.append((case, image, masks))
            training = split == "train"
            patches, missed = mammo_patches.sample_patch_set(
                loaded, rules, per_lesion=mammo.per_lesion if training else mammo.per_lesion_eval,
                normals_per_image=mammo.normals_per_image if training else max(1, mammo.normals_per_image // 4),
                seed=mammo.seed * 10 + n_split)
            mammo_patches.save_patch_set(patch_path(directory, split), patches)
            counts = collections.Counter(
                f"{mammo_patches.KINDS[k]}/{mammo_patches.PATHOLOGIES[p]}"
                for k, p in zip(patches.kind.tolist(), patches.pathology.tolist()))
            report["splits"][split] = {"patients": len(set(patches.patient_ids.tolist())), "images": len(loaded),
                                       "patches": len(patches), "counts": dict(sorted(counts.items())),
                                       "not_cut": missed}
    report["unreadable"] = unreadable
    report["mended_mask_paths"] = len(notes)
    fileio.write_json(report_path, report)  # last: its presence marks the preparation finished
    return report


def load_patches(directory: str) -> dict[str, mammo_patches.PatchSet]:
    """{split: PatchSet} of a finished preparation."""
    if not os.path.exists(os.path.join(directory, REPORT_FILE)):
        raise FileNotFoundError(f"{directory}: no {REPORT_FILE}; run the mammo_patches job first")
    return {split: mammo_patches.load_patch_set(patch_path(directory, split)) for split in folds.SPLITS}


def to_model(images: np.ndarray) -> np.ndarray:
    """uint8 patches [N, S, S] -> float32 [N, S, S, 1] in [-1, 1], the networks' range."""
    return (np.asarray(images, np.float32) / 127.5 - 1.0)[..., None]
