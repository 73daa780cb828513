"""Sweeps: every config file expands to valid points; the local launcher and the TPU pod script.

No test here trains anything. The launcher's loop runs with a stand-in
interpreter that writes results.json (or fails) in milliseconds, and one real
`python -m medgan.main` point (a 10-patient phantom prepare) proves the
command line it builds is the one medgan.main accepts.
"""

import glob
import os
import shlex
import subprocess
import sys
import textwrap

import pytest

from medgan import configuration
from medgan.data import folds
from medgan.data.records import ImageRecord
from medgan.study import grid as studies, presets, study_gans, sweeps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))
SWEEP = os.path.join(REPO, "launch", "sweep.py")
TPU_POD = os.path.join(REPO, "launch", "tpu_pod.sh")
REAL_ROOT = "--config.data.root=/data/cohort"

EXPECTED_POINTS = {  # the study's two GANs per study file
    "chexpert_classes": 12, "chexpert_samples": 16, "chexpert_resolution": 10,
    "rsna_classes": 10, "rsna_samples": 16, "rsna_resolution": 10,
    "demo_sweep": 4, "demo": 1, "gan": 3, "classifier": 6, "prepare": 25, "synthesize": 1,
    "cpu_classes": 4, "cpu_samples": 5, "cpu_resolution": 3, "calibrate_phantoms": 5,
}
STUDY_FILES = {
    "chexpert_classes": (studies.CHEST, "classes"), "chexpert_samples": (studies.CHEST, "samples"),
    "chexpert_resolution": (studies.CHEST, "resolution"), "rsna_classes": (studies.BRAIN, "classes"),
    "rsna_samples": (studies.BRAIN, "samples"), "rsna_resolution": (studies.BRAIN, "resolution"),
}


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def test_every_study_and_existing_config_file_is_covered():
    assert set(EXPECTED_POINTS) <= {stem(p) for p in CONFIG_FILES}


@pytest.mark.parametrize("path", CONFIG_FILES, ids=stem)
def test_every_point_of_every_config_file_validates(path):
    points = sweeps.expand(path)
    assert len({p.name for p in points}) == len(points) > 0
    if stem(path) in EXPECTED_POINTS:
        assert len(points) == EXPECTED_POINTS[stem(path)]
    for point in points:
        config = sweeps.load_point_config(point)
        if config.data.source in sweeps.REAL_SOURCES:
            with pytest.raises(configuration.ConfigError, match="data.root"):
                sweeps.check_config(config)
            sweeps.check_config(config, require_data_root=False)  # what a dry run accepts
            config = sweeps.load_point_config(point, [REAL_ROOT])
        sweeps.check_config(config)
        if "fold" in config and config.fold.per_combination:
            fold = config.fold
            assert sweeps.fold_sizes(config) == {
                "train": fold.num_combinations * fold.per_combination,
                "val": fold.num_combinations * fold.val_per_combination,
                "test": fold.num_combinations * fold.test_per_combination,
            }


@pytest.mark.parametrize("name", sorted(STUDY_FILES))
def test_study_files_sweep_the_study_values_for_every_model(name):
    study, axis = STUDY_FILES[name]
    configs = [sweeps.load_point_config(p, [REAL_ROOT]) for p in sweeps.expand(f"{REPO}/configs/{name}.py")]
    assert {c.benchmark.study for c in configs} == {name}
    assert {c.data.source for c in configs} == {study.source}
    assert {c.gan.model for c in configs} == set(study_gans.STUDY_MODELS)  # StyleGAN2 is the extension
    judges = {(c.classifier.model, c.classifier.input_size, c.classifier.normalization, c.classifier.global_batch_size,
               c.classifier.eval_every, c.classifier.plateau_patience, c.classifier.early_stop_patience,
               c.classifier.num_steps) for c in configs}
    assert judges == {("densenet121", 224, "imagenet", 48, 104, 2, 3, 10400)}  # classifier_real/config.ini
    for c in configs:  # the study's GAN schedules (medgan/study/presets.py)
        expected = presets.preset(c.gan.model, c.data.resolution)
        assert c.gan.total_kimg == expected.total_kimg and c.gan.fid_patience == 2

    for model in study_gans.STUDY_MODELS:
        mine = [c for c in configs if c.gan.model == model]
        points = [(c.fold.num_combinations, c.fold.per_combination, c.data.resolution) for c in mine]
        holdouts = {(c.fold.val_per_combination, c.fold.test_per_combination, c.fold.val_images,
                     c.fold.test_images, c.fold.min_images) for c in mine}
        if axis == "classes":
            assert points == [(k, n, 32) for k, n in study.classes]
            assert holdouts == {(*study.classes_holdout, 0, 0, 0)}
        elif axis == "samples":
            assert points == [(study.samples_classes, n, 32) for n in study.samples]
            assert holdouts == {(*study.samples_holdout, 0, 0, 0)}
        else:
            assert points == [(0, 0, px) for px in studies.RESOLUTIONS]
            assert holdouts == {(0, 0, *study.resolution_holdout, study.resolution_min_images)}


