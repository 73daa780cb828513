"""A benchmark point for people: figures (real beside synthetic images, ROC curves), report.md, console summary."""

from __future__ import annotations

import os

import numpy as np

from medgan import report_format as fmt, visualize
from medgan.data import builders, folds
from medgan.study import audit as audit_report
from medgan.study.point import STAGE_DIRS, STAGES
from medgan.study.study_gans import model_label
from medgan.workdir import DATA_CARD_MD, DATASET_DIR, FIGURES_DIR, MANIFEST_FILE, PREVIEW, RESULT_FILE


def write_figures(workdir, fold: folds.Fold, prepared, evaluation: dict, per_combination: int) -> dict:
    """Real training images beside synthetic ones of the same labels, and the ROC curves; returns paths."""
    figures_dir = os.path.join(workdir, FIGURES_DIR)
    os.makedirs(figures_dir, exist_ok=True)
    synthetic_data = os.path.join(workdir, STAGE_DIRS["synthesize"], DATASET_DIR)
    synthetic_fold = folds.read_manifest(os.path.join(workdir, STAGE_DIRS["synthesize"], MANIFEST_FILE))

    def first_ids(dataset_dir, ids) -> dict[tuple, list[str]]:
        labels = {r.image_id: tuple(r.labels) for r in builders.read_index(dataset_dir)}
        return {c: sorted(i for i in ids if labels[i] == c)[:per_combination] for c in fold.combinations}

    real_ids = first_ids(prepared.dataset_dir, fold.ids["train"])
    synthetic_ids = first_ids(synthetic_data, synthetic_fold.ids["train"])
    real = visualize.images_by_id(prepared.dataset_dir, [i for ids in real_ids.values() for i in ids])
    synthetic = visualize.images_by_id(synthetic_data, [i for ids in synthetic_ids.values() for i in ids])
    blank = np.zeros_like(next(iter(real.values())))
    images, captions = [], []
    for combination in fold.combinations:
        findings = ", ".join(fold.combination_names(combination)) or "no finding"
        for source, ids, images_of in (("real", real_ids, real), ("synthetic", synthetic_ids, synthetic)):
            row = [images_of[i] for i in ids[combination]]
            images += row + [blank] * (per_combination - len(row))  # fewer images than asked: a blank cell
            captions += [f"{source}: {findings}"] * len(row) + [""] * (per_combination - len(row))
    side_by_side = os.path.join(figures_dir, "real_vs_synthetic.png")
    visualize.save_labelled_grid(
        side_by_side, np.stack(images), captions, columns=2 * per_combination,
        title="Real training images (left) and synthetic images (right), one row per label combination",
    )
    roc = os.path.join(figures_dir, "roc.png")
    visualize.save_roc_curves(roc, evaluation["labels"], evaluation["scores"], evaluation["class_names"])
    return {"real_vs_synthetic": os.path.relpath(side_by_side, workdir), "roc": os.path.relpath(roc, workdir)}


def report_markdown(result: dict) -> str:
    """report.md: the answer first, then per class, the pictures, the GAN, the fold, the stages."""
    sections = (_answer, _per_class, _pictures, _audit, _gan, _fold, _stages)
    return "\n".join(line for section in sections for line in section(result))


def _ci_of(pair) -> str:
    return fmt.interval(*(pair or (None, None)))


def _answer(result: dict) -> list[str]:
    point, rel, mean = result["point"], result["relative_auc"], result["delong"]["mean"]
    real, synthetic = result["real"], result["synthetic"]
    level = round(100 * result["delong"]["level"])
    lines = [
        f"# Benchmark point: {point['source']}, {point['resolution']} px, {point['num_combinations']} label "
        f"combinations x {point['per_combination']} training images, {model_label(point['model'])}",
        "",
        "A classifier trained on the real training split and one trained on the synthetic cohort, both tested "
        "on the same real test split.",
        "",
        *fmt.markdown_table(("trained on", "mean test AUC", f"{level}% CI"), [
            ("real", fmt.number(real["mean_auc"]), _ci_of(real["mean_auc_ci"])),
            ("synthetic", fmt.number(synthetic["mean_auc"]), _ci_of(synthetic["mean_auc_ci"])),
        ], align="lrl"),
        "",
        f"**Relative AUC (synthetic / real): {fmt.number(rel['mean'])}** {level}% CI "
        f"{fmt.interval(rel['ci_low'], rel['ci_high'])}.",
    ]
    seeds = result.get("judge_seeds") or [0]
    if len(seeds) > 1:
        lines.append(f"Every AUC is the mean of {len(seeds)} judges (seeds {', '.join(map(str, seeds))}), pooled over "
                     "the seeds (eval/pooling): the intervals hold the seeds' spread as well as DeLong's variance "
                     f"(seed spread of the mean AUC: real {fmt.number(real['judge_seeds']['spread'])}, synthetic "
                     f"{fmt.number(synthetic['judge_seeds']['spread'])}).")
    if mean is not None:
        lines.append(f"DeLong's paired test of the mean AUC: difference real - synthetic "
                     f"{fmt.number(mean['difference'])}, {level}% CI {fmt.interval(mean['ci_low'], mean['ci_high'])}, "
                     f"{fmt.p_clause(mean['p_value'])}.")
    return lines + _label_fidelity(result)


