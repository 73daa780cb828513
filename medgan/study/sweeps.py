"""A study's sweep as a list of points, and what a launcher needs to run one.

A config file in `configs/` lists its benchmark points in `get_sweep()` as
colon arguments ("model=pggan,classes=6,per_class=2300"). Launchers
(`launch/sweep.py` here, one after another; `launch/slurm.py`, one array task
each; `launch/tpu_pod.sh`, one pod run) share this module so that a point has
one name, one work directory and one command wherever it runs:

    root/<point name>/results.json   written last by the job: the point is done

Nothing here imports jax or TensorFlow or touches data: expanding and
describing a sweep of real-cohort points works on a laptop without the cohort.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib.util
import inspect
import os
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import ml_collections

from medgan import configuration
from medgan.data import folds
from medgan.data.sources import REAL_SOURCES
from medgan.workdir import RESULT_FILE

EMPTY_ARG_NAME = "point"  # directory of a sweep point with an empty colon argument
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")


def load_config_module(path: str) -> ModuleType:
    """Imports a config file from its path; it must define get_config and get_sweep.

    Raises:
      configuration.ConfigError: the file is missing, does not import, or lacks
        one of the two functions; the message names the file.
    """
    if not os.path.isfile(path):
        raise configuration.ConfigError(f"config file {path}: no such file")
    name = "medgan_config_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise configuration.ConfigError(f"config file {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the file's own bug: say which file
        raise configuration.ConfigError(f"config file {path}: import failed: {error!r}") from error
    for function in ("get_config", "get_sweep"):
        if not callable(getattr(module, function, None)):
            raise configuration.ConfigError(f"config file {path}: defines no {function}()")
    return module


@dataclasses.dataclass(frozen=True)
class Point:
    """One benchmark point of a sweep.

    config_file: the config file as given (relative paths are relative to the
      directory the launcher runs in, the repository root in the README).
    arg: the full colon argument, sweep point and fixed arguments merged.
    name: directory name of the point under a sweep's root, built from the
      keys of the sweep's own argument ("model-pggan_classes-6_per_class-2300").
    """

    config_file: str
    arg: str
    name: str

    @property
    def config_flag(self) -> str:
        """The --config flag of medgan.main for this point."""
        return f"--config={self.config_file}:{self.arg}" if self.arg else f"--config={self.config_file}"

    def workdir(self, root: str) -> str:
        return os.path.join(root, self.name)

    def done(self, root: str) -> bool:
        """Whether the point's job finished: its results.json exists (written last, atomically)."""
        return os.path.exists(os.path.join(self.workdir(root), RESULT_FILE))


def split_spec(config_spec: str) -> tuple[str, str]:
    """"configs/x.py:a=1,b=2" -> ("configs/x.py", "a=1,b=2"); no colon -> (spec, "")."""
    path, _, arg = config_spec.partition(":")
    if not path:
        raise configuration.ConfigError(f"--config={config_spec!r}: expected configs/<file>.py[:key=value,...]")
    return path, arg


def parse_items(arg: str, where: str) -> dict[str, str]:
    """"a=1,b=2" -> {"a": "1", "b": "2"} keeping order; values stay strings as written."""
    items: dict[str, str] = {}
    if not arg:
        return items
    for item in arg.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise configuration.ConfigError(f"{where}: {item!r} is not key=value")
        if key in items:
            raise configuration.ConfigError(f"{where}: key {key!r} given twice")
        items[key] = value.strip()
    return items


def point_name(keys: Sequence[str], merged: Mapping[str, str]) -> str:
    """Directory name "k1-v1_k2-v2" of `keys` (in their order) with the merged values."""
    if not keys:
        return EMPTY_ARG_NAME
    return "_".join(f"{key}-{_NAME_UNSAFE.sub('-', merged[key]).strip('-') or 'empty'}" for key in keys)


