"""Job "synthesize_lesions": synthetic patches from trained contextual GANs, as the study made its synthetic set.

Each GAN of `lesion_synthesis.gans` runs over real training patches (healthy
tissue for a mass or calcification GAN, malignant lesions for the removal
GAN) until `per_model` outputs survive post-processing (study/mammo.py).
Writes synthetic_patches.npz (a PatchSet: kind mass / calcification / normal,
pathology malignant / normal), preview.png, and results.json last.
"""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np

from medgan import console, fileio, visualize
from medgan.data import mammo_cohort, mammo_patches
from medgan.jobs import common
from medgan.study import mammo
from medgan.workdir import PREVIEW, RESULT_FILE

PATCHES_FILE = "synthetic_patches.npz"


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    previous, mesh = common.begin(config, workdir, lambda r: f"synthetic patches already made ({r['patches']})")
    if previous is not None:
        return previous
    cfg = config.lesion_synthesis
    gan_dirs = [d.strip() for d in cfg.gans.split(",") if d.strip()]
    if not gan_dirs:
        raise ValueError("config.lesion_synthesis.gans is empty: give train_contextual work directories")
    train = mammo_cohort.load_patches(mammo_cohort.patches_dir(config.mammo, workdir))["train"]
    with console.Progress(len(gan_dirs), "synthesize lesion patches", unit="GANs") as progress:
        made, counts = [], {}
        for n, gan_dir in enumerate(gan_dirs):
            patches, report = mammo.synthesize_patches([gan_dir], train, cfg.per_model, mesh, seed=config.seed + n,
                                                       global_batch_size=cfg.global_batch_size)
            made.append(patches)
            counts.update(report)
            progress.update(n + 1)
    synthetic = mammo_patches.PatchSet(*(np.concatenate([getattr(p, field) for p in made])
                                         for field in ("images", "masks", "kind", "pathology", "patient_ids",
                                                       "image_ids")))
    result = {"gans": [os.path.abspath(d) for d in gan_dirs], "counts": counts, "patches": len(synthetic),
              "file": PATCHES_FILE, "preview": PREVIEW}
    if jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        mammo_patches.save_patch_set(os.path.join(workdir, PATCHES_FILE), synthetic)
        chosen, captions = [], []
        for kind in mammo_patches.KINDS:
            rows = synthetic.where(kind)[:8]
            chosen += rows.tolist()
            captions += [f"synthetic {'normal (lesion removed)' if kind == 'normal' else kind}"] * len(rows)
        if chosen:
            visualize.save_labelled_grid(os.path.join(workdir, PREVIEW), synthetic.images[chosen][..., None],
                                         captions, title="Synthetic patches after post-processing")
        fileio.write_json(os.path.join(workdir, RESULT_FILE), result)
        if not console.in_stage():
            console.summary({lesion: f"{c['kept']} kept of {c['made']} made" for lesion, c in counts.items()},
                            title="synthetic lesion patches:")
    return result


def load(workdir: str) -> mammo_patches.PatchSet:
    return mammo_patches.load_patch_set(os.path.join(workdir, PATCHES_FILE))