def _label_fidelity(result: dict) -> list[str]:
    """Whether the GAN's labels reach its pixels: GAN-test, the synthetic judge's own validation, the FD history."""
    fidelity = result.get("label_fidelity")
    if not fidelity:
        return []
    gan_test = fidelity["gan_test"]
    per_label = ", ".join(f"{name} {fmt.number(value)}" for name, value in gan_test["per_class_auc"].items()
                          if value is not None)
    ci = fmt.interval(*(gan_test["mean_auc_ci"] or (None, None)))
    lines = ["", "## Do the labels reach the pixels?", "",
             f"**GAN-test: {fmt.number(gan_test['mean_auc'])}** {ci}, the real-trained judge's mean AUC on the "
             f"{gan_test['images']} synthetic images against the labels they were generated with "
             f"(Shmelkov et al. 2018; per label: {per_label or fmt.MISSING}). Near 0.5 the GAN "
             "draws nothing of the findings its labels name; near the real judge's test AUC it draws them as the "
             "real images show them.",
             f"The synthetic-trained judge's validation AUC on held-out synthetic images: "
             f"{fmt.number(fidelity['synthetic_val_auc'])} (high while its real test AUC is at chance: what it learnt "
             "from the synthetic images does not transfer)."]
    fd = fidelity.get("fd")
    if fd:
        lines += ["", f"Fréchet distance in the real judge's features, overall {fmt.number(fd['overall'], 2)}, "
                      "per label combination (one combination far above the rest: the GAN does not draw it):", "",
                  *fmt.markdown_table(("label combination", "real / synthetic images", "FD"), [
                      (" + ".join(e["names"]), f"{e['train_images']} / {e['synthetic_images']}",
                       fmt.number(e["fd"], 2)) for e in fd["per_combination"]], align="lrr")]
    history = fidelity.get("eval_history") or []
    if history:
        lines += ["", "During GAN training (every evaluation; FD in the real judge's features):", "",
                  *fmt.markdown_table(("step", "resolution", "FD", "GAN-test"), [
                      (str(e["step"]), f"{e['resolution']} px", fmt.number(e["fd"], 2), fmt.number(e["gan_test"]))
                      for e in history], align="rrrr")]
    return lines


def _per_class(result: dict) -> list[str]:
    real, synthetic, rel = result["real"], result["synthetic"], result["relative_auc"]
    rows = []
    for name, test in result["delong"]["classes"].items():
        difference = fmt.number(test["difference"])
        if test["ci_low"] is not None:
            difference += " " + fmt.interval(test["ci_low"], test["ci_high"])
        rows.append((name, f"{test['positives']} / {test['negatives']}", fmt.number(real["per_class_auc"][name]),
                     fmt.number(synthetic["per_class_auc"][name]), fmt.number(rel["per_class"][name]), difference,
                     fmt.p_value(test["p_value"])))
    header = ("class", "test positives / negatives", "real AUC", "synthetic AUC", "relative", "difference (CI)", "p")
    return ["", "## Per class", "", *fmt.markdown_table(header, rows, align="lrrrrlr"), "",
            f"Classes without positives (or negatives) in the test split have no AUC ({fmt.MISSING}) and are left "
            "out of the means."]


