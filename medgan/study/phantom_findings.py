"""How visible the phantoms' findings are: grey levels a finding changes inside its region, and a picture of each.

    python launch/phantom_findings.py --out=results/phantom_findings [--conspicuity=0.6]

For each finding class of phantom chest X-rays and head CTs, at 32 and 64 px:
the positive images of a sampled cohort are rendered with their true labels
and again with that finding removed (same patient, same acquisition); the
mean |difference| in grey levels (uint8, head CT through the brain window)
inside the finding's own region (`phantoms.finding_region`) is one number per
image, and the table gives its median over images and the share of images at
or above `VISIBLE_LEVELS`. A finding that changes its region by a few grey
levels is below what a reader sees at these sizes; one that changes it by
tens is plain. The picture shows one patient without each finding and with
it alone. Writes findings.md, findings.json and
findings_<modality>.png into `--out`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import numpy as np

from medgan import fileio, visualize
from medgan.data.labels import CLASSES_BY_MODALITY
from medgan.data.phantoms import cohorts, finding_region, render_seeds
from medgan.data.phantoms.rendering import DEFAULT_CONSPICUITY

MODALITIES = ("chest", "head_ct")
RESOLUTIONS = (32, 64)
VISIBLE_LEVELS = 8  # grey levels of 255: a change a reader sees on a 32-64 px image


def region_changes(modality: str, class_index: int, resolution: int, conspicuity: float, *, patients: int,
                   seed: int, images: int) -> np.ndarray:
    """Mean |with - without| inside the finding's region, per positive image (float [n], grey levels)."""
    name = CLASSES_BY_MODALITY[modality][class_index]
    changes = []
    for record in cohorts.sample_cohort(modality, patients, seed):
        if not record.labels[class_index]:
            continue
        image_seed, acquisition = render_seeds(seed, record)
        region = finding_region(modality, name, resolution, image_seed, acquisition)
        if not region.any():
            continue
        without = list(record.labels)
        without[class_index] = 0
        with_it, without_it = (cohorts._render_uint8(modality, labels, resolution, image_seed, acquisition,
                                                     conspicuity).astype(np.float32)
                               for labels in (record.labels, without))
        changes.append(float(np.abs(with_it - without_it)[region].mean()))
        if len(changes) == images:
            break
    return np.asarray(changes, np.float32)


def measure(conspicuity: float, *, patients: int = 400, seed: int = 0, images: int = 40,
            modalities: Sequence[str] = MODALITIES, resolutions: Sequence[int] = RESOLUTIONS) -> list[dict]:
    """One row per (modality, class, resolution): images measured, median change, share >= VISIBLE_LEVELS."""
    rows = []
    for modality in modalities:
        for class_index, name in enumerate(CLASSES_BY_MODALITY[modality][1:], start=1):
            for resolution in resolutions:
                changes = region_changes(modality, class_index, resolution, conspicuity, patients=patients,
                                         seed=seed, images=images)
                rows.append({"modality": modality, "class": name, "resolution": resolution, "images": len(changes),
                             "median_change": float(np.median(changes)) if len(changes) else None,
                             "visible_share": float(np.mean(changes >= VISIBLE_LEVELS)) if len(changes) else None})
    return rows


def markdown(rows: Sequence[dict], conspicuity: float) -> list[str]:
    lines = [f"Conspicuity {conspicuity:g}: median over positive images of the mean |change| (grey levels of 255) "
             f"inside the finding's region, and the share of images changed by at least {VISIBLE_LEVELS}.", "",
             "| modality | class | " + " | ".join(f"{r} px median | {r} px >= {VISIBLE_LEVELS}"
                                               for r in RESOLUTIONS) + " | images |",
             "|---|---|" + "---:|---:|" * len(RESOLUTIONS) + "---:|"]
    keyed = {(row["modality"], row["class"], row["resolution"]): row for row in rows}
    for modality, name in dict.fromkeys((row["modality"], row["class"]) for row in rows):
        cells = []
        for resolution in RESOLUTIONS:
            row = keyed.get((modality, name, resolution))
            median = row and row["median_change"]
            cells += ["-", "-"] if median is None else [f"{median:.1f}", f"{row['visible_share']:.0%}"]
        count = min(keyed[(modality, name, r)]["images"] for r in RESOLUTIONS if (modality, name, r) in keyed)
        lines.append(f"| {modality} | {name} | " + " | ".join(cells) + f" | {count} |")
    return lines


def save_picture(path: str, modality: str, conspicuity: float, resolution: int = 64, seed: int = 0) -> None:
    """Pairs: one patient without a finding (left) and the same patient with that finding alone (right)."""
    names = CLASSES_BY_MODALITY[modality]
    normal = [1] + [0] * (len(names) - 1)
    images, captions = [], []
    for class_index, name in enumerate(names[1:], start=1):
        alone = [0] * len(names)
        alone[class_index] = 1
        images += [cohorts._render_uint8(modality, labels, resolution, seed, 0, conspicuity)
                   for labels in (normal, alone)]
        captions += ["without", name]
    visualize.save_labelled_grid(path, np.stack(images)[..., None], captions, columns=min(len(images), 10),
                                 title=f"Phantom {modality} at {resolution} px, conspicuity {conspicuity:g}: "
                                       "one patient without (left) and with (right) each finding alone")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--conspicuity", type=float, default=DEFAULT_CONSPICUITY)
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--images", type=int, default=40, help="positive images measured per class")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = measure(args.conspicuity, patients=args.patients, images=args.images)
    fileio.write_json(os.path.join(args.out, "findings.json"), {"conspicuity": args.conspicuity, "rows": rows})
    lines = markdown(rows, args.conspicuity)
    for modality in MODALITIES:
        picture = f"findings_{modality}.png"
        save_picture(os.path.join(args.out, picture), modality, args.conspicuity)
        lines += ["", f"![{modality}]({picture})"]
    with fileio.atomic_path(os.path.join(args.out, "findings.md")) as temp, open(temp, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
