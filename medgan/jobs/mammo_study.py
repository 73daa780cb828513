"""Job "mammo_study": the mammography study end to end, its Table 1 and its figures.

    patches -> contextual GANs (mass, calcification, removal) -> synthetic patches
            -> cancer classifier per initial synthetic share p0 -> table, diagnostics, report

Every stage is its own job in its own directory and is skipped when its
result exists, so a stopped study continues where it stopped:

    <workdir>/patches/              mammo_patches (patches/ holds the npz files)
    <workdir>/gan_<lesion>/         train_contextual
    <workdir>/synthetic/            synthesize_lesions
    <workdir>/augment_p<percent>/   augment (p0 = 0 is the baseline of DeLong's tests)
    <workdir>/figures/              tsne.png, lesion_effect_<lesion>.png, false_negatives.png
    <workdir>/report.md             the table beside the paper's, the pictures
    <workdir>/results.json          written last
"""

from __future__ import annotations

import copy
import json
import os

import jax
import ml_collections
import numpy as np

from medgan import configuration, console, fileio, sharding, visualize
from medgan.data import mammo_cohort, mammo_patches
from medgan.eval import embedding
from medgan.eval.features import load_feature_extractor, load_logits
from medgan.jobs import augment, common, mammo_patches as patches_job, synthesize_lesions, train_contextual
from medgan.study import mammo, mammo_report
from medgan.workdir import FIGURES_DIR, PREEMPTED, REPORT_FILE, RESULT_FILE

TSNE_POINTS = 300  # per group


def _stage_config(config: ml_collections.ConfigDict, job: str, patches_dir: str, **blocks) -> ml_collections.ConfigDict:
    """The config of one stage job: this study's mammo block (and others) in the job's own schema."""
    stage = configuration.base_config(job)
    stage.seed = config.seed
    stage.mammo = copy.deepcopy(config.mammo)
    if patches_dir:
        stage.mammo.patches_dir = patches_dir
    for name, block in blocks.items():
        setattr(stage, name, copy.deepcopy(block))
    if "distributed" in stage:
        stage.distributed = config.distributed
    return stage


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    previous, mesh = common.begin(config, workdir, lambda r: "mammography study already done")
    if previous is not None:
        return previous
    lesions = [lesion.strip() for lesion in config.mammo_study.lesions.split(",")]
    longer = {name.strip(): int(factor) for name, factor in
              (part.split("=") for part in config.mammo_study.longer.split(",") if part.strip())}
    p0s = sorted({float(p) for p in config.mammo_study.p0s.split(",")} | {0.0})
    outcomes: dict = {}

    with console.stage("1/5 cut the patches") as stage:
        outcomes["patches"] = patches_job.run(_stage_config(config, "mammo_patches", ""), f"{workdir}/patches")
        stage.note = f"{outcomes['patches']['total']} patches; {mammo_cohort.describe_drops(outcomes['patches'])}"
    patches_dir = outcomes["patches"]["patches_dir"]
    gan_dirs = []
    for n, lesion in enumerate(lesions):
        block = stretched(config.contextual, longer.get(lesion, 1))
        block.lesion = lesion
        gan_dir = os.path.join(workdir, f"gan_{lesion}")
        with console.stage(f"2/5 contextual GAN: {lesion} ({n + 1}/{len(lesions)})") as stage:
            outcome = train_contextual.run(_stage_config(config, "train_contextual", patches_dir, contextual=block),
                                           gan_dir)
            if outcome.get("status") == PREEMPTED:
                return outcome
            stage.note = f"{outcome['steps']} steps, {outcome['kept_after_post_processing']:.0%} kept"
        gan_dirs.append(gan_dir)
        outcomes[f"gan_{lesion}"] = outcome
    synthesis = copy.deepcopy(config.lesion_synthesis)
    synthesis.gans = ",".join(gan_dirs)
    with console.stage("3/5 synthetic patches") as stage:
        outcomes["synthetic"] = synthesize_lesions.run(
            _stage_config(config, "synthesize_lesions", patches_dir, lesion_synthesis=synthesis),
            os.path.join(workdir, "synthetic"))
        stage.note = ", ".join(f"{lesion} {c['kept']}" for lesion, c in outcomes["synthetic"]["counts"].items())
    runs = {}
    for n, p0 in enumerate(p0s):
        block = copy.deepcopy(config.augment)
        block.p0 = p0
        block.synthetic = os.path.join(workdir, "synthetic") if p0 > 0 else ""
        block.baseline = augment_dir(workdir, 0.0) if p0 > 0 else ""
        with console.stage(f"4/5 cancer classifier, p0 = {p0:.0%} ({n + 1}/{len(p0s)})") as stage:
            runs[p0] = augment.run(_stage_config(config, "augment", patches_dir, augment=block),
                                   augment_dir(workdir, p0))
            if runs[p0].get("status") == PREEMPTED:
                return runs[p0]
            stage.note = f"test AUC {runs[p0]['test_auc']:.3f}"
    with console.stage("5/5 table, diagnostics and report") as stage:
        result = _evaluate(config, workdir, mesh, patches_dir, gan_dirs, runs, outcomes)
        stage.note = f"baseline AUC {result['table'][0]['auc']:.3f}"
    if jax.process_index() == 0:
        with fileio.atomic_path(os.path.join(workdir, REPORT_FILE)) as tmp, open(tmp, "w") as f:
            f.write("\n".join(mammo_report.markdown(result)) + "\n")
        fileio.write_json(os.path.join(workdir, RESULT_FILE), result)
        console.summary(mammo_report.summary_lines(result, workdir), title="mammography study:")
    return result


