"""Run a study's sweep on this machine, one benchmark point after another.

  python launch/sweep.py --config=configs/demo_sweep.py --workdir=work/demo_sweep
  python launch/sweep.py --config=configs/chexpert_classes.py --dry-run
  python launch/sweep.py --config=configs/chexpert_classes.py:devices=1 --workdir=/runs/chexpert_classes \
      --only=model=pggan --only=classes-6 -- --config.data.root=/data/CheXpert-v1.0-small \
      --config.data.prepared_dir=/data/prepared

Each point runs as `python -m medgan.main --config=<file>:<point> --workdir=<workdir>/<point name>`
in a fresh process. A point whose results.json exists is skipped; a failing
point is reported and the sweep goes on; the exit status is 1 if any point
failed. Arguments after `--` are --config.key=value overrides given to every
point. `--dry-run` prints the points (fold sizes, GAN batch and steps, done or
pending) and touches no data: real-cohort points are listed without
--config.data.root. `--only` (repeatable, all must match) keeps the points
whose arguments have key=value, or whose name contains the text.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # without pip install -e

from medgan import configuration, console  # noqa: E402
from medgan.study import sweeps  # noqa: E402


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    argv, overrides = sweeps.split_overrides(argv)
    parser = sweeps.launcher_parser(
        "launch/sweep.py", __doc__, "root directory; each point runs in <workdir>/<point name>"
    )
    parser.add_argument("--dry-run", action="store_true", help="list the points, run nothing")
    args = parser.parse_args(argv)
    if not args.dry_run and not args.workdir:
        parser.error("--workdir is required unless --dry-run")
    return args, overrides


def main(argv: list[str]) -> int:
    args, overrides = parse_args(argv)
    try:
        points = sweeps.expand(args.config, args.only)
        if not points:
            print(f"{args.config}: no point matches --only {args.only}", file=sys.stderr)
            return 2
        problems = []
        rows = []
        for point in points:
            config = sweeps.load_point_config(point, overrides)
            try:
                sweeps.check_config(config, require_data_root=not args.dry_run)
            except configuration.ConfigError as error:
                problems.append(f"{point.name}: {error}")
            if args.dry_run:
                rows.append(sweeps.dry_run_row(point, args.workdir, overrides))
    except configuration.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(sweeps.format_table(rows, sweeps.DRY_RUN_HEADER))
        pending = sum(row[-1] == "pending" for row in rows)
        print(f"{len(points)} point{'s' * (len(points) != 1)} ({pending} pending) from {args.config}")
    if problems:
        print("invalid points (nothing was run):", *problems, sep="\n  ", file=sys.stderr)
        return 2
    if args.dry_run:
        return 0
    summary = sweeps.run_points(points, args.workdir, overrides=overrides, python=args.python)
    print(summary.line())
    return 1 if summary.failed else 0


if __name__ == "__main__":
    if not console.verbose_from_env():  # TensorFlow's native banner (oneDNN, CPU features) is not a launcher's output
        console.import_tensorflow_quietly()
    sys.exit(main(sys.argv[1:]))
