"""Audit a synthetic cohort against the real fold it was trained on (job "audit").

  python -m medgan.main --config=configs/audit.py:point=work/demo --workdir=work/demo_audit

`point=DIR` audits a finished benchmark point: its synthetic cohort, its
real-trained judge (and its synthetic-trained classifier, for the occlusion
maps), its fold, its prepared cohort and its audit settings. Any other synthetic
cohort: give the synthesize directory and the judge, and the real cohort's
data and fold settings with its manifest, e.g.

  python -m medgan.main --config=configs/audit.py:synthetic=work/synthetic,real_classifier=work/real \
      --config.fold.manifest=work/fold.json --config.data.source=phantom_head_ct \
      --config.data.resolution=32 --workdir=work/audit

The work directory then holds audit.md, figures/, the cached features and
results.json, and the synthetic cohort's data card lists the audit.
"""

import json
import os

from medgan import configuration


def get_config(arg=None):
    args = configuration.parse_arg(arg, point="", synthetic="", real_classifier="", seed=0)
    config = configuration.base_config("audit")
    config.seed = args.seed
    config.audit.synthetic = args.synthetic
    config.audit.real_classifier = args.real_classifier
    if args.point:
        point = os.path.abspath(args.point)
        with open(os.path.join(point, "results.json")) as f:
            benchmark = json.load(f)["configs"]["benchmark"]
        for key, value in benchmark["data"].items():
            config.data[key] = tuple(value) if isinstance(value, list) else value
        for key, value in benchmark["fold"].items():
            config.fold[key] = tuple(value) if isinstance(value, list) else value
        for key, value in benchmark.get("audit", {}).items():  # the point's own audit settings, if it had any
            config.audit[key] = value
        config.data.prepared_dir = config.data.prepared_dir or os.path.join(point, "prepared")
        config.fold.manifest = os.path.join(point, "manifest.json")
        config.audit.synthetic = os.path.join(point, "synthetic")
        config.audit.real_classifier = os.path.join(point, "real_classifier")
        config.audit.synthetic_classifier = os.path.join(point, "synthetic_classifier")  # occlusion of both judges
    return config


def get_sweep():
    return ["synthetic=work/demo/synthetic,real_classifier=work/demo/real_classifier"]