def test_cpu_points_train_in_steps_at_one_batch_not_the_study_schedule():
    for name in ("demo", "demo_sweep", "cpu_classes", "cpu_samples", "cpu_resolution"):
        for point in sweeps.expand(f"{REPO}/configs/{name}.py"):
            gan = sweeps.load_point_config(point).gan
            assert (gan.batch_by_resolution, gan.total_kimg, gan.kimg_per_phase) == ((), 0.0, 0.0), point


def test_cpu_points_set_r1_for_their_own_batch_and_pool_three_steady_judges():
    from medgan.study import grid

    for size in ("demo", "quick", "tiny"):
        config = sweeps.load_config_module(f"{REPO}/configs/demo.py").get_config(f"size={size},model=stylegan2")
        gan = config.gan
        assert gan.r1_gamma == pytest.approx(0.0002 * 32**2 / gan.global_batch_size), size  # ADA's rule
        assert gan.mbstd_group_size == min(32, gan.global_batch_size), size  # ADA's cifar group
        assert gan.acgan_d_fakes is False, size  # pggan's AC head on reals only at CPU size
        assert config.benchmark.judge_seeds == (1 if size == "tiny" else 3), size
    point = grid.cpu_classes_config(classes=6, per_class=120, conspicuity=0.6)
    assert point.classifier.num_steps == grid.STEADY_JUDGE_MAX_STEPS and point.classifier.early_stop_patience == 5
    study = grid.point_config(source="phantom_head_ct", resolution=32, classes=6, per_class=120, model="stylegan2",
                              holdout=(50, 100))
    assert study.benchmark.judge_seeds == 1  # the study trained one judge
    assert study.gan.acgan_d_fakes and study.gan.mbstd_group_size == 4  # the study's own choices at study scale


def _full_size_from(config) -> int:
    """The first step at which the progressive GAN of `config` runs at full size with alpha 1."""
    from medgan.models.pggan import phase_schedule

    gan, px = config.gan, config.data.resolution
    return next(t for t in range(gan.num_steps) if phase_schedule(
        t, start=gan.start_resolution, resolution=px, steps_per_phase=gan.steps_per_phase) == (px, 1.0))


def test_cpu_progressive_gans_start_at_16_px_and_are_at_full_size_for_most_of_the_run():
    demo = sweeps.load_config_module(f"{REPO}/configs/demo.py")
    quick, point = demo.get_config(""), demo.get_config("size=demo")
    assert quick.gan.start_resolution == point.gan.start_resolution == 16
    assert (_full_size_from(quick), quick.gan.num_steps) == (200, 600)
    assert (_full_size_from(point), point.gan.num_steps) == (300, 1500)
    with pytest.raises(configuration.ConfigError, match="start_resolution=16"):
        studies.progressive_phase_steps(48, 300)


def test_cpu_resolution_points_reach_full_size_at_the_same_step_and_scale_the_occlusion_patch():
    for point in sweeps.expand(f"{REPO}/configs/cpu_resolution.py"):
        config = sweeps.load_point_config(point)
        assert _full_size_from(config) == studies.CPU_FULL_SIZE_STEP["demo"], point
        assert config.audit.occlusion_patch * 32 == 6 * config.data.resolution
        assert (config.fold.num_combinations, config.fold.per_combination) == (0, 0)  # the unbalanced fold


def test_models_sweep_argument_adds_the_extension_and_rejects_unknown_models():
    points = sweeps.expand(f"{REPO}/configs/rsna_classes.py:models=pggan+cpd+stylegan2")
    assert len(points) == 15 and points[-1].name == "model-stylegan2_classes-2_per_class-12500"
    assert "models" not in points[0].arg  # a sweep argument, not a point's
    with pytest.raises(configuration.ConfigError, match=r"models='pggan\+gan9'"):
        sweeps.expand(f"{REPO}/configs/rsna_classes.py:models=pggan+gan9")


