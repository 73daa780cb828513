"""The mammography study end to end at a toy size: every stage, the table with DeLong, the diagnostics, the report."""

import numpy as np
import pytest

from medgan import configuration, fileio, main
from medgan.study import mammo

pytestmark = pytest.mark.slow


def test_augmentation_table_pairs_each_share_with_the_baseline():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    scores = {0.0: labels + rng.normal(0, 1.0, 100), 0.5: labels + rng.normal(0, 0.5, 100)}
    rows = mammo.augmentation_table([{"p0": 0.5}, {"p0": 0.0}], scores, labels)
    assert [row["p0"] for row in rows] == [0.0, 0.5]
    assert rows[0]["p_value"] is None and rows[1]["auc"] > rows[0]["auc"]
    assert rows[1]["delta"] == pytest.approx(rows[1]["auc"] - rows[0]["auc"]) and 0 <= rows[1]["p_value"] <= 1
    lines = mammo.markdown_table(rows)
    assert lines[-1].startswith("| 50% w/ decay |") and lines[-1].endswith("| 0.846 | 0.0001 |")  # the paper's
    with pytest.raises(ValueError, match="baseline"):
        mammo.augmentation_table([{"p0": 0.5}], {0.5: scores[0.5]}, labels)


def test_the_study_runs_every_stage_and_reports_the_table(tmp_path):
    config = configuration.base_config("mammo_study")
    config.mammo.update(phantom_patients=10, height=256, patch=32, per_lesion=2, per_lesion_eval=4,
                        normals_per_image=4, phantom_layout="jpeg")  # Kaggle's re-release, through the whole study
    # The GAN block of tests/test_contextual.py's job test: its compiled steps come from the persistent cache.
    config.contextual.update(base_filters=4, max_filters=16, centre_filters=16, attention_resolution=8, border=3,
                             d_filter_factor=2, global_batch_size=8, num_steps=3, grow_steps=1, fade_steps=1,
                             checkpoint_every=3, sample_every=3, log_every=1)
    config.lesion_synthesis.update(per_model=8, global_batch_size=8)
    config.augment.update(model="resnet_tiny", learning_rate=1e-3, global_batch_size=8, total_samples=64,
                          decay_every=16, validate_every=32, log_every=2)
    config.mammo_study.update(p0s="0.5,1", lesions="mass,removal", longer="removal=2")
    result = main.run_job(config, str(tmp_path))
    assert [row["p0"] for row in result["table"]] == [0.0, 0.5, 1.0]  # the baseline is always run
    assert all(0 <= row["auc"] <= 1 for row in result["table"])
    assert [e["lesion"] for e in result["lesion_effects"]] == ["mass", "removal"]
    assert set(result["gans"]) == {"mass", "removal"} and result["synthetic"]["mass"]["asked"] == 8
    assert (result["gans"]["mass"]["steps"], result["gans"]["removal"]["steps"]) == (3, 6)  # removal=2
    assert result["false_negatives"]["p0"] in (0.5, 1.0)
    report = (tmp_path / "report.md").read_text()
    assert "| baseline (0%) |" in report and "| 100% w/ decay |" in report and "0.797" in report
    assert "Cohort: Kaggle JPEG re-release" in report and "do not compare with runs on the DICOMs" in report
    for path in result["figures"].values():
        assert (tmp_path / path).read_bytes()[:4] == b"\x89PNG"
    saved = fileio.read_json(tmp_path / "augment_p050" / "results.json")
    assert saved["delong_vs_baseline"]["auc_b"] == pytest.approx(result["table"][0]["auc"])
    assert main.run_job(config, str(tmp_path)) == result  # finished: skipped
