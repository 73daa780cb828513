"""The data card of a synthetic cohort: what it is, for a program (JSON) and for a person (Markdown).

A hospital shares a synthetic cohort together with its card: which generator
(weights' SHA-256), trained on what, how many images of which label
combinations, which software, and which audits were run on it.
"""

from __future__ import annotations

import datetime

from medgan import provenance, report_format as fmt
from medgan.data import folds


def card(dataset: str, fold: folds.Fold, counts: dict[str, list[int]], gan_result: dict, *, seed: int,
         resolution: int, channels: int, total: int) -> dict:
    """data_card.json: the generator, the counts per combination, the software, the audits run (none yet)."""
    return {
        "dataset": dataset,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "generator": {
            "model": gan_result["model"],
            "config": gan_result["config"],
            "checkpoint_sha256": gan_result["generator_sha256"],
            "steps": gan_result["steps"],
            "selected_step": gan_result["selected_step"],
            "fd": gan_result["best_fd"],
            "trained_on": {"dataset": gan_result["dataset"], "train_images": gan_result["train_images"]},
        },
        "seed": seed,
        "resolution": resolution,
        "channels": channels,
        "class_names": list(fold.class_names),
        "counts": {
            "total": total,
            "per_combination": [
                {"names": list(fold.combination_names(c)), "multi_hot": list(c),
                 "train": counts["train"][i], "val": counts["val"][i]}
                for i, c in enumerate(fold.combinations)
            ],
        },
        "software": provenance.software_versions(),
        "audits": [],
        "real_metadata_copied": False,
    }


def markdown(card: dict) -> str:
    """DATA_CARD.md: the same content for a person."""
    g = card["generator"]
    lines = [
        f"# Synthetic dataset `{card['dataset']}`",
        "",
        f"{card['counts']['total']} synthetic images, {card['resolution']} px, {card['channels']} channel(s), "
        f"created {card['created_utc']} by medgan's `synthesize` job (seed {card['seed']}).",
        "",
        "Every image was sampled from a generative model; none is a patient's image. Image ids are synthetic, "
        "each image is its own \"patient\", and no metadata of any real file was copied.",
        "",
        "## Generator",
        "",
        f"- model: {g['model']['name']} at {g['model']['resolution']} px "
        f"(latent {g['model']['latent_dim']}, widths fmap_base={g['model']['fmap_base']}, "
        f"fmap_max={g['model']['fmap_max']})",
        f"- trained on: `{g['trained_on']['dataset']}`, {g['trained_on']['train_images']} real training images",
        f"- steps: {g['steps']}, EMA weights of step {g['selected_step']}"
        + (f" (lowest Fréchet distance, {g['fd']:.2f})" if g["fd"] is not None else ""),
        f"- generator weights SHA-256: `{g['checkpoint_sha256']}`",
        "",
        "## Label combinations",
        "",
    ]
    lines += fmt.markdown_table(
        ("findings", "train", "val"),
        (
            (" + ".join(e["names"]) or "(none)", str(e["train"]), str(e["val"]))
            for e in card["counts"]["per_combination"]
        ),
        align="lrr",
    )
    lines += [
        "",
        "## Audits",
        "",
        ("\n".join(f"- {a}" for a in card["audits"]) if card["audits"]
         else "None yet: run the memorisation audit before sharing this dataset outside your institution."),
        "",
        "## Software",
        "",
        ", ".join(f"{k} {v}" for k, v in card["software"].items()),
        "",
    ]
    return "\n".join(lines)