def test_demo_sizes_default_to_a_fold_their_cohort_holds():
    demo = sweeps.load_config_module(os.path.join(REPO, "configs", "demo.py"))
    for arg, expected in (("", (6, 120)), ("size=tiny", (2, 20)), ("size=tiny,classes=3,per_class=7", (3, 7))):
        config = demo.get_config(arg)
        assert (config.fold.num_combinations, config.fold.per_combination) == expected, arg


def test_point_names_flags_and_workdirs():
    points = sweeps.expand(f"{REPO}/configs/chexpert_classes.py")
    assert points[3].name == "model-pggan_classes-6_per_class-2300"
    assert points[3].config_flag == f"--config={REPO}/configs/chexpert_classes.py:model=pggan,classes=6,per_class=2300"
    assert points[3].workdir("/runs") == "/runs/model-pggan_classes-6_per_class-2300"
    empty = sweeps.Point("configs/demo.py", "", "point")
    assert empty.config_flag == "--config=configs/demo.py"
    assert [p.name for p in sweeps.expand(f"{REPO}/configs/demo.py")] == ["point"]
    assert sweeps.point_command(points[3], "/runs", python="py", overrides=["--config.seed=1"]) == [
        "py", "-m", "medgan.main", points[3].config_flag, "--workdir=/runs/" + points[3].name, "--config.seed=1"]
    with pytest.raises(configuration.ConfigError, match="--config.key=value"):
        sweeps.point_command(points[3], "/runs", overrides=["seed=1"])


def test_fixed_arguments_merge_into_every_point_and_win():
    spec = f"{REPO}/configs/chexpert_classes.py:source=phantom_chest,devices=1"
    points = sweeps.expand(spec)
    assert len(points) == 12
    assert points[0].arg == "model=pggan,classes=20,per_class=1450,source=phantom_chest,devices=1"
    assert points[0].name == "model-pggan_classes-20_per_class-1450"  # fixed keys are the sweep root's business
    config = sweeps.load_point_config(points[0])
    sweeps.check_config(config)  # a phantom needs no data.root
    assert config.data.source == "phantom_chest"
    assert config.data.resolution == 32
    # A fixed key that the sweep also sets: the fixed value wins and the models collapse.
    pggan = sweeps.expand(f"{REPO}/configs/chexpert_classes.py:model=pggan")
    assert [p.name for p in pggan] == [p.name for p in points[:6]]
    with pytest.raises(configuration.ConfigError, match="not key=value"):
        sweeps.expand(f"{REPO}/configs/chexpert_classes.py:devices")


def test_only_filters_all_must_match():
    spec = f"{REPO}/configs/chexpert_classes.py"
    assert len(sweeps.expand(spec, ["model=cpd"])) == 6
    assert [p.name for p in sweeps.expand(spec, ["model=cpd", "classes-6_"])] == ["model-cpd_classes-6_per_class-2300"]
    assert [p.name for p in sweeps.expand(f"{spec}:models=pggan+stylegan2", ["per_class=6300", "style"])] == [
        "model-stylegan2_classes-2_per_class-6300"]
    assert sweeps.expand(spec, ["model=cpd", "model=pggan"]) == []
    assert len(sweeps.expand(f"{spec}:devices=16", ["devices=16"])) == 12  # fixed args are matched too


def write_config(tmp_path, name, body):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_bad_config_files_are_named(tmp_path):
    with pytest.raises(configuration.ConfigError, match="missing.py: no such file"):
        sweeps.expand(str(tmp_path / "missing.py"))
    no_sweep = write_config(tmp_path, "no_sweep", "def get_config(arg=None):\n    return None\n")
    with pytest.raises(configuration.ConfigError, match="no_sweep.py: defines no get_sweep"):
        sweeps.expand(no_sweep)
    clash = write_config(tmp_path, "clash", """
        def get_config(arg=None):
            return None
        def get_sweep():
            return ["out=a/b", "out=a-b"]
    """)
    with pytest.raises(configuration.ConfigError, match="same directory name 'out-a-b'"):
        sweeps.expand(clash)
    twice = write_config(tmp_path, "twice", "def get_config(arg=None):\n    return None\n"
                                            "def get_sweep():\n    return ['a=1', 'a=1']\n")
    with pytest.raises(configuration.ConfigError, match="twice.py: get_sweep\\(\\) lists 'a=1' twice"):
        sweeps.expand(twice)


