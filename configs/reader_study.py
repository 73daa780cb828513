"""A reader-study page of finished benchmark points (job "reader_study").

  python -m medgan.main --config=configs/reader_study.py:points=work/demo --workdir=work/demo_readers
  python -m medgan.main --config=configs/reader_study.py:points=work/res/r32+work/res/r64+work/res/r128,pairs=50 \
      --workdir=work/readers

The page is also answered by a simulated reader, a classifier trained to
tell each point's synthetic images from its real ones
(study/simulated_reader.py; simulated_steps=0 turns it off): its scores are
in <workdir>/simulated/scores.md.

One point per resolution (say the points of a resolution sweep), joined by
"+" in the colon argument (commas separate its keys) or by "," in
--config.reader_study.points; each gives `pairs` real test images and as many
synthetic images of the same label combinations. Score the returned sheets
with launch/score_readers.py.
"""

from medgan import configuration


def get_config(arg=None):
    args = configuration.parse_arg(arg, points="", pairs=40, seed=0, simulated_steps=400)
    config = configuration.base_config("reader_study")
    config.seed = args.seed
    config.reader_study.points = args.points.replace("+", ",")
    config.reader_study.pairs = args.pairs
    config.reader_study.simulated_steps = args.simulated_steps
    return config


def get_sweep():
    return ["points=work/demo"]
