"""Job "benchmark": one point of the study, end to end (docs/ARCHITECTURE.md, "Data flow").

    fold -> classifier on real -> GAN -> synthesize -> classifier on synthetic -> evaluate

Both classifiers are tested on the same REAL test split, so the point's answer
is paired: per-class and mean AUC of each, their ratio (relative AUC) and
DeLong's test of the difference. The real-trained classifier is also the
feature extractor of the GAN's Fréchet distance.

Every stage is its own job in its own directory under the work directory and
resumes from its own checkpoint; a stage whose result exists is skipped. So a
preempted or killed benchmark, started again with the same command, continues
where it stopped, and a finished one only rewrites nothing:

    <workdir>/manifest.json          the fold every stage shares
    <workdir>/prepared/              prepared shards (unless data.prepared_dir)
    <workdir>/real_classifier/       train_classifier on the real train split
    <workdir>/gan/                   train_gan (+ samples/, generator/)
    <workdir>/synthetic/             synthesize (dataset/, DATA_CARD.md, preview.png)
    <workdir>/synthetic_classifier/  train_classifier on the synthetic cohort
    <workdir>/audit/                 audit (memorisation, fidelity, occlusion, embedding; audit.md)
    <workdir>/figures/               real_vs_synthetic.png, roc.png
    <workdir>/report.md              the table and the pictures, for people
    <workdir>/results.json           written last: its presence means "done"
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
import time

import jax
import ml_collections

from medgan import configuration, console, fileio, report_format as fmt
from medgan.data import cohorts
from medgan.jobs import audit, common, synthesize, train_classifier, train_gan
from medgan.study import point, point_report
from medgan.study.point import STAGE_DIRS, STAGES
from medgan.workdir import MANIFEST_FILE, PREEMPTED, REPORT_FILE, RESULT_FILE, STAGE_TIMES_FILE

STAGE_TITLES = {
    "prepare": "1/7 prepare the cohort and draw the fold",
    "real_classifier": "2/7 classifier on the real training split",
    "gan": "3/7 GAN on the real training split",
    "synthesize": "4/7 synthetic cohort",
    "synthetic_classifier": "5/7 classifier on the synthetic cohort",
    "audit": "6/7 audit of the synthetic cohort (memorisation, fidelity, occlusion, t-SNE)",
    "judges": "6b/7 the judges of the other seeds, on real and on synthetic",
    "evaluate": "7/7 both classifiers on the real test split",
}
JOBS = {"real_classifier": train_classifier.run, "gan": train_gan.run, "synthesize": synthesize.run,
        "synthetic_classifier": train_classifier.run, "audit": audit.run}


class StageClock:
    """Wall seconds per stage, persisted so a resumed benchmark reports the whole time spent.

    `running(stage)` times a block and also writes the stage's running total
    every `interval` seconds while it runs, so a run killed outright (SIGKILL,
    a lost node) loses at most that much of its time.
    """

    def __init__(self, workdir: str, interval: float = 30.0):
        self.path = os.path.join(workdir, STAGE_TIMES_FILE)
        self.interval = interval
        self.seconds = dict.fromkeys(STAGES, 0.0)
        if os.path.exists(self.path):
            self.seconds.update(fileio.read_json(self.path))

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds
        self._write(self.seconds)

    @contextlib.contextmanager
    def running(self, stage: str):
        start, done = time.perf_counter(), threading.Event()

        def write_running_total():
            while not done.wait(self.interval):
                self._write({**self.seconds, stage: self.seconds[stage] + time.perf_counter() - start})

        writer = threading.Thread(target=write_running_total, name=f"stage clock: {stage}", daemon=True)
        writer.start()
        try:
            yield
        finally:
            done.set()
            writer.join()
            self.add(stage, time.perf_counter() - start)

    def _write(self, seconds: dict[str, float]) -> None:
        if jax.process_index() == 0:
            fileio.write_json(self.path, seconds)


def stage_configs(config: ml_collections.ConfigDict, workdir: str) -> dict[str, ml_collections.ConfigDict]:
    """The job config of every stage, all on one prepared dataset, one fold manifest and one seed."""
    data = copy.deepcopy(config.data)
    data.prepared_dir = cohorts.prepared_dir(config.data, workdir)
    fold = copy.deepcopy(config.fold)
    fold.manifest = os.path.join(workdir, MANIFEST_FILE)

    def job(name: str) -> ml_collections.ConfigDict:
        stage = configuration.base_config(name)
        stage.seed = config.seed
        stage.distributed = config.distributed
        if "fold" in stage:
            stage.data, stage.fold = copy.deepcopy(data), copy.deepcopy(fold)
        return stage

    real, synthetic = job("train_classifier"), job("train_classifier")
    real.classifier = copy.deepcopy(config.classifier)
    real.classifier.train_data = ""
    synthetic.classifier = copy.deepcopy(config.classifier)
    synthetic.classifier.train_data = os.path.join(workdir, STAGE_DIRS["synthesize"])
    gan = job("train_gan")
    gan.gan = copy.deepcopy(config.gan)
    gan.gan.fid_classifier = os.path.join(workdir, STAGE_DIRS["real_classifier"])
    syn = job("synthesize")
    syn.synthesize = copy.deepcopy(config.synthesize)
    syn.synthesize.generator = os.path.join(workdir, STAGE_DIRS["gan"])
    audit_config = job("audit")
    audit_config.audit = copy.deepcopy(config.audit)
    audit_config.audit.synthetic = os.path.join(workdir, STAGE_DIRS["synthesize"])
    audit_config.audit.real_classifier = os.path.join(workdir, STAGE_DIRS["real_classifier"])
    audit_config.audit.synthetic_classifier = os.path.join(workdir, STAGE_DIRS["synthetic_classifier"])
    configs = {"real_classifier": real, "gan": gan, "synthesize": syn, "synthetic_classifier": synthetic,
               "audit": audit_config}
    for stage in configs.values():
        configuration.validate(stage)
    return configs


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    previous, mesh = common.begin(config, workdir, lambda result: "benchmark point already finished")
    if previous is not None:
        point_report.print_summary(previous, workdir)
        return previous
    result_path = os.path.join(workdir, RESULT_FILE)
    clock = StageClock(workdir)
    configs = stage_configs(config, workdir)

    with clock.running("prepare"), console.stage(STAGE_TITLES["prepare"]) as shown:
        prepared = cohorts.prepare_cohort(config.data, workdir)
        fold = cohorts.fold_of(config.fold, workdir, prepared)  # writes manifest.json once
        common.barrier("benchmark: fold written")
        shown.note = fold_note(prepared, fold)

    outcomes = {}
    for name, stage in JOBS.items():
        with clock.running(name), console.stage(STAGE_TITLES[name]) as shown:
            outcome = stage(configs[name], os.path.join(workdir, STAGE_DIRS[name]))
            shown.note = stage_note(name, outcome)
        if outcome.get("status") == PREEMPTED:
            print(f"benchmark preempted in stage {name}: run the same command again to continue from its checkpoint")
            return {"status": PREEMPTED, "stage": name}
        common.barrier(f"benchmark: {name} done")
        outcomes[name] = outcome

    seeds = point.judge_seeds(config)
    if len(seeds) > 1 and not _more_judges(configs, workdir, seeds, clock):
        return {"status": PREEMPTED, "stage": "judges"}

    start = time.perf_counter()
    with console.stage(STAGE_TITLES["evaluate"]):
        evaluations = point.evaluate(workdir, config.benchmark.level, seeds)
        labels_reached = point.label_fidelity_of(
            workdir, cohorts.training_data(configs["synthetic_classifier"].classifier.train_data, prepared, fold),
            mesh, outcomes, level=config.benchmark.level, global_batch_size=config.classifier.global_batch_size)
        if jax.process_index() == 0:
            figures = point_report.write_figures(workdir, fold, prepared, evaluations[0],
                                                 config.benchmark.report_samples)
            clock.add("evaluate", time.perf_counter() - start)
            result = point.results(config, workdir, prepared, fold, outcomes, evaluations, figures, clock.seconds,
                                   labels_reached)
            with fileio.atomic_path(os.path.join(workdir, REPORT_FILE)) as tmp, open(tmp, "w") as f:
                f.write(point_report.report_markdown(result))
            fileio.write_json(result_path, result)  # last: its presence marks the point finished
    if jax.process_index() == 0:
        point_report.print_summary(result, workdir)
    common.barrier("benchmark: results written")
    return fileio.read_json(result_path)  # what a rerun returns too (JSON: tuples became lists)


def _more_judges(configs: dict, workdir: str, seeds: list[int], clock: StageClock) -> bool:
    """The real and synthetic judges of every seed after the first (each skipped if finished); False if preempted.

    The first seed's judges are the point's own stages (the real one also
    scores the GAN); the others only score the test split, so that the
    point's AUCs are a mean over judge seeds with the seeds' spread in their
    intervals (study/point.answer).
    """
    with clock.running("judges"), console.stage(STAGE_TITLES["judges"]) as shown:
        aucs = []
        for seed in seeds[1:]:
            for name in ("real_classifier", "synthetic_classifier"):
                stage = copy.deepcopy(configs[name])
                stage.seed = seed
                outcome = train_classifier.run(stage, point.judge_dir(workdir, name, seed, seeds[0]))
                if outcome.get("status") == PREEMPTED:
                    print(f"benchmark preempted in the judges of seed {seed}: run the same command again to continue")
                    return False
                common.barrier(f"benchmark: {name} seed {seed} done")
                aucs.append(f"{'real' if name == 'real_classifier' else 'synthetic'} "
                            f"{fmt.number(outcome['test']['mean_auc'])}")
        shown.note = f"seeds {', '.join(map(str, seeds[1:]))}: mean test AUC " + ", ".join(aucs)
    return True


def fold_note(prepared, fold) -> str:
    """The prepare stage's line: "9552 images; fold 720 train / 300 val / 600 test"."""
    splits = " / ".join(f"{len(ids)} {split}" for split, ids in fold.ids.items())
    return f"{prepared.num_written} images; fold {splits}"


def stage_note(name: str, outcome: dict) -> str:
    """What a finished stage's line says: its answer in a few words."""
    if outcome.get("status") == PREEMPTED:
        return f"preempted at step {outcome['steps']}"
    if name.endswith("classifier"):
        return (f"{outcome['steps']} steps, mean test AUC {fmt.number(outcome['test']['mean_auc'])}, "
                f"{outcome['train_images_per_second'] or 0:.0f} img/s")
    if name == "gan":
        return (f"{outcome['steps']} steps, FD {fmt.number(outcome['best_fd'], 2)} at step {outcome['selected_step']}, "
                f"{outcome['train_images_per_second'] or 0:.0f} img/s")
    if name == "audit":
        memo, fidelity = outcome["memorisation"], outcome["fidelity"]["overall"]["synthetic"]
        return (f"{memo['flagged']} of {memo['synthetic_images']} flagged as copies, precision "
                f"{fmt.number(fidelity['precision'])}, recall {fmt.number(fidelity['recall'])}")
    return f"{outcome['counts']['total']} images"