@pytest.mark.parametrize("per_combination,val,test", [(10, 3, 4), (40, 1, 1), (0, 30, 25)])
def test_fold_sizes_equal_make_fold(per_combination, val, test):
    combinations = [(1, 0, 0), (0, 1, 0), (1, 1, 0), (0, 0, 1)]
    counts = [300, 250, 200, 20]  # the last combination is not among the top 3
    records = [
        ImageRecord(image_id=f"c{c}-{i:03d}", patient_id=f"c{c}-p{i // 2:03d}", labels=combination, path="")
        for c, (combination, count) in enumerate(zip(combinations, counts)) for i in range(count)
    ]
    config = configuration.base_config("benchmark")
    fold_config = config.fold
    fold_config.num_combinations, fold_config.per_combination = 3, per_combination
    if per_combination:
        fold_config.val_per_combination, fold_config.test_per_combination = val, test
    else:
        fold_config.val_images, fold_config.test_images = val, test
    fold = folds.make_fold(
        records, class_names=("a", "b", "c"), dataset="fabricated", seed=3,
        **{key: fold_config[key] for key in ("num_combinations", "per_combination", "val_per_combination",
                                             "test_per_combination", "val_images", "test_images")})
    expected = {split: len(fold.ids[split]) for split in folds.SPLITS}
    if not per_combination:
        expected["train"] = "all"
    assert sweeps.fold_sizes(config) == expected


