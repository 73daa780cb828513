"""report.md and the console answer of the mammography study (jobs/mammo_study.py)."""

from __future__ import annotations

import os

from medgan import report_format as fmt
from medgan.study import mammo


def markdown(result: dict) -> list[str]:
    lines = ["# Contextual lesion GAN: GAN-augmented cancer classification on mammogram patches", "",
             "Test AUC of the cancer / no-cancer classifier on real test patches by the initial share of synthetic "
             "patches (decayed by 10% every 5,000 samples), with DeLong's paired test against the baseline on the "
             "same patches, beside the paper's Table 1 (Wu et al. 2020; OPTIMAM, ResNet-50, 256 px).", ""]
    cohort = result.get("cohort")
    if cohort:
        lossy = (" These are Kaggle's lossy 8-bit JPEGs: the AUCs do not compare with runs on the DICOMs."
                 if cohort["layout"] == "jpeg" else "")
        lines += [f"Cohort: {cohort['release']}; {cohort['rows']}.{lossy}", ""]
    lines += mammo.markdown_table(result["table"])
    lines += ["", _shape_verdict(result["table"]), ""]
    lines += ["## What the GANs do to the baseline's score", "",
              "Each GAN edits real test patches (mass and calcification GANs paint on normal tissue; the removal GAN "
              "clears malignant lesions); the baseline classifier (p0 = 0) scores each before and after. Only "
              "outputs whose lesion survived post-processing count.", ""]
    lines += fmt.markdown_table(("GAN", "patches", "kept", "mean score before", "after", "share that rose"), [
        (e["lesion"], str(e["patches"]), str(e["kept"]), fmt.number(e["mean_before"]), fmt.number(e["mean_after"]),
         fmt.number(e["rose"])) for e in result["lesion_effects"]], align="lrrrrr")
    for e in result["lesion_effects"]:
        key = f"lesion_effect_{e['lesion']}"
        if key in result["figures"]:
            lines += ["", f"![{key}]({result['figures'][key]})"]
    tsne = result["tsne"]
    lines += ["", "## Embedding (the paper's Fig. 4)", "",
              f"Points: {', '.join(f'{n} {k}' for k, n in tsne['points'].items())}. Of the synthetic lesions, "
              f"{fmt.number(tsne['synthetic_lesion_near_real_lesion'])} lie nearest a real lesion rather than a "
              "normal patch on the map.", "", f"![tsne]({result['figures']['tsne']})"]
    caught = result["false_negatives"]
    if caught is not None:
        lines += ["", "## False negatives of the baseline (the paper's Fig. 5)", "",
                  f"At a score threshold of 0.5 the baseline misses {caught['missed_by_baseline']} real test lesions; "
                  f"the classifier with p0 = {caught['p0']:.0%} catches {caught['caught']} of them and misses "
                  f"{caught['lost']} the baseline caught."]
        if "false_negatives" in result["figures"]:
            lines += ["", f"![false negatives]({result['figures']['false_negatives']})"]
    lines += ["", "## Stages", ""]
    lines += fmt.markdown_table(("GAN", "steps", "kept after post-processing", "samples"), [
        (lesion, str(g["steps"]), fmt.number(g["kept_after_post_processing"]), g["samples"])
        for lesion, g in result["gans"].items()])
    lines += ["", "Synthetic patches kept: " + ", ".join(f"{k} {c['kept']} of {c['made']}"
                                                        for k, c in result["synthetic"].items()) + "."]
    return lines


def _shape_verdict(table: list[dict]) -> str:
    """Whether the paper's inverted U appears: a peak at an intermediate share above both ends."""
    if len(table) < 3:
        return "Fewer than three shares: no shape to judge."
    aucs = [row["auc"] for row in table]
    peak = max(range(len(aucs)), key=aucs.__getitem__)
    if 0 < peak < len(aucs) - 1:
        significant = table[peak]["p_value"] is not None and table[peak]["p_value"] < 0.05
        return (f"The inverted U appears: the AUC peaks at p0 = {table[peak]['p0']:.0%} "
                f"({'significantly' if significant else 'not significantly'} above the baseline, "
                f"{fmt.p_clause(table[peak]['p_value'])}) and falls at {table[-1]['p0']:.0%}.")
    shares = ", ".join(f"{row['p0']:.0%}: {row['auc']:.3f}" for row in table)
    return f"No inverted U: the AUC is highest at p0 = {table[peak]['p0']:.0%}, an end of the range ({shares})."


def summary_lines(result: dict, workdir: str) -> dict:
    lines = {f"p0 = {row['p0']:.0%}": f"AUC {row['auc']:.3f}" + (
        "" if row["p_value"] is None else f" ({row['delta']:+.3f}, {fmt.p_clause(row['p_value'])})")
        for row in result["table"]}
    lines["report"] = os.path.join(workdir, result["report"])
    return lines