SCHEDULE_KEYS = ("num_steps", "grow_steps", "fade_steps", "checkpoint_every", "sample_every")


def stretched(contextual: ml_collections.ConfigDict, factor: int) -> ml_collections.ConfigDict:
    """A copy of a contextual block whose schedule (`SCHEDULE_KEYS`) is `factor` times as long."""
    block = copy.deepcopy(contextual)
    for key in SCHEDULE_KEYS:
        block[key] = block[key] * factor
    return block


def augment_dir(workdir: str, p0: float) -> str:
    return os.path.join(workdir, f"augment_p{round(100 * p0):03d}")


def _evaluate(config, workdir: str, mesh, patches_dir: str, gan_dirs: list[str], runs: dict, outcomes: dict) -> dict:
    """The table, what each GAN does to the baseline's score, the t-SNE map and the false negatives caught."""
    patches = mammo_cohort.load_patches(patches_dir)
    test, val = patches["test"], patches["val"]
    labels = mammo.cancer_labels(test)
    scores = {}
    for p0 in runs:
        with np.load(os.path.join(augment_dir(workdir, p0), "test_scores.npz")) as npz:
            scores[p0] = npz["scores"]
    table = mammo.augmentation_table(list(runs.values()), scores, labels)
    figures_dir = os.path.join(workdir, FIGURES_DIR)
    os.makedirs(figures_dir, exist_ok=True)
    baseline = augment_dir(workdir, 0.0)
    logits_fn = load_logits(baseline, mesh)
    batch = config.augment.global_batch_size
    effects, figures = [], {}
    for gan_dir in gan_dirs:
        effect = mammo.lesion_effect(gan_dir, logits_fn, test, mesh, seed=config.seed, count=4 * batch,
                                     global_batch_size=batch)
        path = os.path.join(figures_dir, f"lesion_effect_{effect['lesion']}.png")
        if jax.process_index() == 0 and effect["kept"]:
            n = min(8, effect["kept"])
            images = np.concatenate([effect["before_images"][:n], effect["after_images"][:n]])[..., None]
            captions = [f"before: {s:.2f}" for s in effect["before_scores"][:n]] + [
                f"after: {s:.2f}" for s in effect["after_scores"][:n]]
            visualize.save_labelled_grid(path, images, captions, columns=n,
                                         title=f"{effect['lesion']} GAN on real test patches: the baseline's "
                                               "cancer score before and after")
            figures[f"lesion_effect_{effect['lesion']}"] = os.path.relpath(path, workdir)
        effects.append({k: v for k, v in effect.items() if not k.endswith(("_images", "_scores"))})
    features_fn, _ = load_feature_extractor(baseline, mesh)
    synthetic = synthesize_lesions.load(os.path.join(workdir, "synthetic"))
    tsne = _tsne(features_fn, val, synthetic, mesh, batch, os.path.join(figures_dir, "tsne.png"), config.seed)
    figures["tsne"] = os.path.relpath(os.path.join(figures_dir, "tsne.png"), workdir)
    best = max((row for row in table if row["p0"] > 0), key=lambda row: row["auc"], default=None)
    caught = None
    if best is not None:
        caught = _false_negatives_caught(test, labels, scores[0.0], scores[best["p0"]], best["p0"],
                                         os.path.join(figures_dir, "false_negatives.png"))
        if caught["caught"]:
            figures["false_negatives"] = os.path.relpath(os.path.join(figures_dir, "false_negatives.png"), workdir)
    return {
        "table": table, "lesion_effects": effects, "tsne": tsne, "false_negatives": caught,
        "paper": [{"p0": p0, "auc": value, "p_value": p} for p0, value, p in mammo.PAPER_TABLE],
        "cohort": {"release": outcomes["patches"].get("release"), "layout": outcomes["patches"].get("layout"),
                   "rows": mammo_cohort.describe_drops(outcomes["patches"])},
        "patches": {split: s["counts"] for split, s in outcomes["patches"]["splits"].items()},
        "synthetic": outcomes["synthetic"]["counts"],
        "gans": {lesion: {key: outcome[key] for key in ("steps", "kept_after_post_processing", "samples")}
                 for lesion, outcome in ((k.removeprefix("gan_"), v) for k, v in outcomes.items()
                                         if k.startswith("gan_"))},
        "runs": {f"{p0:g}": {key: run[key] for key in ("test_auc", "test_ci", "best_samples", "best_val_auc",
                                                         "samples", "wall_seconds")} for p0, run in runs.items()},
        "figures": figures,
        "report": REPORT_FILE,
        "configs": {"mammo_study": json.loads(json.dumps(config.to_dict()))},  # as results.json holds it
    }