def run_sweep(*args, cwd):
    return subprocess.run([sys.executable, SWEEP, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_dry_run_lists_the_chest_classes_points_without_touching_data(tmp_path):
    before = sorted(os.listdir(REPO))
    result = run_sweep(f"--config={REPO}/configs/chexpert_classes.py", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("model-")]
    assert len(rows) == 12
    for point, row in zip(sweeps.expand(f"{REPO}/configs/chexpert_classes.py"), rows):
        config = sweeps.load_point_config(point)
        sizes = sweeps.fold_sizes(config)
        assert row[0] == point.name
        assert row[7] == f"{sizes['train']}/{sizes['val']}/{sizes['test']}"
        assert row[9:11] == [str(config.gan.global_batch_size), str(config.gan.num_steps)]
        assert row[-1] == "pending"
    # The study's sizes (create_class_from_xray): 2300 training, 190 val, 170 test images per combination, 32 px.
    assert rows[3][:9] == ["model-pggan_classes-6_per_class-2300", "benchmark", "chexpert", "32", "pggan", "6",
                           "2300", "13800/1140/1020", "2300/190/170"]
    assert "12 points (12 pending)" in result.stdout
    assert os.listdir(tmp_path) == [] and sorted(os.listdir(REPO)) == before

    # With a workdir: finished points show as done, and the workdir is not created otherwise.
    done = tmp_path / "runs" / "model-cpd_classes-2_per_class-6300"
    done.mkdir(parents=True)
    (done / "results.json").write_text("{}")
    result = run_sweep(f"--config={REPO}/configs/chexpert_classes.py", "--dry-run", f"--workdir={tmp_path}/runs",
                       "--only=model=cpd", "--", "--config.fold.per_combination=100", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("model-")]
    assert [row[-1] for row in rows] == ["pending"] * 5 + ["done"]
    assert {row[6] for row in rows} == {"100"}  # overrides reach the described config
    assert os.listdir(tmp_path / "runs") == ["model-cpd_classes-2_per_class-6300"]


def test_a_run_refuses_invalid_points_before_running_any(tmp_path):
    result = run_sweep(f"--config={REPO}/configs/rsna_classes.py", f"--workdir={tmp_path}/w", cwd=tmp_path)
    assert result.returncode == 2
    assert "data.root is empty" in result.stderr
    assert not (tmp_path / "w").exists()
    result = run_sweep(f"--config={REPO}/configs/rsna_classes.py", f"--workdir={tmp_path}/w", "--only=model=gan",
                       cwd=tmp_path)
    assert result.returncode == 2 and "no point matches" in result.stderr


PREPARE_CONFIG = """
    from medgan import configuration

    def get_config(arg=None):
        args = configuration.parse_arg(arg, patients=10)
        config = configuration.base_config("prepare")
        config.data.source, config.data.resolution = "phantom_head_ct", 32
        config.data.phantom_patients = args.patients
        return config

    def get_sweep():
        return ["patients=10", "patients=11", "patients=12"]
"""

# Stands in for the interpreter: records its argv, writes results.json unless the point is patients-12.
FAKE_PYTHON = """\
#!{python}
import json, os, sys
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log"), "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
workdir = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--workdir=")][0]
if workdir.endswith("patients-12"):
    sys.exit(3)
os.makedirs(workdir, exist_ok=True)
with open(os.path.join(workdir, "results.json"), "w") as f:
    f.write("{{}}")
"""


def test_sweep_skips_finished_runs_pending_and_goes_on_after_a_failure(tmp_path):
    config = write_config(tmp_path, "tiny_prepare", PREPARE_CONFIG)
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable))
    fake.chmod(0o755)
    root = tmp_path / "runs"
    (root / "patients-10").mkdir(parents=True)
    (root / "patients-10" / "results.json").write_text("{}")

    args = [f"--config={config}", f"--workdir={root}", f"--python={fake}"]
    result = run_sweep(*args, "--", "--config.seed=4", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "[1/3] patients-10: skipped, finished before" in out
    assert "[2/3] patients-11: done" in out
    assert "[3/3] patients-12: FAILED with exit status 3" in out
    assert "sweep summary: 1 done, 1 skipped (already finished), 1 failed (patients-12)" in out
    calls = [line for line in (tmp_path / "calls.log").read_text().splitlines()]
    assert calls == [
        f'["-m", "medgan.main", "--config={config}:patients=11", "--workdir={root}/patients-11", "--config.seed=4"]',
        f'["-m", "medgan.main", "--config={config}:patients=12", "--workdir={root}/patients-12", "--config.seed=4"]',
    ]
    result = run_sweep(*args, "--only=patients-1", cwd=tmp_path)  # again: only the failed point runs
    assert result.returncode == 1
    assert "sweep summary: 0 done, 2 skipped (already finished), 1 failed (patients-12)" in result.stdout


def test_a_point_that_exits_0_without_results_is_reported_and_runs_again(tmp_path):
    config = write_config(tmp_path, "tiny_prepare", PREPARE_CONFIG)
    fake = tmp_path / "fake_python"
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(0)\n")  # a preempted job: status 0, no results.json
    fake.chmod(0o755)
    args = [f"--config={config}", f"--workdir={tmp_path / 'runs'}", f"--python={fake}", "--only=patients=10"]
    for _ in range(2):
        result = run_sweep(*args, cwd=tmp_path)
        assert "[1/1] patients-10: FAILED: exited 0 but wrote no results.json" in result.stdout
        assert result.returncode == 1


@pytest.mark.slow
def test_sweep_runs_a_real_point_in_a_fresh_medgan_process(tmp_path):
    config = write_config(tmp_path, "tiny_prepare", PREPARE_CONFIG)
    root = tmp_path / "runs"
    result = run_sweep(f"--config={config}", f"--workdir={root}", "--only=patients=10", cwd=tmp_path)
    # Every job writes results.json last, prepare too: the sweep ran the point and found it done.
    assert (root / "patients-10" / "results.json").exists(), result.stderr[-3000:]
    assert "[1/1] patients-10: done" in result.stdout
    assert result.returncode == 0


def tpu_pod(*args, **env):
    return subprocess.run(["bash", TPU_POD, *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **env})


def test_tpu_pod_prints_one_gcloud_command_for_all_workers():
    config = "configs/chexpert_classes.py:model=pggan,classes=6,per_class=2300,devices=32"
    result = tpu_pod("my-v4-64", "us-central2-b", config, "/mnt/shared/runs/it's p1", "--config.data.root=/mnt/x",
                     DRY_RUN="1")
    assert result.returncode == 0, result.stderr
    argv = shlex.split(result.stdout)
    assert argv[:10] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-v4-64", "--zone", "us-central2-b",
                         "--worker=all", "--command"]
    cd, _, remote = argv[10].partition(" && ")
    assert cd == "cd ~/medgan"
    assert shlex.split(remote) == [".venv/bin/python", "-m", "medgan.main", f"--config={config}",
                                   "--workdir=/mnt/shared/runs/it's p1", "--config.data.root=/mnt/x"]
    result = tpu_pod("t", "z", "c.py", "w", DRY_RUN="1", MEDGAN_REMOTE_DIR="/opt/med gan")
    assert shlex.split(result.stdout)[10].startswith("cd /opt/med\\ gan && ")


def test_tpu_pod_usage_on_missing_or_bad_arguments():
    for args in ([], ["tpu", "zone", "configs/demo.py"], ["t", "z", "c.py", "w", "--workdir=x"]):
        result = tpu_pod(*args, DRY_RUN="1")
        assert result.returncode == 2
        assert "usage: " in result.stderr and result.stdout == ""
