"""The instrument's answer: does the benchmark's relative AUC follow a synthetic cohort's known quality?

Every rung (data/oracle.py) is judged by `judge_seeds` classifiers, each
paired with the real-trained judge of the same seed on the same real test
images (study/point.evaluate_pair). Seeds are pooled
(eval/pooling.py), so each interval holds the judges' spread and DeLong's.

The ladder proves the instrument when (`checks`):
* the perfect generator's relative AUC interval contains 1;
* with every label permuted, the synthetic judge's AUC interval contains 0.5;
* relative AUC falls monotonically with the share of permuted labels and
  with the downsampling factor;
* adjacent label rungs 0.25 apart have disjoint relative-AUC intervals, and
  their judges differ in a direct comparison: DeLong's paired test of the two
  rungs' judges' mean AUC on the same test images, pooled over seeds
  (p < 0.05). The paired test is the stronger of the two: intervals that
  overlap can still belong to different means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: clusters and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medgan import report_format as fmt, visualize  # noqa: E402
from medgan.data.oracle import Rung  # noqa: E402
from medgan.eval import auc, pooling  # noqa: E402

SEPARATION_STEP = 0.25  # label rungs this far apart in r must be told apart
SIGNIFICANCE = 0.05  # of the paired test between such rungs


def pooled_rung(evaluations: Sequence[dict], level: float) -> dict:
    """One rung over judge seeds: pooled real, synthetic and real - synthetic mean AUC, and relative AUC.

    evaluations: `point.evaluate_pair` of each seed. Relative AUC is
    synthetic / real of the pooled means; its interval maps the pooled
    difference's interval through 1 - D / real (as point.relative_auc).
    """
    labels = evaluations[0]["labels"]
    reals, synthetics = ([e["scores"][side] for e in evaluations] for side in ("real", "synthetic"))

    def pooled(values, variances, scores_a, scores_b=None):
        within = auc.seed_mean_variances(labels, scores_a, scores_b)[1]
        if within is None or any(v is None for v in variances):
            raise ValueError("a judge's mean AUC has no DeLong variance (a class with one positive or negative "
                             "in the test split); the instrument needs every class's variance")
        return pooling.pool(values, variances, level, within)

    real = pooled([e["real"]["mean_auc"] for e in evaluations], [e["real"]["mean_auc_variance"] for e in evaluations],
                  reals)
    synthetic = pooled([e["synthetic"]["mean_auc"] for e in evaluations],
                       [e["synthetic"]["mean_auc_variance"] for e in evaluations], synthetics)
    difference = pooled([e["paired"]["mean"]["difference"] for e in evaluations],
                        [e["paired"]["mean"]["variance"] for e in evaluations], reals, synthetics)
    r = real["mean"]
    relative = {"mean": synthetic["mean"] / r, "ci_low": 1 - difference["ci_high"] / r,
                "ci_high": 1 - difference["ci_low"] / r,
                "values": [e["synthetic"]["mean_auc"] / e["real"]["mean_auc"] for e in evaluations]}
    return {"real": real, "synthetic": synthetic, "difference": difference, "relative_auc": relative}


def paired_rungs(a: Sequence[dict], b: Sequence[dict], level: float) -> dict:
    """Rung a's judges against rung b's on the same real test images: DeLong's paired test of the mean
    AUC per seed (a - b), pooled over seeds (eval/pooling: its interval and t test)."""
    tests = [auc.paired_report(ea["labels"], ea["scores"]["synthetic"], eb["scores"]["synthetic"],
                               ea["class_names"], level=level)["mean"] for ea, eb in zip(a, b, strict=True)]
    within = auc.seed_mean_variances(a[0]["labels"], [e["scores"]["synthetic"] for e in a],
                                     [e["scores"]["synthetic"] for e in b])[1]
    pooled = pooling.pool([t["difference"] for t in tests], [t["variance"] for t in tests], level, within)
    return {**pooled, **pooling.test(pooled)}


def ladder(rungs: Sequence[Rung], evaluations: Mapping[str, Sequence[dict]], level: float,
           gan_tests: Mapping[str, dict]) -> dict:
    """Every rung pooled, adjacent rungs compared, and the checks that prove (or fail) the instrument.

    evaluations: rung name -> one `evaluate_pair` per judge seed, seeds in
    the same order for every rung. gan_tests: rung name -> `point.gan_test_of`
    (kept as the row's "gan_test", without the per-class report).
    """
    rows = {rung.name: {"rung": rung.name, "label": rung.label, "kind": rung.kind, "value": rung.value,
                        **pooled_rung(evaluations[rung.name], level),
                        "gan_test": {k: v for k, v in gan_tests[rung.name].items() if k != "test"}}
            for rung in rungs}
    comparisons = []
    for series in _series(rungs):
        for a, b in zip(series, series[1:]):
            comparisons.append({"a": a.name, "b": b.name,
                                **paired_rungs(evaluations[a.name], evaluations[b.name], level)})
    return {"level": level, "rungs": list(rows.values()), "comparisons": comparisons,
            "checks": checks(rungs, rows, comparisons)}


def _series(rungs: Sequence[Rung]) -> list[list[Rung]]:
    """The ordered runs of the ladder: perfect then each kind by its value (label shares, factors)."""
    perfect = [r for r in rungs if r.kind == "perfect"]
    series = []
    for kind in ("labels", "downsample"):
        of_kind = sorted((r for r in rungs if r.kind == kind), key=lambda r: r.value)
        if of_kind:
            series.append(perfect + of_kind)
    return series


def checks(rungs: Sequence[Rung], rows: Mapping[str, dict], comparisons: Sequence[dict]) -> list[dict]:
    """The instrument's acceptance, each {"check", "passed", "detail"}; a check whose rungs are absent is left out."""
    paired = {(c["a"], c["b"]): c for c in comparisons}
    found = []

    def interval(entry) -> str:
        return f"{fmt.number(entry['mean'])} {fmt.interval(entry['ci_low'], entry['ci_high'])}"

    if "perfect" in rows:
        relative = rows["perfect"]["relative_auc"]
        found.append({"check": "the perfect generator's relative AUC interval contains 1",
                      "passed": relative["ci_low"] <= 1.0 <= relative["ci_high"], "detail": interval(relative)})
    shuffled = [r for r in rungs if r.kind == "labels" and r.value == 1.0]
    if shuffled:
        synthetic = rows[shuffled[0].name]["synthetic"]
        found.append({"check": "with every label permuted the synthetic AUC interval contains 0.5",
                      "passed": synthetic["ci_low"] <= 0.5 <= synthetic["ci_high"], "detail": interval(synthetic)})
    for series in _series(rungs):
        if len(series) < 2:
            continue
        means = [rows[r.name]["relative_auc"]["mean"] for r in series]
        kind = "share of permuted labels" if series[-1].kind == "labels" else "downsampling factor"
        found.append({"check": f"relative AUC falls monotonically with the {kind}",
                      "passed": all(x >= y for x, y in zip(means, means[1:])),
                      "detail": " > ".join(fmt.number(m) for m in means)})
        if series[-1].kind == "labels":
            for a, b in zip(series, series[1:]):
                if not math.isclose(b.value - a.value, SEPARATION_STEP):
                    continue
                high, low = rows[a.name]["relative_auc"], rows[b.name]["relative_auc"]
                found.append({"check": f"{a.label} and {b.label}: disjoint relative-AUC intervals",
                              "passed": low["ci_high"] < high["ci_low"],
                              "detail": f"{interval(high)} vs {interval(low)}"})
                test = paired[(a.name, b.name)]
                found.append({"check": f"{a.label} and {b.label}: their judges differ in the paired test",
                              "passed": test["mean"] > 0 and test["p_value"] < SIGNIFICANCE,
                              "detail": f"mean AUC difference {interval(test)}, {fmt.p_clause(test['p_value'])}"})
    return found


def save_ladder_figure(path: str, result: dict) -> None:
    """Relative AUC per rung with its pooled interval and each seed's value; 1 (real) and chance marked."""
    rows = result["rungs"]
    figure, ax = plt.subplots(figsize=(1.2 * len(rows) + 2.5, 3.6))
    x = np.arange(len(rows))
    means = np.array([row["relative_auc"]["mean"] for row in rows])
    errors = np.array([[m - row["relative_auc"]["ci_low"], row["relative_auc"]["ci_high"] - m]
                       for m, row in zip(means, rows)]).T
    ax.errorbar(x, means, yerr=errors, fmt="o", color="C0", capsize=4, label="pooled over judge seeds")
    for i, row in enumerate(rows):
        values = row["relative_auc"]["values"]
        ax.plot([i + 0.12] * len(values), values, ".", color="C1", alpha=0.7,
                label="one judge seed" if i == 0 else None)
    real = rows[0]["real"]["mean"]
    ax.axhline(1.0, color="0.4", lw=0.8, ls="--", label="real-trained judge")
    ax.axhline(0.5 / real, color="C3", lw=0.8, ls=":", label=f"chance (0.5 / {real:.3f})")
    ax.set_xticks(x)
    ax.set_xticklabels([row["label"].replace(" of labels", "\nof labels") for row in rows], fontsize=7)
    ax.set_ylabel("relative AUC (synthetic / real)")
    ax.legend(fontsize=7, loc="lower left")
    visualize.save_figure(figure, path, "The benchmark fed synthetic cohorts of known quality")


def markdown_table(result: dict) -> list[str]:
    """The ladder's table (report.md, and RESULTS.md for the committed run: tests/test_results.py checks it)."""
    level = f"{result['level']:.0%}"
    return fmt.markdown_table(
        ["synthetic cohort", "synthetic AUC", level + " CI", "seed spread", "relative AUC", level + " CI",
         "GAN-test", level + " CI"],
        [[row["label"], fmt.number(row["synthetic"]["mean"]),
          fmt.interval(row["synthetic"]["ci_low"], row["synthetic"]["ci_high"]), fmt.number(row["synthetic"]["spread"]),
          fmt.number(row["relative_auc"]["mean"]),
          fmt.interval(row["relative_auc"]["ci_low"], row["relative_auc"]["ci_high"]),
          fmt.number(row["gan_test"]["mean_auc"]), fmt.interval(*(row["gan_test"]["mean_auc_ci"] or (None, None)))]
         for row in result["rungs"]],
        align="lrrrrrrr")


def markdown(result: dict, figures: Mapping[str, str]) -> list[str]:
    """The ladder as report.md lines: the verdict, the table, adjacent rungs, the pictures."""
    level = f"{result['level']:.0%}"
    passed = sum(c["passed"] for c in result["checks"])
    lines = ["# Is the benchmark an instrument that can see?", "",
             f"**{passed} of {len(result['checks'])} checks passed.** Judges per rung: "
             f"{result['rungs'][0]['real']['seeds']} seeds, pooled over seeds ({level} intervals hold the "
             "seeds' spread and DeLong's variance).", ""]
    lines += [f"- {'passed' if c['passed'] else '**failed**'}: {c['check']} ({c['detail']})"
              for c in result["checks"]]
    real = result["rungs"][0]["real"]
    lines += ["", f"Real-trained judge: mean AUC {fmt.number(real['mean'])} "
                  f"{fmt.interval(real['ci_low'], real['ci_high'])}, seed spread {fmt.number(real['spread'])}.", ""]
    lines += markdown_table(result)
    labels = {row["rung"]: row["label"] for row in result["rungs"]}
    lines += ["", "Adjacent rungs, their judges paired on the same real test images (mean AUC a - b):", ""]
    lines += fmt.markdown_table(
        ["a", "b", "difference", level + " CI", "p"],
        [[labels[c["a"]], labels[c["b"]], fmt.number(c["mean"]), fmt.interval(c["ci_low"], c["ci_high"]),
          fmt.p_value(c["p_value"])] for c in result["comparisons"]], align="llrrr")
    lines += ["", f"![relative AUC per rung]({figures['ladder']})", "",
              f"![what each rung's judge trained on]({figures['rungs']})", ""]
    return lines
