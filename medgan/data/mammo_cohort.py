"""The mammography study's cohort: full mammograms (CBIS-DDSM, or phantoms written as a download) cut into patches.

`prepare_patches` (once per `patches_dir`: a finished preparation is found
and reused) reads the download with the real loader (`cbis_ddsm`, whatever
layout it has), splits the patients 60/20/20 (`folds.split_patients`)
before any patch is cut, and cuts each split by the study's rules
(`mammo_patches`): `per_lesion` patches around every abnormality and
`normals_per_image` of healthy tissue per image in the training split, fewer
in validation and test. It writes patches_{train,val,test}.npz and
patches.json (the release and how its series were found; rows kept and
dropped by reason, with the first of each; images that could not be read;
masks mended; patches that could not be cut), the report of what was used
and what was not. A preparation that keeps fewer than `min_kept_share` of
the rows is an error, never a finished empty run.
"""

from __future__ import annotations

import collections
import functools
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
    """The CBIS-DDSM copy to read: `mammo.root`, or phantoms written as a download of `phantom_layout` (once)."""
    if mammo.root:
        if not os.path.isdir(mammo.root):
            raise FileNotFoundError(f"config.mammo.root={mammo.root!r}: no such directory")
        return mammo.root
    from medgan.data.phantoms import cbis_layout, mammo_full

    root = os.path.join(directory, f"{PHANTOM_DIR}_{mammo.phantom_layout}")
    if not os.path.exists(os.path.join(root, cbis_layout.FINISHED_FILE)):
        mammograms = mammo_full.sample_mammograms(mammo.phantom_patients, mammo.phantom_seed)
        logging.info("writing %d phantom mammograms as a %s CBIS-DDSM download in %s",
                     len(mammograms), mammo.phantom_layout, root)
        with console.Progress(len(mammograms), "write phantom mammograms", unit="images") as progress:
            cbis_layout.write_cbis_ddsm_layout(root, mammograms, mammo.height, mammo.phantom_seed,
                                               layout=mammo.phantom_layout, conspicuity=mammo.phantom_conspicuity,
                                               on_image=progress.update)
    return root


def _counted(total: collections.Counter, first: dict[str, str], counts: dict[str, int],
             examples: dict[str, str]) -> None:
    total.update(counts)
    for reason, example in examples.items():
        first.setdefault(reason, example)


def prepare_patches(mammo: ml_collections.ConfigDict, directory: str) -> dict:
    """Cuts (once) the patches of every split into `directory`; returns the report (patches.json).

    Raises TooFewKept, before any image is read and again once all are
    (masks that are not found drop their abnormality), when fewer than `mammo.min_kept_share` of the CSVs' rows
    resolve to a mammogram and a mask; patches.json (the mark of a finished
    preparation) is then not written, so the next run starts afresh.
    """
    report_path = os.path.join(directory, REPORT_FILE)
    if os.path.exists(report_path):
        return fileio.read_json(report_path)
    os.makedirs(directory, exist_ok=True)
    root = _release(mammo, directory)
    found = cbis_ddsm.read_cases(root, cache_dir=directory, on_file=_header_progress())
    release = found.release
    check = functools.partial(cbis_ddsm.check_kept, total=found.rows, min_share=mammo.min_kept_share,
                              what=f"CBIS-DDSM at {root}", expected=release.describe(),
                              key="config.mammo.min_kept_share")
    dropped, first_dropped = collections.Counter(found.dropped), dict(found.first_dropped)
    check(found.kept, dropped=dict(dropped), first_dropped=first_dropped)
    split_of = folds.split_patients((case.patient_id for case in found.cases), tuple(mammo.fractions), mammo.seed)
    rules = mammo_patches.PatchRules(size=mammo.patch, min_tissue=mammo.min_tissue,
                                     max_offset=mammo.max_offset or mammo.patch // 2)
    report = {"root": os.path.abspath(root), "release": release.describe(), "layout": release.layout,
              "series_index": found.index.kind, "rows": found.rows, "rules": {
                  "size": rules.size, "min_tissue": rules.min_tissue, "max_offset": rules.max_offset,
                  "scale": list(rules.scale), "height": mammo.height}, "splits": {}}
    unreadable: list[str] = []
    mended: collections.Counter = collections.Counter()
    kept = 0
    with console.Progress(len(found.cases), "cut mammogram patches", unit="images") as progress:
        for n_split, split in enumerate(folds.SPLITS):
            loaded = []
            for case in (c for c in found.cases if split_of[c.patient_id] == split):
                progress.update(progress.done + 1)
                try:
                    case_loaded = cbis_ddsm.load_case(case, mammo.height)
                except UnreadableImage as err:
                    unreadable.append(str(err))
                    _counted(dropped, first_dropped, {"image_unreadable": len(case.abnormalities)},
                             {"image_unreadable": str(err)})
                    continue
                _counted(dropped, first_dropped, case_loaded.dropped, case_loaded.first_dropped)
                mended.update(case_loaded.mended)
                kept += len(case_loaded.case.abnormalities)
                loaded.append((case_loaded.case, case_loaded.image, case_loaded.masks))
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
    check(kept, dropped=dict(dropped), first_dropped=first_dropped)
    report["kept_rows"] = kept
    report["dropped_rows"] = dict(sorted(dropped.items()))
    report["first_dropped"] = first_dropped
    report["unreadable"] = unreadable
    report["unreadable_dicom_headers"] = list(found.index.unreadable)
    report["mended_masks"] = dict(sorted(mended.items()))
    fileio.write_json(report_path, report)  # last: its presence marks the preparation finished
    return report


def _header_progress():
    """A progress bar for indexing DICOM headers, opened at the first file (most releases need no header index)."""
    bar: list[console.Progress] = []

    def on_file(done: int, total: int) -> None:
        if not bar:
            bar.append(console.Progress(total, "index DICOM series", unit="files"))
        bar[0].update(done)
        if done == total:
            bar[0].close()

    return on_file


def describe_drops(report: dict) -> str:
    """"kept 1,180 of 1,200 rows; dropped: mask_not_found 12, image_file_missing 8" for the console."""
    counts = cbis_ddsm.describe_counts(report.get("dropped_rows", {}))
    head = f"kept {report.get('kept_rows', 0):,} of {report.get('rows', 0):,} rows"
    return f"{head}; dropped: {counts}" if counts else f"{head}; none dropped"


def load_patches(directory: str) -> dict[str, mammo_patches.PatchSet]:
    """{split: PatchSet} of a finished preparation."""
    if not os.path.exists(os.path.join(directory, REPORT_FILE)):
        raise FileNotFoundError(f"{directory}: no {REPORT_FILE}; run the mammo_patches job first")
    return {split: mammo_patches.load_patch_set(patch_path(directory, split)) for split in folds.SPLITS}


def to_model(images: np.ndarray) -> np.ndarray:
    """uint8 patches [N, S, S] -> float32 [N, S, S, 1] in [-1, 1], the networks' range."""
    return (np.asarray(images, np.float32) / 127.5 - 1.0)[..., None]
