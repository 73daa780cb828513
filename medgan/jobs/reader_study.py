"""Job "reader_study": one offline HTML page of real and synthetic images for radiologists, and its answer key.

    python -m medgan.main --config=configs/reader_study.py:points=work/res32,work/res64 --workdir=work/readers

Reads finished benchmark points (one per resolution) and writes, in the work
directory:

  page/reader_study.html   send this to the readers (images embedded; no key)
  key/answer_key.csv       keep this: where each anonymous image came from
  simulated/               a classifier's answers to the page and their scores (scores.md), unless
                           reader_study.simulated_steps = 0 (study/simulated_reader.py)
  results.json             written last: its presence means "done"

Readers open the page in any browser, answer every image and send back the
CSV it downloads; `python launch/score_readers.py work/readers/key/answer_key.csv
answers-*.csv` scores them.
"""

from __future__ import annotations

import os

import ml_collections

from medgan import console, fileio, workdir as workdir_lib
from medgan.study import readers, simulated_reader
from medgan.workdir import RESULT_FILE

PAGE_DIR, KEY_DIR, SIMULATED_DIR = "page", "key", "simulated"


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    previous = workdir_lib.finished_result(
        workdir, lambda r: f"reader-study page already written ({r['images']} images: {r['page']})")
    if previous is not None:
        return previous
    cfg = config.reader_study
    points = [p.strip() for p in cfg.points.split(",") if p.strip()]
    with console.stage(f"reader study: {cfg.pairs} pairs from each of {len(points)} point(s)") as stage:
        result = readers.write_study(
            points, cfg.pairs, config.seed, os.path.join(workdir, PAGE_DIR), os.path.join(workdir, KEY_DIR),
            study=cfg.study or os.path.basename(os.path.abspath(workdir)), title=cfg.title,
            instructions=cfg.instructions)
        stage.note = f"{result['images']} images, {result['page_bytes'] / 1e6:.1f} MB"
    if cfg.simulated_steps:
        with console.stage("simulated reader: a classifier answers the page") as stage:
            simulated = simulated_reader.simulate(
                result["key"], os.path.join(workdir, SIMULATED_DIR), model=cfg.simulated_model,
                steps=cfg.simulated_steps, global_batch_size=cfg.simulated_batch_size,
                learning_rate=cfg.simulated_learning_rate, max_per_source=cfg.simulated_max_per_source,
                seed=config.seed)
            stage.note = f"scores: {os.path.join(workdir, SIMULATED_DIR, readers.SCORES_MD)}"
        result["simulated_reader"] = {"sheet": simulated["sheet"], "per_resolution": simulated["per_resolution"],
                                      "scores": simulated["scores"]["readers"]}
        console.summary(simulated_reader.summary(simulated),
                        title="simulated reader (a classifier, not a radiologist):")
    fileio.write_json(os.path.join(workdir, RESULT_FILE), result)  # last: its presence marks the job finished
    console.summary({
        "page (send to readers)": result["page"],
        "answer key (keep)": result["key"],
        "score the returned CSVs": f"python launch/score_readers.py {result['key']} answers-*.csv",
    }, title="reader study:")
    return result
