"""The data card lists each audit run: its outcome in the JSON, a sentence with the flagged ids in the Markdown."""

import pytest

from medgan import fileio
from medgan.study import data_card


def _audit_result(flagged_ids, statistic=-0.4):
    memorisation = {"flagged": len(flagged_ids), "flagged_ids": flagged_ids, "flagged_expected_if_honest": 2.4,
                    "data_copying_statistic": statistic, "data_copying_p_value": None if statistic is None else 0.34}
    fidelity = {"fd": 12.5, "kid": 0.0123, "precision": 0.71, "recall": 0.52, "density": 0.9, "coverage": 0.8}
    return {"memorisation": memorisation, "fidelity": {"overall": {"synthetic": fidelity}}, "report": "audit.md",
            "real_classifier": "/w/real_classifier",
            "settings": {"false_flag_rate": 0.01, "shifts": "1,2", "neighbours": 5, "copying_cells": 10}}


def test_an_audit_is_added_to_both_files_and_a_rerun_replaces_its_entry(tmp_path):
    card = {"dataset": "d", "created_utc": "t", "seed": 0, "resolution": 32, "channels": 1, "class_names": ["a"],
            "generator": {"model": {"name": "pggan", "resolution": 32, "latent_dim": 8, "fmap_base": 8,
                                    "fmap_max": 8},
                          "trained_on": {"dataset": "r", "train_images": 10}, "steps": 4, "selected_step": 4,
                          "fd": 1.0, "checkpoint_sha256": "0" * 64},
            "counts": {"total": 2, "per_combination": []}, "software": {"jax": "0"}, "audits": []}
    fileio.write_json(tmp_path / "data_card.json", card)
    entry = data_card.audit_entry(_audit_result(["synthetic-c00-000003", "synthetic-c01-000017"]), "/w/audit")
    data_card.add_audit(str(tmp_path), entry)
    data_card.add_audit(str(tmp_path), entry)  # the same audit directory again: replaced, not listed twice
    stored = fileio.read_json(tmp_path / "data_card.json")
    assert len(stored["audits"]) == 1 and stored["audits"][0]["outcome"]["flagged"] == 2
    assert stored["audits"][0]["report"] == "/w/audit/audit.md"
    text = (tmp_path / "DATA_CARD.md").read_text()
    assert "**2** synthetic images flagged as possible copies" in text
    assert "`synthetic-c00-000003`, `synthetic-c01-000017`" in text and "C_T = -0.40 (p = 0.3400)" in text
    quiet = data_card.audit_entry(_audit_result([], statistic=None), "/w/audit2")
    data_card.add_audit(str(tmp_path), quiet)
    assert "no data-copying test (too few images)" in (tmp_path / "DATA_CARD.md").read_text()
    card["real_cohort"] = {"source": "phantom_head_ct",
                           "params": {"conspicuity": 0.6, "label_miss": 0.2, "label_false_positive": 0.05}}
    text = data_card.markdown(card)
    assert "- source: `phantom_head_ct`" in text and "- conspicuity: 0.6" in text
    assert "each finding missed with probability 0.2 and reported where absent with probability 0.05" in text
    with pytest.raises(FileNotFoundError, match="not a finished synthesize run"):
        data_card.add_audit(str(tmp_path / "missing"), entry)


def test_the_card_states_the_gan_test_of_the_evaluation_that_selected_the_generator():
    from medgan.data import folds

    fold = folds.Fold(dataset="d", class_names=("a",), combinations=((0,), (1,)), ids={"train": (), "val": (),
                      "test": ()}, counts={"train": [1, 1], "val": [0, 0], "test": [0, 0]}, available=(1, 1),
                      num_combinations=2, per_combination=1, val_per_combination=0, test_per_combination=0,
                      fractions=(0.5, 0.2, 0.3), seed=0)
    gan_result = {"model": {"name": "pggan", "resolution": 32, "latent_dim": 8, "fmap_base": 8, "fmap_max": 8},
                  "config": {}, "generator_sha256": "0" * 64, "steps": 4, "selected_step": 4, "best_fd": 3.0,
                  "dataset": "r", "train_images": 2,
                  "eval_history": [{"step": 2, "fd": 5.0, "gan_test": 0.51}, {"step": 4, "fd": 3.0, "gan_test": 0.73}]}
    card = data_card.card("s", fold, {"train": [1, 1], "val": [0, 0]}, gan_result, seed=0, resolution=32, channels=1,
                          total=2)
    assert card["generator"]["gan_test"] == 0.73
    assert "- GAN-test at that step: 0.730, the real-trained judge's mean AUC" in data_card.markdown(card)
    del gan_result["eval_history"]  # a GAN scored by nothing (no judge): no line
    card = data_card.card("s", fold, {"train": [1, 1], "val": [0, 0]}, gan_result, seed=0, resolution=32, channels=1,
                          total=2)
    assert card["generator"]["gan_test"] is None and "GAN-test" not in data_card.markdown(card)
