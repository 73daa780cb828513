"""The instrument, proven: the CPU classes sweep's k = 6 point judged on synthetic cohorts of known quality.

No GAN: every rung is a cohort drawn from real phantom patients the fold
never uses, with the fold's label counts (data/oracle.py), and the judge is
the CPU sweep's small DenseNet trained to its validation optimum
(grid.steady_judge), five seeds per rung pooled (eval/pooling; with three,
the perfect generator and 25% permuted labels, 0.034 apart in mean AUC, were
not told apart: the seeds' spread is of that size). The ladder:

  perfect            disjoint real patients: relative AUC must be 1
  labels=0.25 / 0.5 / 1.0   that share of labels permuted: 1.0 must be chance
  downsample=2 / 4   detail finer than 2 / 4 px removed

  python -m medgan.main --config=configs/instrument.py --workdir=work/instrument
  # results/instrument/ holds a committed run: report.md, results.json, figures/

Colon arguments: classes, per_class, seeds, rungs ("+"-separated, e.g.
"perfect+labels=1.0"), conspicuity, size ("demo": the sweep point, 8,000
patients; "tiny": seconds, for the tests).
"""

from medgan import configuration
from medgan.data.phantoms import DEFAULT_CONSPICUITY
from medgan.study import grid


def get_config(arg=None):
    args = configuration.parse_arg(arg, classes=6, per_class=120, seeds=5, rungs="", conspicuity=DEFAULT_CONSPICUITY,
                                   size="demo")
    if args.size == "tiny":
        point = grid.cpu_scale(grid.point_config(
            source="phantom_head_ct", resolution=32, classes=2, per_class=20, model="pggan",
            holdout=grid.CPU_HOLDOUT["tiny"], devices=1, patients=1200, study="instrument"), "tiny")
    elif args.size == "demo":
        point = grid.cpu_classes_config(classes=args.classes, per_class=args.per_class, conspicuity=args.conspicuity,
                                        study="instrument")
    else:
        raise configuration.ConfigError(f"config argument size={args.size!r}: expected 'demo' or 'tiny'")
    config = configuration.base_config("instrument")
    for section in configuration.JOB_SECTIONS["benchmark"]:
        config[section] = point[section]
    config.data = point.data
    config.benchmark.judge_seeds = args.seeds
    if args.rungs:
        config.instrument.rungs = args.rungs.replace("+", ",")
    return config


def get_sweep():
    return [""]
