"""Job "audit": a synthetic cohort audited against the real fold it was trained on.

    python -m medgan.main --config=configs/audit.py --config.audit.synthetic=DIR \
        --config.audit.real_classifier=DIR --workdir=work/audit

Needs the real fold (data, fold: the manifest the synthetic cohort was drawn
for) and the judge trained on it. Writes, in the work directory:

  features_*.npz      the judge's features of each image set, cached
  figures/            memorisation_distances.png, nearest_flagged.png,
                      nearest_closest.png, embedding.png
  audit.md            the numbers and the pictures, for people
  results.json        written last: its presence means "done"

and adds the audit to the synthetic cohort's DATA_CARD.md and data_card.json.
"""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from medgan import console, fileio, visualize
from medgan.data import builders, cohorts, phantoms
from medgan.data.sources import PHANTOM_SOURCES
from medgan.eval import privacy
from medgan.eval.features import load_feature_extractor, load_logits
from medgan.jobs import common
from medgan.study import audit as audit_lib, data_card
from medgan.workdir import AUDIT_REPORT_FILE, DATA_CARD_MD, DATASET_DIR, FIGURES_DIR, RESULT_FILE


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    previous, mesh = common.begin(
        config, workdir, lambda r: f"audit already done ({r['memorisation']['flagged']} synthetic images flagged)")
    if previous is not None:
        return previous
    cfg = config.audit
    prepared = cohorts.prepare_cohort(config.data, workdir)
    fold = cohorts.fold_of(config.fold, workdir, prepared)
    synthetic = cohorts.training_data(cfg.synthetic, prepared, fold)
    features_fn, _ = load_feature_extractor(cfg.real_classifier, mesh)
    os.makedirs(workdir, exist_ok=True)
    sets = audit_lib.feature_sets(
        workdir, features_fn, mesh, judge_dir=cfg.real_classifier, shifts=audit_lib.shifts_of(cfg.shifts),
        global_batch_size=cfg.global_batch_size,
        images={"train": (prepared.dataset_dir, fold.ids["train"]), "test": (prepared.dataset_dir, fold.ids["test"]),
                "synthetic": (synthetic.dataset_dir, list(synthetic.train_ids) + list(synthetic.val_ids))})

    # With N real test images no rate below 1/N can be calibrated: the audit then flags what lies nearer than all.
    rate = max(cfg.false_flag_rate, 1 / len(fold.ids["test"]))
    if rate > cfg.false_flag_rate:
        logging.warning("audit: %d real test images calibrate a false-flag rate of %.4f at best, not %.4f",
                        len(fold.ids["test"]), rate, cfg.false_flag_rate)
    logging.info("audit: features of %s", {name: len(f.image_ids) for name, f in sets.items()})
    audit = privacy.memorisation_audit(
        sets["train_search"].features, list(sets["test_search"].views), list(sets["synthetic_search"].views),
        k=cfg.neighbours, false_flag_rate=rate, cells=cfg.copying_cells, seed=config.seed, mesh=mesh)
    logging.info("audit: memorisation search done, %d flagged", len(audit.flagged))
    planted = audit_lib.planted_control(
        audit, sets["train_search"], prepared.dataset_dir, features_fn, mesh, copies=cfg.planted_copies,
        noise=cfg.planted_noise, shifts=audit_lib.shifts_of(cfg.shifts), seed=config.seed,
        global_batch_size=cfg.global_batch_size,
        noise_levels=audit_lib.noise_levels_of(cfg.planted_noise_levels)) if cfg.planted_copies else None
    # On every process: the k-NN balls are searched over all devices, a collective every process joins.
    fidelity = audit_lib.fidelity_report(sets["train"], sets["test"], sets["synthetic"], fold, cfg)
    occlusion = _occlusion(config, workdir, prepared, fold, mesh) if cfg.synthetic_classifier else None
    result_path = os.path.join(workdir, RESULT_FILE)
    if jax.process_index() == 0:
        result = _report(config, workdir, fold, sets, audit, fidelity, prepared.dataset_dir, occlusion, planted)
        data_card.add_audit(cfg.synthetic, data_card.audit_entry(result, workdir))
        fileio.write_json(result_path, result)  # last: its presence marks the audit finished
        if not console.in_stage():
            memo, fidelity = result["memorisation"], result["fidelity"]["overall"]["synthetic"]
            console.summary({
                "flagged as copies": f"{memo['flagged']} of {memo['synthetic_images']} "
                                     f"(about {memo['flagged_expected_if_honest']:.1f} if honest)",
                "precision, recall": f"{fidelity['precision']:.3f}, {fidelity['recall']:.3f}",
                "FD, KID": f"{fidelity['fd']:.2f}, {fidelity['kid']:.4f}",
                "report": os.path.join(workdir, AUDIT_REPORT_FILE),
                "data card": os.path.join(cfg.synthetic, DATA_CARD_MD),
            }, title="audit of the synthetic cohort:")
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("audit: results written")
    return fileio.read_json(result_path)