def expand(config_spec: str, only: Sequence[str] = ()) -> list[Point]:
    """The points of a config file's sweep, fixed arguments merged in, filtered by `only`.

    config_spec: "configs/x.py[:k=v,...]". A fixed argument named like a
      parameter of `get_sweep` goes to it (`configs/chexpert_classes.py:
      models=pggan+cpd+stylegan2`); the others are added to every point of the
      sweep, and a key given both ways takes the fixed value
      (`configs/chexpert_classes.py:model=pggan` runs pggan only: the models
      collapse into one point each).
    only: every filter must match. "k=v" matches a point whose merged
      arguments have k=v exactly; any other string is a substring of the name.

    Raises:
      configuration.ConfigError: bad file, bad argument, or two different
        points with the same name.
    """
    path, fixed_arg = split_spec(config_spec)
    module = load_config_module(path)
    fixed = parse_items(fixed_arg, f"--config={config_spec}")
    sweep_parameters = inspect.signature(module.get_sweep).parameters
    sweep = module.get_sweep(**{key: fixed.pop(key) for key in list(fixed) if key in sweep_parameters})
    if isinstance(sweep, str) or not all(isinstance(arg, str) for arg in sweep):
        raise configuration.ConfigError(f"config file {path}: get_sweep() must return a list of argument strings")
    filters = [_parse_filter(f) for f in only]

    points: list[Point] = []
    by_name: dict[str, Point] = {}
    seen_args: set[str] = set()
    for sweep_arg in sweep:
        if sweep_arg in seen_args:
            raise configuration.ConfigError(f"config file {path}: get_sweep() lists {sweep_arg!r} twice")
        seen_args.add(sweep_arg)
        own = parse_items(sweep_arg, f"config file {path}, get_sweep() point {sweep_arg!r}")
        merged = {**own, **fixed}
        arg = ",".join(f"{key}={value}" for key, value in merged.items())
        point = Point(config_file=path, arg=arg, name=point_name(list(own), merged))
        if point.name in by_name:
            if by_name[point.name].arg == point.arg:
                continue  # a fixed argument made two sweep points the same point
            raise configuration.ConfigError(
                f"config file {path}: points {by_name[point.name].arg!r} and {arg!r} have the same "
                f"directory name {point.name!r}"
            )
        by_name[point.name] = point
        if all(_matches(point, merged, f) for f in filters):
            points.append(point)
    return points


def _parse_filter(text: str) -> tuple[str, str] | str:
    key, sep, value = text.partition("=")
    return (key.strip(), value.strip()) if sep and key.strip() else text


def _matches(point: Point, merged: Mapping[str, str], flt: tuple[str, str] | str) -> bool:
    if isinstance(flt, tuple):
        key, value = flt
        return merged.get(key) == value
    return flt in point.name


def point_command(
    point: Point, root: str, *, python: str = sys.executable, overrides: Sequence[str] = ()
) -> list[str]:
    """argv that runs `point` in a fresh process: python -m medgan.main --config=... --workdir=..."""
    check_overrides(overrides)
    return [python, "-m", "medgan.main", point.config_flag, f"--workdir={point.workdir(root)}", *overrides]


def check_overrides(overrides: Sequence[str]) -> None:
    for override in overrides:
        if not re.match(r"^--(no)?config\.[A-Za-z_]", override):
            raise configuration.ConfigError(f"override {override!r}: expected --config.key=value")


def load_point_config(point: Point, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """The config medgan.main would run for `point` with `overrides` (not validated).

    Parsed by ml_collections' config flag exactly as medgan.main parses it, so
    override syntax and typing are the same; errors name the point.
    """
    from absl import flags
    from ml_collections import config_flags

    check_overrides(overrides)
    module = load_config_module(point.config_file)
    try:
        module.get_config(point.arg or None)  # the file's own argument errors, without flag wrapping
    except configuration.ConfigError as error:
        raise configuration.ConfigError(f"{point.config_flag}: {error}") from error
    argv = ["medgan.main", point.config_flag, *overrides]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values, lock_config=True, sys_argv=argv)
    try:
        with warnings.catch_warnings():  # ml_collections loads the file with the deprecated load_module()
            warnings.simplefilter("ignore", DeprecationWarning)
            flag_values(argv)
    except (AttributeError, KeyError) as error:  # ml_collections' way of saying "no such key"
        raise configuration.ConfigError(
            f"{point.config_flag} {' '.join(overrides)}: unknown config key {str(error).strip(chr(34))}") from error
    except (flags.Error, TypeError, ValueError) as error:
        message = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
        raise configuration.ConfigError(f"{point.config_flag} {' '.join(overrides)}: {message}") from error
    return flag_values.config


def check_config(config: ml_collections.ConfigDict, *, require_data_root: bool = True) -> None:
    """configuration.validate; with require_data_root=False a real cohort's empty data.root passes.

    A dry run lists real-cohort points on a machine without the cohort; a run
    needs the root (medgan.main would refuse the point).
    """
    if not require_data_root and config.get("data") and config.data.source in REAL_SOURCES and not config.data.root:
        config = copy.deepcopy(config)
        with config.unlocked():
            config.data.root = "<data.root>"
    configuration.validate(config)


def fold_sizes(config: ml_collections.ConfigDict) -> dict[str, int | str]:
    """Images in the train/val/test splits of the point's fold, without reading data.

    A balanced fold holds k x (n, val, test per combination) exactly
    (`folds.make_fold` raises if the cohort has fewer); an unbalanced one
    trains on every training image ("all") beside its fixed val/test totals.
    """
    fold = config.fold
    if fold.per_combination == 0:
        return {"train": "all", "val": fold.val_images, "test": fold.test_images}
    per_split = (fold.per_combination, fold.val_per_combination, fold.test_per_combination)
    return {split: fold.num_combinations * size for split, size in zip(folds.SPLITS, per_split)}


