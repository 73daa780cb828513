"""Calibrating the phantoms' conspicuity: the real-trained judge's AUC against the findings' contrast.

One train_classifier run per conspicuity value on the real fold of the CPU
classes sweep's k = 6 point (configs/cpu_classes.py: phantom head CT, 32 px,
120 training, 50 validation and 100 test images per combination, the demo's
small DenseNet). The mean test AUC of each run is the calibration curve of
BENCHMARKS.md ("Phantom conspicuity"); phantoms.DEFAULT_CONSPICUITY is set
from it so that the real judge lies inside the real cohorts' range (0.70-0.90).

  python launch/sweep.py --config=configs/calibrate_phantoms.py --workdir=work/calibration \
      -- --config.data.prepared_dir=work/calibration/prepared

Colon arguments: conspicuity, classes, per_class.
"""

from medgan import configuration
from medgan.study import grid

CONSPICUITY = (0.15, 0.2, 0.3, 0.6, 1.0)


def get_config(arg=None):
    args = configuration.parse_arg(arg, conspicuity=1.0, classes=6, per_class=120, miss=-1.0, false_positive=-1.0)
    point = grid.cpu_classes_config(classes=args.classes, per_class=args.per_class, conspicuity=args.conspicuity)
    config = configuration.base_config("train_classifier")
    config.data, config.fold, config.classifier = point.data, point.fold, point.classifier
    if args.miss >= 0 or args.false_positive >= 0:
        default_miss, default_false_positive = config.data.phantom_label_noise
        config.data.phantom_label_noise = (args.miss if args.miss >= 0 else default_miss,
                                           args.false_positive if args.false_positive >= 0 else default_false_positive)
    return config


def get_sweep():
    return [f"conspicuity={c}" for c in CONSPICUITY]
