"""The benchmark job: one point end to end at the tiny size, its results.json, report, skipping and resuming."""

import os
import pathlib
import shutil
import signal

import numpy as np
import pytest

from medgan import fileio, main, report_format as fmt
from medgan.eval import auc, reader_study
from medgan.study import point, readers, simulated_reader, sweeps
from medgan.train import loop
from medgan.workdir import REPORT_FILE, RESULT_FILE

pytestmark = pytest.mark.slow  # whole jobs end to end; make test-fast leaves them out

REPO = pathlib.Path(__file__).resolve().parents[1]
POINT = "size=tiny,classes=2,per_class=20"


def tiny_config(prepared_dir):
    config = sweeps.load_config_module(str(REPO / "configs" / "demo.py")).get_config(POINT)
    config.data.prepared_dir = str(prepared_dir)
    return config


def answer(result):
    """Everything of results.json that must not depend on how the run was interrupted (no times, no paths)."""
    kept = {key: result[key] for key in ("point", "real", "synthetic", "relative_auc", "delong", "gan",
                                         "synthetic_images", "fold", "label_fidelity")}
    kept["gan"] = {k: v for k, v in kept["gan"].items() if k != "train_images_per_second"}
    return kept


@pytest.fixture(scope="module")
def finished(tmp_path_factory, phantom_prepared_dir):
    workdir = tmp_path_factory.mktemp("benchmark")
    return workdir, main.run_job(tiny_config(phantom_prepared_dir), str(workdir))


def test_results_json_answers_the_point_and_records_how(finished):
    workdir, result = finished
    assert fileio.read_json(workdir / RESULT_FILE) == result
    assert result["point"] == {"study": "demo", "source": "phantom_head_ct", "dataset": result["point"]["dataset"],
                               "resolution": 32, "model": "pggan", "num_combinations": 2, "per_combination": 20}
    # The pairing: both classifiers' saved test scores, recomputed here.
    npz = {name: np.load(workdir / name / "test_scores.npz") for name in ("real_classifier", "synthetic_classifier")}
    np.testing.assert_array_equal(npz["real_classifier"]["image_ids"], npz["synthetic_classifier"]["image_ids"])
    labels, names = npz["real_classifier"]["labels"], list(result["fold"]["class_names"])
    paired = auc.paired_report(labels, npz["real_classifier"]["scores"], npz["synthetic_classifier"]["scores"], names)
    assert result["delong"]["mean"] == paired["mean"] and result["delong"]["classes"] == paired["classes"]
    for side, key in (("real", "real_classifier"), ("synthetic", "synthetic_classifier")):
        report = auc.per_class_auc(labels, npz[key]["scores"], names)
        assert result[side]["mean_auc"] == report["mean_auc"]
        assert result[side]["per_class_auc"] == {n: c["auc"] for n, c in report["classes"].items()}
        assert result[side]["mean_auc_ci"] == [report["mean_auc_ci_low"], report["mean_auc_ci_high"]]
    relative = result["relative_auc"]
    assert relative["mean"] == pytest.approx(result["synthetic"]["mean_auc"] / result["real"]["mean_auc"])
    for name, value in relative["per_class"].items():
        real, synthetic = result["real"]["per_class_auc"][name], result["synthetic"]["per_class_auc"][name]
        assert value == (None if real is None else pytest.approx(synthetic / real))
    mean = result["delong"]["mean"]
    assert relative["ci_low"] == pytest.approx(1 - mean["ci_high"] / result["real"]["mean_auc"])
    assert relative["ci_high"] == pytest.approx(1 - mean["ci_low"] / result["real"]["mean_auc"])
    # The fold, the stages, the configs and the software.
    manifest = fileio.read_json(workdir / "manifest.json")
    assert result["fold"]["content"] == manifest
    assert result["fold"]["sizes"] == {split: len(ids) for split, ids in manifest["ids"].items()} == {
        "train": 40, "val": 8, "test": 16}  # 2 combinations x (20 training, 4 val, 8 test images)
    assert result["synthetic_images"] == 48  # the fold's train + val counts
    assert result["gan"]["steps"] == 4 and len(result["gan"]["generator_sha256"]) == 64
    assert set(result["wall_seconds"]) == {*point.STAGES, "total"}
    assert result["wall_seconds"]["total"] == pytest.approx(sum(result["wall_seconds"][s] for s in point.STAGES))
    assert result["wall_seconds"]["gan"] > 0
    assert result["configs"]["benchmark"]["gan"]["num_steps"] == 4
    assert result["software"]["devices"] == 8 and result["software"]["processes"] == 1
    assert result["software"]["jax"] and result["software"]["medgan"]
    # Do the labels reach the pixels: GAN-test, the synthetic judge's validation, the GAN's history.
    fidelity = result["label_fidelity"]
    synthetic_run = fileio.read_json(workdir / "synthetic_classifier" / RESULT_FILE)
    assert fidelity["synthetic_val_auc"] == synthetic_run["best_val_mean_auc"]
    gan_test = fidelity["gan_test"]
    assert gan_test["images"] == 48 and set(gan_test["per_class_auc"]) == set(names)
    defined = [value for value in gan_test["per_class_auc"].values() if value is not None]
    assert defined and gan_test["mean_auc"] == pytest.approx(np.mean(defined))
    audit_fidelity = fileio.read_json(workdir / "audit" / RESULT_FILE)["fidelity"]
    assert fidelity["fd"]["overall"] == audit_fidelity["overall"]["synthetic"]["fd"]
    assert [(e["names"], e["fd"]) for e in fidelity["fd"]["per_combination"]] == [
        (e["names"], e["fd"]) for e in audit_fidelity["per_combination"]]
    assert len(fidelity["fd"]["per_combination"]) == 2 and all(
        e["train_images"] == 20 and e["synthetic_images"] == 24 for e in fidelity["fd"]["per_combination"])
    assert [entry["step"] for entry in fidelity["eval_history"]] == [2, 4]  # gan.fid_every = 2 of 4 steps
    assert fidelity["eval_history"] == fileio.read_json(workdir / "gan" / "eval_history.json")
    assert all(entry["fd"] >= 0 and set(entry) == {"step", "fd", "gan_test", "growing", "resolution"}
               for entry in fidelity["eval_history"])
    report = (workdir / REPORT_FILE).read_text()
    assert "## Do the labels reach the pixels?" in report
    assert f"**GAN-test: {fmt.number(gan_test['mean_auc'])}**" in report
    assert f"overall {fmt.number(fidelity['fd']['overall'], 2)}, per label combination" in report


