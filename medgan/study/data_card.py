"""The data card of a synthetic cohort: what it is, for a program (JSON) and for a person (Markdown).

A hospital shares a synthetic cohort together with its card: which generator
(weights' SHA-256), trained on what, how many images of which label
combinations, which software, and which audits were run on it.
"""

from __future__ import annotations

import datetime
import os

from medgan import fileio, provenance, report_format as fmt
from medgan.data import folds
from medgan.workdir import DATA_CARD_JSON, DATA_CARD_MD


def card(dataset: str, fold: folds.Fold, counts: dict[str, list[int]], gan_result: dict, *, seed: int,
         resolution: int, channels: int, total: int, real_cohort: dict | None = None) -> dict:
    """data_card.json: the generator, the counts per combination, the software, the audits run (none yet).

    `real_cohort`: the source the generator was trained on and its parameters
    (`builders.source_params`: a phantom's conspicuity and label noise, a real
    cohort's root and label policy).
    """
    return {
        "dataset": dataset,
        "real_cohort": real_cohort or {},
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "generator": {
            "model": gan_result["model"],
            "config": gan_result["config"],
            "checkpoint_sha256": gan_result["generator_sha256"],
            "steps": gan_result["steps"],
            "selected_step": gan_result["selected_step"],
            "fd": gan_result["best_fd"],
            "gan_test": _gan_test_at(gan_result),
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


def _gan_test_at(gan_result: dict) -> float | None:
    """The GAN-test AUC (eval/label_fidelity) of the evaluation that selected the generator, if one was made."""
    at = [e["gan_test"] for e in gan_result.get("eval_history", []) if e["step"] == gan_result["selected_step"]]
    return at[0] if at else None


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
        *([f"- GAN-test at that step: {fmt.number(g['gan_test'])}, the real-trained judge's mean AUC on its "
           "samples against the labels they were generated with (0.5: the labels do not reach the pixels)"]
          if g.get("gan_test") is not None else []),
        f"- generator weights SHA-256: `{g['checkpoint_sha256']}`",
        "",
        *_real_cohort_lines(card.get("real_cohort") or {}),
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
        ("\n".join(_audit_line(a) for a in card["audits"]) if card["audits"]
         else "None yet: run the memorisation audit before sharing this dataset outside your institution."),
        "",
        "## Software",
        "",
        ", ".join(f"{k} {v}" for k, v in card["software"].items()),
        "",
    ]
    return "\n".join(lines)


def _real_cohort_lines(cohort: dict) -> list[str]:
    """The trained-on cohort, and for phantoms how hard its labels are: noise a report labeller would make."""
    if not cohort:
        return []
    params = cohort.get("params", {})
    lines = ["## Real cohort", "", f"- source: `{cohort['source']}`"]
    lines += [f"- {key}: {value}" for key, value in params.items()
              if key not in ("label_miss", "label_false_positive")]
    if "label_miss" in params:
        lines.append(f"- labels: as a report labeller's, each finding missed with probability "
                     f"{params['label_miss']:g} and reported where absent with probability "
                     f"{params['label_false_positive']:g} (images rendered from the true labels; both "
                     "classifiers are trained and tested on these labels)")
    return lines + [""]


def audit_entry(result: dict, audit_dir: str) -> dict:
    """What the card records of one audit run: when, where, its settings and its outcome (flagged ids included)."""
    memo, overall = result["memorisation"], result["fidelity"]["overall"]["synthetic"]
    return {
        "audit": "memorisation, fidelity, embedding" + (", occlusion" if "occlusion" in result else ""),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "report": os.path.abspath(os.path.join(audit_dir, result["report"])),
        "judge": result["real_classifier"],
        "settings": {key: result["settings"][key] for key in ("false_flag_rate", "shifts", "neighbours",
                                                               "copying_cells")},
        "outcome": {
            "flagged": memo["flagged"],
            "flagged_ids": memo["flagged_ids"],
            "flagged_expected_if_honest": memo["flagged_expected_if_honest"],
            "data_copying_statistic": memo["data_copying_statistic"],
            "data_copying_p_value": memo["data_copying_p_value"],
            "planted_control": memo.get("planted_control"),
            **{key: overall[key] for key in ("fd", "kid", "precision", "recall", "density", "coverage")},
        },
    }


def _audit_line(entry: dict) -> str:
    outcome, settings = entry["outcome"], entry["settings"]
    flagged = ", ".join(f"`{i}`" for i in outcome["flagged_ids"][:20]) + (
        f" and {len(outcome['flagged_ids']) - 20} more" if len(outcome["flagged_ids"]) > 20 else "")
    return (f"- {entry['date_utc']}, {entry['audit']} ([report]({entry['report']})): **{outcome['flagged']}** "
            f"synthetic images flagged as possible copies of training images at a "
            f"{settings['false_flag_rate']:.1%} false-flag rate (about {outcome['flagged_expected_if_honest']:.1f} "
            f"expected of an honest cohort){': ' + flagged if flagged else ''}; "
            + (f"planted copies flagged: {planted['flagged']} of {planted['copies']}; "
               if (planted := outcome.get("planted_control")) else "")
            + (f"data-copying test C_T = {outcome['data_copying_statistic']:.2f} "
               f"({fmt.p_clause(outcome['data_copying_p_value'])}); "
               if outcome["data_copying_statistic"] is not None else "no data-copying test (too few images); ")
            + f"FD {outcome['fd']:.2f}, KID {outcome['kid']:.4f}, precision {outcome['precision']:.3f}, "
            f"recall {outcome['recall']:.3f}")


def add_audit(synthetic_dir: str, entry: dict) -> None:
    """Appends an audit to a synthetic cohort's data_card.json and rewrites DATA_CARD.md from it."""
    path = os.path.join(synthetic_dir, DATA_CARD_JSON)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist: not a finished synthesize run")
    card = fileio.read_json(path)
    card["audits"] = [a for a in card["audits"] if a.get("report") != entry["report"]] + [entry]
    with fileio.atomic_path(os.path.join(synthetic_dir, DATA_CARD_MD)) as tmp, open(tmp, "w") as f:
        f.write(markdown(card))
    fileio.write_json(path, card)
