"""Submit a study's sweep to SLURM: one array task per benchmark point, each point on its own nodes.

  python launch/slurm.py --config=configs/chexpert_classes.py:devices=8 --workdir=/scratch/chexpert_classes \
      --nodes=2 --tasks-per-node=4 --gpus-per-node=4 --cpus-per-task=8 --time=24:00:00 \
      --partition=gpu --account=myproject -- --config.data.root=/data/CheXpert-v1.0-small
  python launch/slurm.py --config=configs/demo_sweep.py:size=tiny --workdir=work/cluster \
      --only=per_class=50 --nodes=1 --tasks-per-node=2 --cpus-per-task=1 --wait

Writes <workdir>/slurm/points.txt (one pending point a line: name, tab,
--config flag) and <workdir>/slurm/sweep.sbatch, an array job whose task i
runs point i: it exits 0 at once if the point's results.json exists (a
finished point is never run twice, even when an old array is still queued),
otherwise it starts `srun python -m medgan.main --config=... --workdir=<workdir>/<point name>
<overrides>`, one process per task. Every process calls
`jax.distributed.initialize()` without arguments (medgan.sharding.
initialize_distributed), which reads the cluster from SLURM's environment.
Then `sbatch --parsable` submits the script and the job id is printed.

Points whose results.json exists are left out before submitting; a sweep is
resumed by running the same command again. `--dry-run` prints the script and
writes or submits nothing. `--wait` blocks until every array task ended and
exits non-zero if one failed. Arguments after `--` are --config.key=value
overrides given to every point.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # without pip install -e

from medgan import configuration, console, fileio  # noqa: E402
from medgan.study import sweeps  # noqa: E402

SLURM_DIR = "slurm"  # under the sweep's workdir: points.txt, sweep.sbatch, one log per array task
POINTS_FILE = "points.txt"
SCRIPT_FILE = "sweep.sbatch"
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")  # SLURM's --time forms: M, M:S, H:M:S, D-H[:M[:S]]

# The batch script runs on the first node of the allocation, which is the node
# jax's SlurmCluster makes the coordinator (first host of SLURM_STEP_NODELIST).
# jax derives the coordinator port from SLURM_JOB_ID (61440 + id % 4096): two
# jobs on one node whose ids differ by a multiple of 4096, or a port another
# program holds, would collide. A port the batch script finds free on that
# node, passed as JAX_COORDINATOR_PORT (read by jax.distributed.initialize),
# cannot collide with another array task.
_FREE_PORT = 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one array task (one benchmark point) asks SLURM for; None leaves the site default."""

    nodes: int = 1
    tasks_per_node: int = 1  # processes per node; with GPUs, one per GPU
    cpus_per_task: int | None = None
    gpus_per_task: int | None = None
    gpus_per_node: int | None = None
    time: str | None = None  # e.g. "24:00:00"
    partition: str | None = None
    account: str | None = None
    max_parallel: int | None = None  # array tasks running at the same time (%N)

    def check(self) -> None:
        """Raises configuration.ConfigError naming the option that is impossible."""
        for name in ("nodes", "tasks_per_node", "cpus_per_task", "gpus_per_task", "gpus_per_node", "max_parallel"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise configuration.ConfigError(f"--{name.replace('_', '-')}={value}: must be at least 1")
        if self.time is not None and not _TIME.match(self.time):
            raise configuration.ConfigError(f"--time={self.time!r}: expected HH:MM:SS or D-HH:MM:SS")


def pending_points(config_spec: str, root: str, only=()) -> tuple[list[sweeps.Point], list[sweeps.Point]]:
    """(points to run, points already finished) of the sweep, in sweep order."""
    points = sweeps.expand(config_spec, only)
    return [p for p in points if not p.done(root)], [p for p in points if p.done(root)]


def render_points(points) -> str:
    """points.txt: "<name>\\t<--config flag>" per line, array task i is line i+1."""
    for point in points:
        if "\t" in point.config_flag or "\n" in point.config_flag:
            raise configuration.ConfigError(f"{point.config_flag!r}: tab or newline in a config flag")
    return "".join(f"{p.name}\t{p.config_flag}\n" for p in points)


def render_script(
    points, root: str, resources: Resources = Resources(), *, job_name: str = "medgan",
    python: str = sys.executable, overrides=(), chdir: str | None = None, command: str = "",
) -> str:
    """The sbatch array script that runs `points` under `root`, one array task each.

    The points are written into the script itself (bash arrays, same order as
    points.txt): sbatch keeps a copy of the script at submission, so a later
    submission that rewrites points.txt cannot change what a queued task runs.

    Args:
      points: the pending sweeps.Point s, array index = list index.
      root: the sweep's work directory (absolute: the job may start elsewhere).
      resources: nodes, tasks, CPUs, GPUs, time, partition, account, %N.
      python: interpreter on the compute nodes (a shared filesystem's venv).
      overrides: "--config.key=value" strings given to every point.
      chdir: the directory the job runs in (relative config paths are
        relative to it); default: sbatch's own default, the submit directory.
      command: the launcher command line, recorded in a comment.
    """
    if not points:
        raise ValueError("render_script: no points")
    resources.check()
    sweeps.check_overrides(overrides)
    log_dir = os.path.join(root, SLURM_DIR)
    array = f"0-{len(points) - 1}" + (f"%{resources.max_parallel}" if resources.max_parallel else "")
    options = [
        ("job-name", job_name), ("array", array), ("nodes", resources.nodes),
        ("ntasks-per-node", resources.tasks_per_node), ("cpus-per-task", resources.cpus_per_task),
        ("gpus-per-task", resources.gpus_per_task), ("gpus-per-node", resources.gpus_per_node),
        ("time", resources.time), ("partition", resources.partition), ("account", resources.account),
        ("output", os.path.join(log_dir, "%x-%A_%a.out")), ("chdir", chdir),
    ]
    header = [f"#SBATCH --{key}={value}" for key, value in options if value is not None]
    # srun in a batch step does not take --cpus-per-task from sbatch on every SLURM version (22.05 dropped it).
    srun = ["srun", "--kill-on-bad-exit=1"]
    if resources.cpus_per_task:
        srun.append(f"--cpus-per-task={resources.cpus_per_task}")
    names = " ".join(shlex.quote(p.name) for p in points)
    flags = "\n".join(f"  {shlex.quote(p.config_flag)}" for p in points)
    extra = "".join(f" \\\n    {shlex.quote(o)}" for o in overrides)
    return f"""#!/bin/bash
{chr(10).join(header)}
# Written by launch/slurm.py{': ' + command if command else ''}
# Array task i runs point i of {os.path.join(log_dir, POINTS_FILE)}; one srun task = one jax process.
set -euo pipefail

ROOT={shlex.quote(root)}
PYTHON={shlex.quote(python)}
NAMES=({names})
CONFIGS=(
{flags}
)

index=${{SLURM_ARRAY_TASK_ID:?run this script with sbatch (an array job)}}
name=${{NAMES[$index]}}
config_flag=${{CONFIGS[$index]}}
result="$ROOT/$name/{sweeps.RESULT_FILE}"
if [ -e "$result" ]; then
  echo "$name: finished before ($result), skipped"
  exit 0
fi

# Coordinator port: see launch/slurm.py (_FREE_PORT); this script runs on the coordinator's node.
export JAX_COORDINATOR_PORT=$("$PYTHON" -c {shlex.quote(_FREE_PORT)})
echo "$name: array task $index of job ${{SLURM_ARRAY_JOB_ID:-?}} on ${{SLURM_JOB_NODELIST:-?}}, $(date -Is)"
{' '.join(srun)} "$PYTHON" -m medgan.main "$config_flag" "--workdir=$ROOT/$name"{extra}

if [ ! -e "$result" ]; then
  echo "$name: exited 0 without $result (preempted?); submit the sweep again to continue" >&2
  exit 1
fi
echo "$name: done, $(date -Is)"
"""


def write_text(path: str, text: str) -> None:
    """Writes `text` to `path` atomically (medgan.fileio.atomic_path)."""
    with fileio.atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def submit(script_path: str, *, wait: bool = False) -> tuple[int, str]:
    """Runs `sbatch --parsable [--wait] script`; returns (exit status, job id or "")."""
    command = ["sbatch", "--parsable", *(["--wait"] if wait else []), script_path]
    try:
        process = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    except FileNotFoundError as err:
        raise configuration.ConfigError(
            "sbatch not found: run on a SLURM login node (or launch/local_slurm.sh up)"
        ) from err
    job_id = process.stdout.strip().split(";")[0] if process.stdout.strip() else ""
    return process.returncode, job_id


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    argv, overrides = sweeps.split_overrides(argv)
    parser = sweeps.launcher_parser(
        "launch/slurm.py", __doc__, "root directory on a shared filesystem; point in <workdir>/<name>")
    parser.add_argument("--nodes", type=int, default=1, help="nodes per point (default 1)")
    parser.add_argument("--tasks-per-node", type=int, default=1, help="processes per node, one per GPU (default 1)")
    parser.add_argument("--cpus-per-task", type=int)
    parser.add_argument("--gpus-per-node", type=int, help="GPUs per node; with --tasks-per-node equal to it")
    parser.add_argument("--gpus-per-task", type=int, help="GPUs per process (see the README's GPU notes)")
    parser.add_argument("--time", help="time limit per point, HH:MM:SS or D-HH:MM:SS")
    parser.add_argument("--partition")
    parser.add_argument("--account")
    parser.add_argument("--max-parallel", type=int, help="at most this many points at once (array %%N)")
    parser.add_argument("--dry-run", action="store_true", help="print the script; write and submit nothing")
    parser.add_argument("--wait", action="store_true", help="block until the array ends; non-zero if a task failed")
    args = parser.parse_args(argv)
    if not args.workdir:
        parser.error("--workdir is required")
    return args, overrides


def main(argv: list[str]) -> int:
    args, overrides = parse_args(argv)
    root = os.path.abspath(args.workdir)
    resources = Resources(
        nodes=args.nodes, tasks_per_node=args.tasks_per_node, cpus_per_task=args.cpus_per_task,
        gpus_per_task=args.gpus_per_task, gpus_per_node=args.gpus_per_node, time=args.time,
        partition=args.partition, account=args.account, max_parallel=args.max_parallel,
    )
    try:
        resources.check()
        points, finished = pending_points(args.config, root, args.only)
        if not points and not finished:
            print(f"{args.config}: no point matches --only {args.only}", file=sys.stderr)
            return 2
        for point in points:  # a bad point fails here, not hours later in the queue
            sweeps.check_config(sweeps.load_point_config(point, overrides))
    except configuration.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for point in finished:
        print(f"{point.name}: finished before, left out")
    if not points:
        print(f"all {len(finished)} points of {args.config} are finished; nothing to submit")
        return 0
    job_name = "medgan-" + os.path.splitext(os.path.basename(sweeps.split_spec(args.config)[0]))[0]
    script = render_script(
        points, root, resources, job_name=job_name, python=args.python, overrides=overrides,
        chdir=os.getcwd(), command=" ".join(shlex.quote(a) for a in ["launch/slurm.py", *argv]),
    )
    if args.dry_run:
        print(script, end="")
        print(f"# dry run: {len(points)} point(s) pending, nothing written or submitted", file=sys.stderr)
        return 0
    slurm_dir = os.path.join(root, SLURM_DIR)
    os.makedirs(slurm_dir, exist_ok=True)
    write_text(os.path.join(slurm_dir, POINTS_FILE), render_points(points))
    script_path = os.path.join(slurm_dir, SCRIPT_FILE)
    write_text(script_path, script)
    print(f"{len(points)} point(s) in {script_path}; logs: {slurm_dir}/{job_name}-<job>_<task>.out")
    sys.stdout.flush()
    status, job_id = submit(script_path, wait=args.wait)
    if job_id:
        print(job_id)
    if status != 0:
        print(f"error: sbatch exited {status}" + (" (an array task failed; see the logs)" if args.wait else ""),
              file=sys.stderr)
        return 1
    if args.wait:
        missing = [p.name for p in points if not p.done(root)]
        if missing:
            print(f"error: job {job_id} ended without results.json for: {', '.join(missing)}", file=sys.stderr)
            return 1
        print(f"job {job_id}: all {len(points)} point(s) finished")
    return 0


if __name__ == "__main__":
    if not console.verbose_from_env():  # TensorFlow's native banner (oneDNN, CPU features) is not a launcher's output
        console.import_tensorflow_quietly()
    sys.exit(main(sys.argv[1:]))
