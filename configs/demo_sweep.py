"""A CPU-sized mini grid of the brain CT classes and samples sweeps, on phantom head CTs.

Does the study's first finding show on a laptop? Four benchmark points at
32 px with the progressive GAN: 2 or 6 label combinations x 50 or 100 training
images per combination, each at the CPU sweeps' sizes (size=demo, about 20
minutes a point on 2 cores; size=quick, `make demo`'s schedules, about 9;
size=tiny, seconds, for tests and the SLURM cluster test).

  python launch/sweep.py --config=configs/demo_sweep.py --workdir=work/demo_sweep
  python launch/aggregate.py work/demo_sweep
  # one point
  python -m medgan.main --config=configs/demo_sweep.py:classes=2,per_class=100 \
      --workdir=work/demo_sweep/classes-2_per_class-100

Arguments: classes, per_class, model, size (demo, quick or tiny), source, resolution,
patients (phantom patients).
"""

from medgan import configuration
from medgan.study import grid


def get_config(arg=None):
    args = configuration.parse_arg(
        arg, classes=6, per_class=100, model="pggan", size="demo", source="phantom_head_ct", resolution=32,
        patients=grid.CPU_PATIENTS,
    )
    config = grid.point_config(
        source=args.source, resolution=args.resolution, classes=args.classes, per_class=args.per_class,
        model=args.model, holdout=grid.CPU_HOLDOUT.get(args.size, grid.CPU_HOLDOUT["demo"]), devices=1,
        patients=args.patients, study="demo_sweep",
    )
    return grid.cpu_scale(config, args.size)


def get_sweep():
    return [f"classes={k},per_class={n}" for k in (2, 6) for n in (50, 100)]