def test_report_shows_the_table_and_pictures_that_exist(finished):
    workdir, result = finished
    report = (workdir / REPORT_FILE).read_text()
    assert f"| real | {result['real']['mean_auc']:.3f} |" in report
    assert f"| synthetic | {result['synthetic']['mean_auc']:.3f} |" in report
    assert f"Relative AUC (synthetic / real): {result['relative_auc']['mean']:.3f}" in report
    assert fmt.p_clause(result["delong"]["mean"]["p_value"]) in report
    assert (fmt.p_clause(3e-7), fmt.p_clause(0.03381), fmt.p_value(None)) == (
        "p < 0.0001", "p = 0.0338", "n/a")
    for name in result["fold"]["class_names"]:
        assert f"| {name} |" in report
    linked = [part.split(")")[0] for part in report.split("](")[1:]]
    assert set(result["figures"].values()) <= set(linked)
    for path in linked:
        assert (workdir / path).is_file(), path
    for path in result["figures"].values():
        assert (workdir / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (workdir / path).stat().st_size > 10_000


def test_the_audit_stage_reports_and_the_data_card_lists_it(finished, tmp_path):
    workdir, result = finished
    audit = fileio.read_json(workdir / "audit" / RESULT_FILE)
    memo = audit["memorisation"]
    assert result["audit"]["memorisation"] == memo and result["audit"]["report"] == "audit/audit.md"
    # 16 real test images calibrate a false-flag rate of 1/16 at best, and make one data-copying cell. A GAN
    # of 4 steps copies nothing: its images lie farther from the training images than real test images do.
    assert (memo["synthetic_images"], memo["test_images"], memo["false_flag_rate"]) == (48, 16, 1 / 16)
    assert memo["data_copying_cells_used"] == 1 and memo["data_copying_statistic"] > 2
    assert len(audit["views"]) == 18 and len(memo["flagged_ids"]) == memo["flagged"]
    # The positive control: 20 training images planted as mirrored, moved, noisy copies are all flagged and traced.
    planted = memo["planted_control"]
    assert (planted["copies"], planted["shift"]) == (20, 2)
    assert planted["flagged"] == planted["traced_to_source"] == 20
    assert planted["median_nearest"] < memo["threshold"]
    audit_md = (workdir / "audit" / "audit.md").read_text()
    assert "planted-copy control: **20 of 20**" in audit_md
    # The sensitivity curve: the same copies at each noise std; at the headline's std the headline's counts.
    by_noise = {level["noise"]: level for level in planted["by_noise"]}
    assert sorted(by_noise) == [0.0, 0.01, 0.02, 0.04]
    assert by_noise[0.0]["flagged"] == by_noise[0.0]["traced_to_source"] == 20
    assert by_noise[planted["noise"]]["flagged"] == planted["flagged"]
    assert by_noise[planted["noise"]]["median_nearest"] == planted["median_nearest"]
    assert by_noise[0.0]["median_nearest"] <= by_noise[0.04]["median_nearest"]
    assert "the same copies at other noise stds" in audit_md and "0: 20 of 20" in audit_md
    assert set(audit["fidelity"]["overall"]) == {"synthetic", "real_test"}
    occlusion = audit["occlusion"]  # both judges' maps on 4 real test images, a phantom finding's region known
    assert occlusion["images"] == 4 and occlusion["classes"] and "occlusion" in audit["figures"]
    for row in occlusion["classes"]:
        assert row["correlation"] is None or -1 <= row["correlation"] <= 1
        for key in ("share_inside_real", "share_inside_synthetic"):
            assert row.get(key) is None or 0 <= row[key] <= 1
    for path in audit["figures"].values():
        assert (workdir / "audit" / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = fileio.read_json(workdir / "synthetic" / "data_card.json")
    assert [entry["outcome"]["flagged"] for entry in card["audits"]] == [memo["flagged"]]
    card_md = (workdir / "synthetic" / "DATA_CARD.md").read_text()
    assert "synthetic images flagged as possible copies" in card_md and "planted copies flagged: 20 of 20" in card_md
    assert "## Audit of the synthetic cohort" in (workdir / REPORT_FILE).read_text()

    # The audit job alone on a copy of the finished point gives the stage's answer.
    point_copy = tmp_path / "point"
    shutil.copytree(workdir, point_copy)
    config = sweeps.load_config_module(str(REPO / "configs" / "audit.py")).get_config(f"point={point_copy}")
    alone = main.run_job(config, str(tmp_path / "audit_alone"))
    assert alone["memorisation"] == memo and alone["occlusion"] == occlusion
    assert len(fileio.read_json(point_copy / "synthetic" / "data_card.json")["audits"]) == 2


def test_a_reader_study_of_the_point_draws_matched_pairs_and_scores_returned_sheets(finished, tmp_path, capsys):
    workdir, result = finished
    config = _reader_config(workdir)
    written = main.run_job(config, str(tmp_path / "readers"))
    page = pathlib.Path(written["page"]).read_text()
    key = reader_study.read_key(written["key"])
    assert written["images"] == len(key) == 12 and page.count("data:image/png;base64,") == 12
    assert not any(entry["image_id"] in page for entry in key.values())  # the page holds anonymous names only
    by_source = {s: [e for e in key.values() if e["source"] == s] for s in ("real", "synthetic")}
    assert sorted(e["labels"] for e in by_source["real"]) == sorted(e["labels"] for e in by_source["synthetic"])
    manifest = fileio.read_json(workdir / "manifest.json")
    assert {e["image_id"] for e in by_source["real"]} <= set(manifest["ids"]["test"])  # real: the test split
    assert {e["resolution"] for e in key.values()} == {result["point"]["resolution"]}
    assert main.run_job(config, str(tmp_path / "readers")) == written  # finished: skipped

    # The simulated reader answered every image of the page; its sheet scores like a person's.
    simulated = written["simulated_reader"]
    sheet = reader_study.read_answers(simulated["sheet"], key)
    assert sorted(row["image"] for row in sheet) == sorted(key) and not any(row["skipped"] for row in sheet)
    (row,) = simulated["scores"]
    assert (row["reader"], row["answered"]) == (simulated_reader.READER_NAME, 12)
    assert row["correct"] == sum(r["answer"] == key[r["image"]]["source"] for r in sheet)
    (res,) = simulated["per_resolution"].values()
    assert res["train_real"] + res["held_out_images"] > res["train_real"] > 0 and 0 <= res["held_out_auc"] <= 1
    assert (tmp_path / "readers" / "simulated" / "scores.md").exists()

    names = sorted(key)
    perfect = tmp_path / "a.csv"
    perfect.write_text("reader,image,answer,confidence,seconds\n" + "".join(
        f"A,{n},{key[n]['source']},4,2.0\n" for n in names))
    contrary = tmp_path / "b.csv"
    contrary.write_text("reader,image,answer,confidence,seconds\n" + "".join(
        f"B,{n},{'real' if key[n]['source'] == 'synthetic' else 'synthetic'},2,2.0\n" for n in names))
    assert readers.main([written["key"], str(perfect), str(contrary), "--out", str(tmp_path / "scores")]) == 0
    scores = fileio.read_json(tmp_path / "scores" / "scores.json")
    rows = {r["reader"]: r for r in scores["readers"]}
    assert (rows["A"]["accuracy"], rows["B"]["accuracy"]) == (1.0, 0.0)
    assert rows["A"]["p_value"] == pytest.approx(2 / 2**12)
    assert scores["agreement"]["pairs"][0]["agreement"] == 0.0
    markdown = (tmp_path / "scores" / "scores.md").read_text()
    assert "| A | all | 12 | 0 | 12 | 1.000 |" in markdown and "Fleiss' κ over the 12 images" in markdown
    assert "scores.md" in capsys.readouterr().out

    with pytest.raises(ValueError, match="both at .* px; a reader study takes one point per resolution"):
        main.run_job(_reader_config(f"{workdir}+{workdir}"), str(tmp_path / "twice"))
    with pytest.raises(FileNotFoundError, match="no results.json; a reader study needs a finished benchmark point"):
        main.run_job(_reader_config(str(tmp_path)), str(tmp_path / "unfinished"))
    assert not list(tmp_path.glob("twice/**/*.html")) and not list(tmp_path.glob("unfinished/**/*.csv"))


def _reader_config(points):
    module = sweeps.load_config_module(str(REPO / "configs" / "reader_study.py"))
    return module.get_config(f"points={points},pairs=6,simulated_steps=20")


def _mtimes(directory):
    return {p: p.stat().st_mtime_ns for p in pathlib.Path(directory).rglob("*") if p.is_file()}


def test_a_finished_point_is_skipped(finished, phantom_prepared_dir):
    workdir, result = finished
    before = _mtimes(workdir)
    assert main.run_job(tiny_config(phantom_prepared_dir), str(workdir)) == result
    assert _mtimes(workdir) == before


def test_a_lost_stage_is_recomputed_and_finished_stages_are_not(finished, tmp_path, phantom_prepared_dir):
    source, result = finished
    workdir = tmp_path / "copy"
    shutil.copytree(source, workdir)
    for name in (RESULT_FILE, REPORT_FILE):
        os.remove(workdir / name)
    shutil.rmtree(workdir / "synthetic_classifier")
    kept = {stage: _mtimes(workdir / stage) for stage in ("real_classifier", "gan", "synthetic")}
    again = main.run_job(tiny_config(phantom_prepared_dir), str(workdir))
    assert answer(again) == answer(result)
    for stage, mtimes in kept.items():
        assert _mtimes(workdir / stage) == mtimes, f"{stage} was redone"


def test_more_judge_seeds_train_only_the_judges_and_pool_them(finished, tmp_path, phantom_prepared_dir):
    source, single = finished
    workdir = tmp_path / "seeds"
    shutil.copytree(source, workdir)
    for name in (RESULT_FILE, REPORT_FILE):
        os.remove(workdir / name)
    kept = {stage: _mtimes(workdir / stage) for stage in ("real_classifier", "gan", "synthetic")}
    config = tiny_config(phantom_prepared_dir)
    config.benchmark.judge_seeds = 2
    result = main.run_job(config, str(workdir))
    for stage, mtimes in kept.items():
        assert _mtimes(workdir / stage) == mtimes, f"{stage} was redone"
    assert result["judge_seeds"] == [0, 1] and result["wall_seconds"]["judges"] > 0
    assert result["stages"]["judges"] == "judges/" and "| judges | judges/ |" in (workdir / REPORT_FILE).read_text()
    seeds = [single["real"]["mean_auc"], fileio.read_json(
        workdir / "judges" / "real_classifier_seed_1" / RESULT_FILE)["test"]["mean_auc"]]
    assert result["real"]["judge_seeds"]["mean_auc"] == seeds
    assert result["real"]["mean_auc"] == pytest.approx(np.mean(seeds))
    assert result["delong"]["pooled_over_judge_seeds"] == 2 and len(result["relative_auc"]["judge_seeds"]) == 2
    assert result["relative_auc"]["mean"] == pytest.approx(result["synthetic"]["mean_auc"] / result["real"]["mean_auc"])


def test_a_gan_preempted_mid_training_resumes_to_the_uninterrupted_results(finished, tmp_path, monkeypatch,
                                                                          phantom_prepared_dir):
    source, uninterrupted = finished
    workdir = tmp_path / "preempted"
    # The stages before the GAN are done (copied); the GAN and everything after it runs here.
    shutil.copytree(source, workdir)
    for name in (RESULT_FILE, REPORT_FILE):
        os.remove(workdir / name)
    for stage in ("gan", "synthetic", "synthetic_classifier", "audit", "figures"):
        shutil.rmtree(workdir / stage)
    train_loop = loop.train_loop

    def sigterm_gan_at_step_3(**kwargs):
        def hook(step, state):
            if step == 3:
                os.kill(os.getpid(), signal.SIGTERM)

        if os.path.basename(kwargs["workdir"]) == "gan":
            kwargs["hooks"] = [*kwargs.get("hooks", ()), hook]
        return train_loop(**kwargs)

    monkeypatch.setattr(loop, "train_loop", sigterm_gan_at_step_3)
    first = main.run_job(tiny_config(phantom_prepared_dir), str(workdir))
    assert first == {"status": "preempted", "stage": "gan"}
    assert not (workdir / RESULT_FILE).exists()
    assert not (workdir / "gan" / "results.json").exists()

    monkeypatch.setattr(loop, "train_loop", train_loop)
    resumed = main.run_job(tiny_config(phantom_prepared_dir), str(workdir))
    assert answer(resumed) == answer(uninterrupted)
    assert resumed["wall_seconds"]["gan"] > 0


def test_a_running_stage_writes_its_time_so_a_killed_run_keeps_it(tmp_path):
    import time

    from medgan.jobs import benchmark
    from medgan.workdir import STAGE_TIMES_FILE

    clock = benchmark.StageClock(str(tmp_path), interval=0.05)
    start = time.perf_counter()
    with clock.running("gan"):
        time.sleep(0.5)
        while_running = fileio.read_json(tmp_path / STAGE_TIMES_FILE)["gan"]  # what a SIGKILL now would leave
        assert 0 < while_running <= time.perf_counter() - start
    done = fileio.read_json(tmp_path / STAGE_TIMES_FILE)
    assert done["gan"] >= while_running and done["prepare"] == 0.0
    resumed = benchmark.StageClock(str(tmp_path), interval=0.05)  # the next run adds to what was kept
    with resumed.running("gan"):
        time.sleep(0.1)
    assert fileio.read_json(tmp_path / STAGE_TIMES_FILE)["gan"] >= done["gan"] + 0.1
