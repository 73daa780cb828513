"""Job "mammo_patches": the mammography study's patches, cut once from full mammograms.

    python -m medgan.main --config=configs/mammo_demo.py:stage=patches --workdir=work/mammo

Reads a CBIS-DDSM download (`config.mammo.root`, any layout data/cbis_ddsm.py
reads) or writes phantom mammograms as one (`mammo.phantom_layout`) and
reads those, fails naming the first dropped row when fewer than
`mammo.min_kept_share` of the rows resolve, splits patients 60/20/20 and cuts the
study's patches (data/mammo_cohort.py). Writes in `mammo.patches_dir`
(default <workdir>/patches) patches_{train,val,test}.npz and patches.json,
a picture of each kind of patch, and results.json (the same counts) last.
"""

from __future__ import annotations

import os

import ml_collections

from medgan import console, fileio, visualize, workdir as workdir_lib
from medgan.data import mammo_cohort, mammo_patches
from medgan.workdir import FIGURES_DIR, RESULT_FILE

FIGURE = "patches.png"


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    previous = workdir_lib.finished_result(
        workdir, lambda r: f"patches already cut ({r['total']} patches; {mammo_cohort.describe_drops(r)})")
    if previous is not None:
        return previous
    directory = mammo_cohort.patches_dir(config.mammo, workdir)
    report = mammo_cohort.prepare_patches(config.mammo, directory)
    train = mammo_patches.load_patch_set(mammo_cohort.patch_path(directory, "train"))
    figure = os.path.join(workdir, FIGURES_DIR, FIGURE)
    chosen, captions = [], []
    for kind in mammo_patches.KINDS:
        for pathology in (("normal",) if kind == "normal" else ("benign", "malignant")):
            rows = train.where(kind, pathology)[:8]
            chosen += rows.tolist()
            captions += [pathology if kind == "normal" else f"{pathology} {kind}"] * len(rows)
    os.makedirs(os.path.dirname(figure), exist_ok=True)
    visualize.save_labelled_grid(figure, train.images[chosen][..., None], captions,
                                 title="Training patches by kind and pathology (the mask's lesion inside)")
    result = {**report, "patches_dir": os.path.abspath(directory),
              "total": sum(s["patches"] for s in report["splits"].values()),
              "figures": {"patches": os.path.relpath(figure, workdir)}}
    fileio.write_json(os.path.join(workdir, RESULT_FILE), result)
    if not console.in_stage():
        console.summary({"release": report["release"], "rows": mammo_cohort.describe_drops(report)}
                        | {split: f"{s['patches']} patches from {s['images']} images of {s['patients']} patients"
                           for split, s in report["splits"].items()}
                        | {"masks": _describe_mended(report["mended_masks"]), "picture": figure},
                        title="mammography patches:")
    return result


def _describe_mended(mended: dict[str, int]) -> str:
    words = {"mask_in_crop_column": "found in the series the row names as the crop",
             "mask_resized": "a few pixels off the mammogram's size, resized onto it"}
    described = "; ".join(f"{n} {words.get(reason, reason)}" for reason, n in mended.items())
    return described or "none resized or taken from the crop's series"