def describe(point: Point, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """What a dry run shows of a point: job, source, px, model, k, n, fold sizes, GAN batch and steps.

    Keys a job does not have (a prepare point has no fold) are None.
    """
    config = load_point_config(point, overrides)
    gan = config.gan if "gan" in config else None
    fold = config.fold if "fold" in config else None
    return {
        "name": point.name,
        "job": config.job,
        "source": config.data.source,
        "resolution": config.data.resolution,
        "model": gan and gan.model,
        "num_combinations": fold and (fold.num_combinations or f">{fold.min_images} images"),
        "per_combination": fold and (fold.per_combination or "all"),
        "fold": fold_sizes(config) if fold else None,
        "fold_per_combination": fold and fold.per_combination and "/".join(
            str(size) for size in (fold.per_combination, fold.val_per_combination, fold.test_per_combination)),
        "gan_global_batch_size": gan and gan.global_batch_size,
        "gan_num_steps": gan and gan.num_steps,
    }


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain-text table with left-aligned columns (None shows as "-")."""
    cells = [[str(h) for h in header]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


DRY_RUN_HEADER = ("point", "job", "source", "px", "model", "k", "n", "train/val/test", "per combination",
                  "gan batch", "gan steps", "status")


def dry_run_row(point: Point, root: str | None, overrides: Sequence[str] = ()) -> list[Any]:
    """One row of the dry-run table (DRY_RUN_HEADER)."""
    info = describe(point, overrides)
    fold = info["fold"]
    return [
        point.name,
        info["job"],
        info["source"],
        info["resolution"],
        info["model"],
        info["num_combinations"],
        info["per_combination"],
        None if fold is None else "/".join(str(fold[s]) for s in folds.SPLITS),
        info["fold_per_combination"] or None,
        info["gan_global_batch_size"],
        info["gan_num_steps"],
        "done" if root and point.done(root) else "pending",
    ]


@dataclasses.dataclass
class SweepSummary:
    """What a local sweep did: point names by outcome."""

    done: list[str] = dataclasses.field(default_factory=list)  # ran now and wrote results.json
    skipped: list[str] = dataclasses.field(default_factory=list)  # had results.json already
    failed: list[str] = dataclasses.field(default_factory=list)  # non-zero exit, or exit 0 without results.json

    def line(self) -> str:
        failed = f" ({', '.join(self.failed)})" if self.failed else ""
        return (f"sweep summary: {len(self.done)} done, {len(self.skipped)} skipped (already finished), "
                f"{len(self.failed)} failed{failed}")


def run_points(
    points: Sequence[Point], root: str, *, overrides: Sequence[str] = (), python: str = sys.executable,
    log=print,
) -> SweepSummary:
    """Runs the points one after another, each in a fresh `python -m medgan.main` process.

    A point with results.json is skipped. A failing point is reported and the
    sweep goes on with the next. A job that exits 0 without results.json (a
    preempted benchmark saves its checkpoints and exits 0; a prepare job writes
    result.json) counts as failed so that the next sweep runs it again.
    SIGTERM to the sweep is passed on to the running point (which checkpoints
    and exits) and stops the sweep.
    """
    import signal
    import subprocess

    summary = SweepSummary()
    stop = {"signal": None}
    child: dict[str, subprocess.Popen | None] = {"process": None}

    def forward(signum, frame):  # noqa: ARG001
        stop["signal"] = signum
        if child["process"] is not None and child["process"].poll() is None:
            child["process"].send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        for i, point in enumerate(points, 1):
            prefix = f"[{i}/{len(points)}] {point.name}"
            if stop["signal"] is not None:
                break
            if point.done(root):
                log(f"{prefix}: skipped, finished before ({os.path.join(point.workdir(root), RESULT_FILE)})")
                summary.skipped.append(point.name)
                continue
            command = point_command(point, root, python=python, overrides=overrides)
            log(f"{prefix}: running {' '.join(_quote(c) for c in command)}")
            sys.stdout.flush()
            child["process"] = subprocess.Popen(command)
            status = child["process"].wait()
            child["process"] = None
            if status == 0 and point.done(root):
                log(f"{prefix}: done")
                summary.done.append(point.name)
            elif status == 0:
                log(f"{prefix}: FAILED: exited 0 but wrote no {RESULT_FILE} (preempted?); it runs again next time")
                summary.failed.append(point.name)
            else:
                log(f"{prefix}: FAILED with exit status {status}; going on with the next point")
                summary.failed.append(point.name)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stop["signal"] is not None:
        log(f"sweep stopped by signal {stop['signal']}; run the same command again to continue")
    return summary


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def launcher_parser(prog: str, doc: str, workdir_help: str) -> argparse.ArgumentParser:
    """The flags every sweep launcher shares: --config, --workdir, --only, --python (doc: the script's docstring)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=doc.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc.split("\n\n", 1)[1],
    )
    parser.add_argument("--config", required=True, help="configs/<study>.py[:fixed key=value,...]")
    parser.add_argument("--workdir", help=workdir_help)
    parser.add_argument("--only", action="append", default=[], metavar="FILTER",
                        help="key=value or a substring of the point name; repeatable, all must match")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the points (default: this one)")
    return parser


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(launcher flags, --config.key=value overrides after "--" passed to every point)."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1:]