def _tsne(features_fn, val: mammo_patches.PatchSet, synthetic: mammo_patches.PatchSet, mesh, batch: int,
          path: str, seed: int) -> dict:
    """The paper's Fig. 4: the baseline's last features of normal, real lesion and synthetic lesion patches."""
    rng = np.random.default_rng(seed)
    groups = {"normal (real)": val.images[val.where("normal")],
              "malignant lesion (real)": val.images[np.concatenate([val.where("mass", "malignant"),
                                                                    val.where("calcification", "malignant")])],
              "mass (synthetic)": synthetic.images[synthetic.where("mass")],
              "calcification (synthetic)": synthetic.images[synthetic.where("calcification")]}
    images, names = [], []
    for name, group in groups.items():
        if len(group):
            chosen = rng.choice(len(group), min(TSNE_POINTS, len(group)), replace=False)
            images.append(group[chosen])
            names += [name] * len(chosen)
    features = sharding.host_map(features_fn, mammo_cohort.to_model(np.concatenate(images)), mesh, batch)
    points = embedding.embed_2d(features, seed=seed)
    names = np.array(names)
    is_synthetic = np.char.endswith(names, "(synthetic)")
    if jax.process_index() == 0:
        visualize.save_embedding(path, points, is_synthetic, names,
                                 title="t-SNE of the baseline classifier's last features (validation and synthetic)")
    lesion = ~np.char.startswith(names, "normal")
    return {"points": {name: int(np.sum(names == name)) for name in groups},
            "synthetic_lesion_near_real_lesion": _share_nearest(points, is_synthetic & lesion, ~is_synthetic & lesion,
                                                                ~is_synthetic & ~lesion)}


def _share_nearest(points: np.ndarray, queries: np.ndarray, lesion: np.ndarray, normal: np.ndarray) -> float | None:
    """Of the query points, the share whose nearest real point on the map is a real lesion rather than normal."""
    if not queries.any() or not lesion.any() or not normal.any():
        return None
    real = lesion | normal
    distance = np.sum((points[queries][:, None] - points[real][None]) ** 2, axis=-1)
    return float(np.mean(lesion[real][np.argmin(distance, axis=1)]))


def _false_negatives_caught(test: mammo_patches.PatchSet, labels: np.ndarray, baseline: np.ndarray,
                            augmented: np.ndarray, p0: float, path: str) -> dict:
    """The paper's Fig. 5: real test lesions the baseline missed (score < 0.5) and the augmented model caught."""
    missed = (labels == 1) & (baseline < 0.5)
    caught = missed & (augmented >= 0.5)
    rows = np.nonzero(caught)[0][:16]
    if jax.process_index() == 0 and len(rows):
        visualize.save_labelled_grid(path, test.images[rows][..., None],
                                     [f"{baseline[i]:.2f} -> {augmented[i]:.2f}" for i in rows],
                                     title=f"Real test lesions missed by the baseline, caught with p0 = {p0:.0%} "
                                           "(cancer score before -> after)")
    return {"p0": p0, "missed_by_baseline": int(missed.sum()), "caught": int(caught.sum()),
            "lost": int(((labels == 1) & (baseline >= 0.5) & (augmented < 0.5)).sum())}
