"""The embedded default (`make demo`): one benchmark point on phantom head CTs, sized for a laptop CPU.

  python -m medgan.main --config=configs/demo.py --workdir=work/demo

The study's question at one small point: 6 label combinations of phantom
head CT at 32 px (4,000 patients), 120 training, 50 validation and 100 test
images per combination, the k = 6 fold of the CPU classes sweep
(configs/cpu_classes.py) drawn from half its patients, on shorter schedules
(size "quick", medgan.study.grid.cpu_scale: 200 classifier steps, 600 GAN
steps): 8 minutes on 2 AVX-512 cores (BENCHMARKS.md; the AVX2-only EPYC is
3-4x slower). A small DenseNet is trained on the real fold; a progressive
GAN on the same fold (scored by Fréchet distance in that DenseNet's
features); the synthetic cohort has the fold's label counts; the DenseNet
trained on it and the real-trained one are tested on the same real test
split, three seeds of each pooled. Prints real, synthetic and relative AUC
with DeLong's test, the GAN-test AUC and the paths of report.md and its
pictures.

Colon arguments: model (pggan | cpd | stylegan2), classes, per_class,
resolution, patients, source, and size ("quick"; "demo" runs the CPU sweep's
point with its 8,000 patients and full schedules, about twice as long; "tiny"
is the seconds-long variant the tests and the SLURM cluster test run, by
default 2 combinations x 20 training images, which the tiny cohort holds).
"""

from medgan import configuration
from medgan.study import grid

# (label combinations, training images per combination) of each size, unless the colon argument says otherwise.
SIZES = {"quick": (6, 120), "demo": (6, 120), "tiny": (2, 20)}


def get_config(arg=None):
    args = configuration.parse_arg(
        arg, model="pggan", classes=0, per_class=0, resolution=32, patients=0, source="phantom_head_ct",
        size="quick",
    )
    classes, per_class = SIZES.get(args.size, SIZES["quick"])
    patients = args.patients or (grid.QUICK_PATIENTS if args.size == "quick" else grid.CPU_PATIENTS)
    config = grid.point_config(
        source=args.source, resolution=args.resolution, classes=args.classes or classes,
        per_class=args.per_class or per_class,
        model=args.model, holdout=grid.CPU_HOLDOUT.get(args.size, grid.CPU_HOLDOUT["quick"]), devices=1,
        patients=patients, study="demo",
    )
    return grid.cpu_scale(config, args.size)


def get_sweep():
    return [""]