OCCLUSION_FIGURE = "occlusion.png"


def _occlusion(config, workdir, prepared, fold, mesh) -> dict:
    """Occlusion maps of both classifiers on real test images spread over the label combinations (every process)."""
    cfg = config.audit
    index = {r.image_id: r for r in builders.read_index(prepared.dataset_dir)}
    per_combination = -(-cfg.occlusion_images // len(fold.combinations))
    ids = [i for c in fold.combinations
           for i in sorted(i for i in fold.ids["test"] if tuple(index[i].labels) == tuple(c))[:per_combination]]
    by_id = visualize.images_by_id(prepared.dataset_dir, ids)
    images = visualize.from_uint8(np.stack([by_id[i] for i in ids]))
    labels = np.array([index[i].labels for i in ids], np.float32)
    class_names = list(prepared.class_names)
    resolution = images.shape[1]
    regions = None
    if config.data.source in PHANTOM_SOURCES:  # where each finding's rule draws, for the share inside it
        source = cohorts.make_source(config.data)
        records = {r.image_id: r for r in source.index()[0]}
        regions = np.zeros((len(ids), len(class_names), resolution, resolution), bool)
        for n, image_id in enumerate(ids):
            seed, acquisition = phantoms.render_seeds(source.seed, records[image_id])
            for k, name in enumerate(class_names):
                if labels[n, k] > 0.5 and k > 0:  # class 0 is the exclusive "no finding": nothing is drawn
                    regions[n, k] = phantoms.finding_region(source.modality, name, resolution, seed, acquisition)
    logits = {"real": load_logits(cfg.real_classifier, mesh), "synthetic": load_logits(cfg.synthetic_classifier, mesh)}
    os.makedirs(os.path.join(workdir, FIGURES_DIR), exist_ok=True)
    return audit_lib.occlusion_report(
        logits, images, labels, class_names, regions, patch=cfg.occlusion_patch or max(2, resolution // 8),
        path=os.path.join(workdir, FIGURES_DIR, OCCLUSION_FIGURE), draw=jax.process_index() == 0)


def _report(config, workdir, fold, sets, audit: privacy.MemorisationAudit, fidelity: dict, train_dir: str,
            occlusion: dict | None, planted: dict | None) -> dict:
    """Figures and the t-SNE map (host work only: no collective); audit.md; the result (process 0 only)."""
    cfg = config.audit
    logging.info("audit: figures and the t-SNE map")
    figures_dir = os.path.join(workdir, FIGURES_DIR)
    os.makedirs(figures_dir, exist_ok=True)
    pictures = audit_lib.memorisation_figures(
        audit, sets["train_search"], sets["synthetic_search"], train_dir,
        os.path.join(cfg.synthetic, DATASET_DIR), figures_dir, cfg.strips)
    embedding_path = os.path.join(figures_dir, "embedding.png")
    result = {
        "synthetic": os.path.abspath(cfg.synthetic),
        "real_classifier": os.path.abspath(cfg.real_classifier),
        "settings": cfg.to_dict(),
        "views": list(sets["synthetic_search"].names),
        "train_images": len(fold.ids["train"]),
        "memorisation": {
            **audit.summary(),
            "flagged_ids": [str(sets["synthetic_search"].image_ids[i]) for i in audit.flagged],
            "planted_control": planted,
        },
        "pixel_checks": pictures["pixel_checks"],
        "fidelity": fidelity,
        "embedding": audit_lib.embedding_figure(sets["train"], sets["synthetic"], fold, embedding_path,
                                                cfg.embedding_points, config.seed),
        "figures": {name: os.path.relpath(path, workdir)
                    for name, path in {**pictures["figures"], "embedding": embedding_path}.items()},
        "report": AUDIT_REPORT_FILE,
    }
    if occlusion is not None:
        result["occlusion"] = occlusion
        result["figures"]["occlusion"] = os.path.join(FIGURES_DIR, OCCLUSION_FIGURE)
    with fileio.atomic_path(os.path.join(workdir, AUDIT_REPORT_FILE)) as tmp, open(tmp, "w") as f:
        f.write("\n".join(audit_lib.markdown(result)) + "\n")
    return result
