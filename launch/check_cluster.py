"""Checks what `make test-cluster` ran: each named point's results.json, from a multi-process run.

  python launch/check_cluster.py work/cluster --processes=2 classes-2_per_class-50 classes-6_per_class-50

For every point: <workdir>/<point>/results.json exists, has a numeric
relative_auc.mean, and software.processes equals --processes (the point ran
as one jax cluster of that many SLURM tasks, not as independent copies).
Prints one line per point; exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import numbers
import os
import sys


def problems(workdir: str, point: str, processes: int) -> list[str]:
    """What is wrong with one point's results.json (empty: nothing)."""
    path = os.path.join(workdir, point, "results.json")
    if not os.path.exists(path):
        return [f"{path}: missing"]
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        return [f"{path}: unreadable: {error}"]
    found = []
    relative = (result.get("relative_auc") or {}).get("mean")
    if not isinstance(relative, numbers.Real):
        found.append(f"{path}: relative_auc.mean is {relative!r}, expected a number")
    ran = (result.get("software") or {}).get("processes")
    if ran != processes:
        found.append(f"{path}: software.processes is {ran!r}, expected {processes}")
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="launch/check_cluster.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir")
    parser.add_argument("points", nargs="+", help="point names (directories under workdir)")
    parser.add_argument("--processes", type=int, required=True, help="jax processes each point must have run with")
    args = parser.parse_args(argv)
    failed = False
    for point in args.points:
        found = problems(args.workdir, point, args.processes)
        if found:
            failed = True
            print(f"FAIL {point}:", *found, sep="\n  ")
        else:
            with open(os.path.join(args.workdir, point, "results.json")) as f:
                result = json.load(f)
            print(f"ok   {point}: relative AUC {result['relative_auc']['mean']:.3f} "
                  f"(real {result['real']['mean_auc']:.3f}, synthetic {result['synthetic']['mean_auc']:.3f}), "
                  f"{result['software']['processes']} processes, {result['software'].get('devices')} devices")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