def _pictures(result: dict) -> list[str]:
    gan, synthetic_dir, gan_dir = result["gan"], STAGE_DIRS["synthesize"], STAGE_DIRS["gan"]
    return [
        "",
        "## Pictures",
        "",
        "Real training images (left) and synthetic images (right) of the same label combinations:",
        "",
        f"![real and synthetic images]({result['figures']['real_vs_synthetic']})",
        "",
        "ROC curves on the real test split, classifier trained on real vs on synthetic images:",
        "",
        f"![ROC curves]({result['figures']['roc']})",
        "",
        f"The GAN's fixed-latent samples at its last step (one row per label combination): "
        f"[{gan_dir}/{gan['samples']}]({gan_dir}/{gan['samples']}); the synthetic cohort's preview: "
        f"[{synthetic_dir}/{PREVIEW}]({synthetic_dir}/{PREVIEW}) and data card: "
        f"[{synthetic_dir}/{DATA_CARD_MD}]({synthetic_dir}/{DATA_CARD_MD}).",
    ]


def _audit(result: dict) -> list[str]:
    """The audit's section (as its own audit.md, figure links relative to the point)."""
    return ["", *audit_report.markdown(result["audit"], prefix=f"{STAGE_DIRS['audit']}/")]


def _gan(result: dict) -> list[str]:
    point, gan = result["point"], result["gan"]
    return [
        "",
        "## GAN",
        "",
        f"{point['model']}: {gan['steps']} steps ({gan['stopped']}), generator selected at step {gan['selected_step']} "
        f"(Fréchet distance {fmt.number(gan['best_fd'], 2)} in the real classifier's features), "
        f"{fmt.number(gan['train_images_per_second'], 1)} images/s; {result['synthetic_images']} synthetic images.",
    ]


def _fold(result: dict) -> list[str]:
    fold = result["fold"]
    rows = [(", ".join(combination) or "no finding", *(str(c[i]) for c in fold["counts"].values()))
            for i, combination in enumerate(fold["combinations"])]
    return ["", "## Fold", "",
            f"{fold['manifest']}: " + ", ".join(f"{k} {v}" for k, v in fold["sizes"].items()) + " images.", "",
            *fmt.markdown_table(("label combination", *fold["counts"]), rows, align="l" + "r" * len(fold["counts"]))]


def _stages(result: dict) -> list[str]:
    seconds = result["wall_seconds"]
    rows = [(stage, result["stages"].get(stage, ""), f"{seconds[stage]:.0f}") for stage in STAGES]
    rows.append(("total", "", f"{seconds['total']:.0f}"))
    return ["", "## Stages", "", *fmt.markdown_table(("stage", "directory", "wall seconds"), rows, align="llr"), "",
            "Software: " + ", ".join(f"{k} {v}" for k, v in result["software"].items()), ""]


def print_summary(result: dict, workdir: str) -> None:
    """The results table and the paths a person opens next."""
    point, rel = result["point"], result["relative_auc"]
    print(f"benchmark point {point['source']} {point['resolution']} px, k={point['num_combinations']} "
          f"n={point['per_combination']}, {point['model']}:")
    seeds = len(result.get("judge_seeds") or [0])
    print(f"  mean test AUC  real {result['real']['mean_auc']:.3f}   synthetic {result['synthetic']['mean_auc']:.3f}   "
          f"relative {rel['mean']:.3f} (95% CI {fmt.interval(rel['ci_low'], rel['ci_high'])})"
          + (f", {seeds} judge seeds pooled" if seeds > 1 else ""))
    mean = result["delong"]["mean"]
    if mean is not None and mean["p_value"] is not None:
        print(f"  DeLong paired test: difference {mean['difference']:.3f}, {fmt.p_clause(mean['p_value'])}")
    fidelity = result.get("label_fidelity")
    if fidelity:
        print(f"  GAN-test AUC   {fmt.number(fidelity['gan_test']['mean_auc'])} (the real judge on the synthetic "
              f"images, against their labels: 0.5 = the labels do not reach the pixels)")
    paths = {"report": result["report"], "audit": result["audit"]["report"], **result["figures"],
             "GAN samples": os.path.join(STAGE_DIRS["gan"], result["gan"]["samples"]), "results": RESULT_FILE}
    width = max(len(name) for name in paths) + 1
    for name, path in paths.items():
        print(f"  {name + ':':{width}s} {os.path.join(workdir, path)}")
