"""launch/slurm.py without a cluster: the rendered array script, skipping, dry run, submission.

`sbatch` and `srun` are stand-in shell scripts on PATH that record their
arguments, so these tests run anywhere in about a second. The launcher
against a real SLURM (munged, slurmctld, slurmd on this host) is `make
test-cluster` (launch/local_slurm.sh).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

from medgan import configuration
from medgan.study import sweeps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = "configs/demo_sweep.py:size=tiny"
BASH = shutil.which("bash")


def load_launcher():
    spec = importlib.util.spec_from_file_location("launch_slurm", os.path.join(REPO, "launch", "slurm.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


slurm = load_launcher()


def points(n=3):
    return [sweeps.Point("configs/demo_sweep.py", f"classes={k},size=tiny", f"classes-{k}") for k in range(2, 2 + n)]


def fake_tool(directory, name, body):
    """An executable `name` in `directory` that appends its argv to <directory>/<name>.calls, then runs body."""
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(f'#!/bin/bash\nprintf "%s\\n" "$*" >> "{path}.calls"\n{body}\n')
    os.chmod(path, 0o755)
    return path + ".calls"


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return str(directory)


def test_script_has_array_resources_srun_and_skip_check(tmp_path):
    root = str(tmp_path / "sweep")
    resources = slurm.Resources(nodes=2, tasks_per_node=4, cpus_per_task=8, gpus_per_node=4, time="12:00:00",
                                partition="gpu", account="proj", max_parallel=2)
    script = slurm.render_script(points(3), root, resources, job_name="medgan-demo_sweep",
                                 python="/venv/bin/python", overrides=["--config.seed=3", "--config.gan.name=a b"])
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    for option in ("--array=0-2%2", "--nodes=2", "--ntasks-per-node=4", "--cpus-per-task=8", "--gpus-per-node=4",
                   "--time=12:00:00", "--partition=gpu", "--account=proj", "--job-name=medgan-demo_sweep",
                   f"--output={root}/slurm/%x-%A_%a.out"):
        assert f"#SBATCH {option}" in lines
    assert not any("--gpus-per-task" in line or "--chdir" in line for line in lines)  # unset: site default
    for point in points(3):
        assert f"  {point.config_flag}" in lines  # one array entry per point, in order
    assert "NAMES=(classes-2 classes-3 classes-4)" in lines
    assert 'result="$ROOT/$name/results.json"' in lines
    assert 'if [ -e "$result" ]; then' in lines
    srun = next(line for line in lines if line.startswith("srun "))
    assert srun.startswith('srun --kill-on-bad-exit=1 --cpus-per-task=8 "$PYTHON" -m medgan.main "$config_flag" '
                           '"--workdir=$ROOT/$name"')
    assert "--config.seed=3" in script and "'--config.gan.name=a b'" in script  # quoted for the shell
    assert "export JAX_COORDINATOR_PORT=" in script
    check = subprocess.run([BASH, "-n"], input=script, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr


def test_script_rejects_bad_resources_and_overrides(tmp_path):
    with pytest.raises(configuration.ConfigError, match="--nodes=0"):
        slurm.render_script(points(1), str(tmp_path), slurm.Resources(nodes=0))
    with pytest.raises(configuration.ConfigError, match="--time"):
        slurm.render_script(points(1), str(tmp_path), slurm.Resources(time="two hours"))
    with pytest.raises(configuration.ConfigError, match="--config.key=value"):
        slurm.render_script(points(1), str(tmp_path), overrides=["--seed=3"])


def test_array_task_runs_its_point_with_srun_and_skips_a_finished_one(tmp_path, fake_bin):
    """The rendered script itself, as array task 1 then 0, with a stand-in srun that writes results.json."""
    root = str(tmp_path / "sweep")
    calls = fake_tool(fake_bin, "srun", 'for a; do case $a in --workdir=*) mkdir -p "${a#--workdir=}" && '
                                        'echo {} > "${a#--workdir=}/results.json";; esac; done')
    script = tmp_path / "sweep.sbatch"
    script.write_text(slurm.render_script(points(2), root, slurm.Resources(tasks_per_node=2, cpus_per_task=1),
                                          python=sys.executable, overrides=["--config.seed=3"]))
    os.makedirs(os.path.join(root, "classes-2"))
    open(os.path.join(root, "classes-2", "results.json"), "w").close()  # point 0 finished before

    def run(index):
        env = dict(os.environ, SLURM_ARRAY_TASK_ID=str(index))
        return subprocess.run([BASH, str(script)], env=env, text=True, capture_output=True)

    second = run(1)
    assert second.returncode == 0, second.stderr
    with open(calls) as f:
        (argv,) = f.read().splitlines()
    assert argv == (f"--kill-on-bad-exit=1 --cpus-per-task=1 {sys.executable} -m medgan.main "
                    f"--config=configs/demo_sweep.py:classes=3,size=tiny --workdir={root}/classes-3 --config.seed=3")
    first = run(0)
    assert first.returncode == 0 and "finished before" in first.stdout
    with open(calls) as f:
        assert len(f.read().splitlines()) == 1  # no srun for the finished point


def test_dry_run_prints_the_script_and_leaves_out_finished_points(tmp_path, fake_bin, capsys, monkeypatch):
    sbatch_calls = fake_tool(fake_bin, "sbatch", "echo 99")
    root = tmp_path / "sweep"
    (root / "classes-2_per_class-50").mkdir(parents=True)
    (root / "classes-2_per_class-50" / "results.json").write_text("{}")
    monkeypatch.chdir(REPO)
    status = slurm.main([f"--config={SPEC}", f"--workdir={root}", "--dry-run", "--tasks-per-node=2"])
    out = capsys.readouterr().out
    assert status == 0
    assert "classes-2_per_class-50: finished before, left out" in out
    assert "#SBATCH --array=0-2" in out  # 4 points, 1 finished
    assert "NAMES=(classes-2_per_class-100 classes-6_per_class-50 classes-6_per_class-100)" in out
    assert "  --config=configs/demo_sweep.py:classes=2,per_class=50,size=tiny" not in out
    assert not os.path.exists(sbatch_calls)  # nothing submitted
    assert not (root / "slurm").exists()  # nothing written


def test_submit_writes_points_and_script_and_prints_the_job_id(tmp_path, fake_bin, capsys, monkeypatch):
    sbatch_calls = fake_tool(fake_bin, "sbatch", 'echo "4242;cluster"')
    root = tmp_path / "sweep"
    monkeypatch.chdir(REPO)
    status = slurm.main([f"--config={SPEC}", f"--workdir={root}", "--only=classes=2", "--nodes=1",
                         "--tasks-per-node=2", "--cpus-per-task=1", "--", "--config.seed=1"])
    assert status == 0
    assert capsys.readouterr().out.splitlines()[-1] == "4242"
    with open(sbatch_calls) as f:
        assert f.read().splitlines() == [f"--parsable {root}/slurm/sweep.sbatch"]
    assert (root / "slurm" / "points.txt").read_text() == (
        "classes-2_per_class-50\t--config=configs/demo_sweep.py:classes=2,per_class=50,size=tiny\n"
        "classes-2_per_class-100\t--config=configs/demo_sweep.py:classes=2,per_class=100,size=tiny\n")
    script = (root / "slurm" / "sweep.sbatch").read_text()
    assert "#SBATCH --array=0-1" in script and f"#SBATCH --chdir={REPO}" in script and "--config.seed=1" in script


def test_wait_fails_when_a_task_failed_and_nothing_is_left_to_submit(tmp_path, fake_bin, capsys, monkeypatch):
    fake_tool(fake_bin, "sbatch", "echo 7; exit 1")  # sbatch --wait: highest exit status of the array's tasks
    root = tmp_path / "sweep"
    monkeypatch.chdir(REPO)
    args = [f"--config={SPEC}", f"--workdir={root}", "--only=classes=2", "--only=per_class=50", "--wait"]
    assert slurm.main(args) == 1
    assert "sbatch exited 1" in capsys.readouterr().err

    (root / "classes-2_per_class-50").mkdir(exist_ok=True)
    (root / "classes-2_per_class-50" / "results.json").write_text(json.dumps({}))
    assert slurm.main(args) == 0  # finished: nothing to submit
    assert "nothing to submit" in capsys.readouterr().out


@pytest.mark.parametrize("launcher", ["slurm.py", "sweep.py"])
def test_the_launchers_keep_tensorflows_native_banner_off_the_console(launcher, tmp_path, fake_bin):
    """Loading a sweep config imports tensorflow, whose oneDNN / absl lines ignore TF_CPP_MIN_LOG_LEVEL."""
    env = {k: v for k, v in os.environ.items() if k not in ("MEDGAN_LOG", "TF_CPP_MIN_LOG_LEVEL")}
    result = subprocess.run([sys.executable, os.path.join(REPO, "launch", launcher), f"--config={SPEC}",
                             f"--workdir={tmp_path}/sweep", "--dry-run"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "classes-2_per_class-50" in result.stdout
    assert "oneDNN" not in result.stderr and "absl::InitializeLog" not in result.stderr, result.stderr
