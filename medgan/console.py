"""What a person sees of a job: a header, its stages, progress bars and the answer; the chatter goes to a file.

`setup(workdir, verbose)` (medgan.main calls it before the job) routes
logging: every record at INFO and above -- absl (clu's metric writers, orbax,
tfds), TensorFlow's python logger, jax, matplotlib, medgan itself -- is
appended with a timestamp to `WORKDIR/log.txt` (`log.<i>.txt` for process
i > 0); only WARNING and above reach stderr. `verbose=True` or the
environment variable MEDGAN_LOG=info keeps INFO on stderr as absl prints it.
It also sets TF_CPP_MIN_LOG_LEVEL=1 (unless set), which hides TensorFlow's
C++ INFO banner but keeps its warnings; that only works before tensorflow is
imported.

The display goes to stdout, on process 0 only (decided when something is
printed: jax's process index once `jax.distributed` runs, before that the
launcher's environment):

    header("benchmark", "work/demo", "8 x cpu")
    with stage("train GAN"):                       # "▸ train GAN …" ... "✓ train GAN  12.3 s"
        progress = Progress(200, "train", images_per_step=64)
        for step in range(1, 201):
            ...
            progress.update(step)                   # a host counter, never a device value
        progress.close()
    summary({"AUC real": "0.81", "AUC synthetic": "0.78"}, title="result")

`Progress` redraws one line in place ("\\r", at most 4 times a second) on a
terminal; when stdout is not a terminal (a pipe, a CI log) it prints a new
line only at each tenth of the total and at the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TextIO

from absl import logging as absl_logging

LOG_FILE = "log.txt"
VERBOSE_ENV = "MEDGAN_LOG"  # "info" (or "debug", "verbose", "1"): INFO on the console too

# Set by launchers before jax.distributed.initialize: who this process is.
_PROCESS_ENV = ("JAX_PROCESS_ID", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "TPU_WORKER_ID")

_log = logging.getLogger("medgan.console")


# ----------------------------------------------------------------------------- logging


class _Installed:
    """What the last `setup` added, so that a second `setup` (or `reset`) can take it away again."""

    file_handler: logging.Handler | None = None
    console_handler: logging.Handler | None = None
    console_filter: logging.Filter | None = None
    filtered: list[logging.Handler] = []
    log_path: str | None = None
    absl_formatter: logging.Formatter | None = None  # absl's own, restored by `reset`


SHORT_FORMAT = "%(levelname)s: %(message)s (%(filename)s:%(lineno)d)"


class _Below:
    """A console filter passing records at `level` and above; on processes other than 0, errors only.

    Every process of a multi-process run logs the same warnings; its own log file keeps them, and the
    console shows them once (process 0's).
    """

    def __init__(self, level: int):
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return False
        return record.levelno >= logging.ERROR or process_index() == 0


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever sys.stderr is at the time of the record (pytest swaps it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def verbose_from_env(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(VERBOSE_ENV, "").strip().lower() in ("info", "debug", "verbose", "1", "true")


def process_index() -> int:
    """This process's index: jax's once `jax.distributed` is initialised, else the launcher's environment, else 0.

    Never initialises jax itself (jax.process_index() before
    jax.distributed.initialize would fix a single-process backend).
    """
    jax = sys.modules.get("jax")
    if jax is not None:
        try:
            if jax.distributed.is_initialized():
                return int(jax.process_index())
        except Exception:  # a half-imported or unusual jax: fall back on the environment
            pass
    for key in _PROCESS_ENV:
        value = os.environ.get(key, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def log_path(workdir: str, index: int | None = None) -> str:
    """`WORKDIR/log.txt` for process 0, `WORKDIR/log.<i>.txt` for process i."""
    index = process_index() if index is None else index
    return os.path.join(workdir, LOG_FILE if index == 0 else f"log.{index}.txt")


def setup(workdir: str, verbose: bool = False) -> str:
    """Sends logging below WARNING to `WORKDIR/log.txt` only (see the module doc); returns the log file's path.

    Calling it again (another workdir, tests) first undoes the previous call.
    """
    verbose = verbose or verbose_from_env()
    reset()
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # C++ INFO (the CPU-feature banner) off, warnings on
    os.makedirs(workdir, exist_ok=True)
    path = log_path(workdir)
    root = logging.getLogger()

    file_handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    file_handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname).1s %(name)s %(filename)s:%(lineno)d] %(message)s")
    )
    root.addHandler(file_handler)
    # Records at INFO must be made at all: absl's verbosity (root's level under app.run) and root's own.
    if absl_logging.get_verbosity() < absl_logging.INFO:
        absl_logging.set_verbosity(absl_logging.INFO)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)

    threshold = logging.INFO if verbose else logging.WARNING
    console_filter = _Below(threshold)
    absl_handler = absl_logging.get_absl_handler()
    filtered = []
    if absl_handler in root.handlers:  # under absl.app.run: absl's handler is the console
        absl_handler.addFilter(console_filter)
        filtered.append(absl_handler)
        console_handler = None
        if not verbose:  # warnings for a person: "WARNING: message (file.py:12)", not absl's prefix
            _Installed.absl_formatter = absl_handler.formatter
            absl_handler.setFormatter(logging.Formatter(SHORT_FORMAT))
    else:  # a plain Python program: root had no console of its own
        console_handler = _StderrHandler()
        console_handler.setFormatter(logging.Formatter(SHORT_FORMAT))
        console_handler.addFilter(console_filter)
        root.addHandler(console_handler)
    # Other handlers printing to the console, e.g. TensorFlow's own when it was imported before root had a handler.
    loggers = [root] + [v for v in logging.root.manager.loggerDict.values() if isinstance(v, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if handler in (file_handler, console_handler, absl_handler) or handler in filtered:
                continue
            if type(handler) is logging.StreamHandler and handler.stream in (
                sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__
            ):
                handler.addFilter(console_filter)
                filtered.append(handler)

    _Installed.file_handler, _Installed.console_handler = file_handler, console_handler
    _Installed.console_filter, _Installed.filtered, _Installed.log_path = console_filter, filtered, path
    _log.info("medgan log of process %d (pid %d), console %s", process_index(), os.getpid(),
              "verbose" if verbose else "warnings only")
    for line in _HELD_BACK:
        logging.getLogger("tensorflow.native").info("%s", line)
    return path


_HELD_BACK: list[str] = []  # native stderr lines of the tensorflow import, for log.txt


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Redirects file descriptor 2 (C and C++ code's stderr) to a temporary file inside the block;
    the yielded list receives the captured text when the block ends, whether it raised or not."""
    sys.stderr.flush()
    saved = os.dup(2)
    captured: list[str] = []
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            captured.append(held.read().decode("utf-8", errors="replace"))


def import_tensorflow_quietly() -> None:
    """Imports tensorflow with its native banner held back from the console (setup() logs it to log.txt).

    TensorFlow 2.20+ prints its oneDNN and CPU-feature lines through absl before absl's
    logging is initialised, straight to stderr, and TF_CPP_MIN_LOG_LEVEL no longer hides
    them. A failing import still raises (with its traceback on the console).
    """
    if "tensorflow" in sys.modules:
        return
    with native_stderr_captured() as captured:
        import tensorflow  # noqa: F401
    _HELD_BACK.extend(line for line in captured[0].splitlines() if line.strip())


def reset() -> None:
    """Undoes `setup` (handlers and filters; levels and environment stay)."""
    root = logging.getLogger()
    for handler in (_Installed.file_handler, _Installed.console_handler):
        if handler is not None:
            root.removeHandler(handler)
            handler.close()
    for handler in _Installed.filtered:
        handler.removeFilter(_Installed.console_filter)
    if _Installed.absl_formatter is not None:
        absl_logging.get_absl_handler().setFormatter(_Installed.absl_formatter)
        _Installed.absl_formatter = None
    _Installed.file_handler = _Installed.console_handler = _Installed.console_filter = None
    _Installed.filtered, _Installed.log_path = [], None


def current_log_path() -> str | None:
    """The file `setup` logs to, None before it ran."""
    return _Installed.log_path


# ----------------------------------------------------------------------------- display


_UNICODE = {"stage": "▸", "done": "✓", "failed": "✗", "more": "…", "full": "█", "empty": "░", "times": "×",
            "box": "┌┐└┘─│"}
_ASCII = {"stage": ">", "done": "ok", "failed": "x", "more": "...", "full": "#", "empty": "-", "times": "x",
          "box": "++++-|"}


_BAR_WIDTH = 24


def _symbols(stream: TextIO) -> dict[str, str]:
    """Unicode symbols where the stream can encode them (a C-locale pipe may not)."""
    try:
        "".join(v for v in _UNICODE.values()).encode(getattr(stream, "encoding", None) or "ascii")
        return _UNICODE
    except (UnicodeEncodeError, LookupError):
        return _ASCII


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _show() -> bool:
    return process_index() == 0


def _print(text: str, stream: TextIO | None = None) -> None:
    if not _show():
        return
    stream = stream or sys.stdout
    stream.write(text + "\n")
    stream.flush()


def format_duration(seconds: float) -> str:
    """12.3 s, 2 min 05 s, 1 h 02 min."""
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_clock(seconds: float) -> str:
    """m:ss or h:mm:ss."""
    minutes, secs = divmod(int(round(max(seconds, 0.0))), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _format_rate(rate: float) -> str:
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.1f}" if rate >= 10 else f"{rate:.2f}"


def header(job: str, workdir: str, devices: str, stream: TextIO | None = None) -> None:
    """A short framed header: job, workdir, devices and (after `setup`) the log file."""
    stream = stream or sys.stdout
    sym = _symbols(stream)
    tl, tr, bl, br, h, v = sym["box"]
    rows = [f"medgan {job}", f"workdir  {workdir}", f"devices  {devices}"]
    if _Installed.log_path:
        rows.append(f"log      {_Installed.log_path}")
    width = max(len(r) for r in rows) + 2
    lines = [tl + h * width + tr] + [f"{v} {r.ljust(width - 2)} {v}" for r in rows] + [bl + h * width + br]
    _print("\n".join(lines), stream)


class _Stages:
    depth = 0  # stages open now


def in_stage() -> bool:
    """Whether a `stage` is open: a job run as a stage of another leaves its summary to the stage line."""
    return _Stages.depth > 0


class Stage:
    """What `stage` yields: set `note` to append it to the closing line."""

    def __init__(self, name: str):
        self.name, self.note, self.seconds = name, "", None


@contextlib.contextmanager
def stage(name: str, *, clock: Callable[[], float] = time.monotonic, stream: TextIO | None = None) -> Iterator[Stage]:
    """Prints "▸ name …", runs the block, then "✓ name  12.3 s" (or "✗ name  failed after 3.0 s" and re-raises).

    Yields a `Stage`; its `note` (e.g. "AUC 0.81") is appended to the closing line.
    """
    stream = stream or sys.stdout
    sym = _symbols(stream)
    current = Stage(name)
    _print(f"{sym['stage']} {name} {sym['more']}", stream)
    _log.info("stage %s: started", name)
    start = clock()
    _Stages.depth += 1
    try:
        yield current
    except BaseException as error:
        current.seconds = clock() - start
        how = ("interrupted" if isinstance(error, KeyboardInterrupt) else
               "stopped" if isinstance(error, SystemExit) else "failed")
        _print(f"{sym['failed']} {name}  {how} after {format_duration(current.seconds)}", stream)
        _log.info("stage %s: %s after %.1f s", name, how, current.seconds)
        raise
    finally:
        _Stages.depth -= 1
    current.seconds = clock() - start
    note = f"  ({current.note})" if current.note else ""
    _print(f"{sym['done']} {name}  {format_duration(current.seconds)}{note}", stream)
    _log.info("stage %s: done in %.1f s%s", name, current.seconds, note)


def summary(lines: Mapping[str, Any] | Iterable[str], title: str | None = None, stream: TextIO | None = None) -> None:
    """Prints the answer: a mapping as aligned "key  value" rows, or the given lines, indented under `title`."""
    if isinstance(lines, Mapping):
        width = max((len(str(k)) for k in lines), default=0)
        rows = [f"{str(k).ljust(width)}  {v}" for k, v in lines.items()]
    else:
        rows = [str(line) for line in lines]
    text = ([title] if title else []) + [f"  {r}" if title else r for r in rows]
    _print("\n".join(text), stream)


class Progress:
    """One line of progress: bar, done/total, rate (and images/s), elapsed and ETA.

    `update(done)` takes an absolute count (e.g. the loop's host step
    counter; a resumed run passes `initial`). The rate is measured from the
    first `update` on, so the compilation inside the first step of a
    training does not count; or, once `mark_synced` is called (and with
    `await_sync` from the start), between the points where the caller synced: rate = (done - done at the first update) /
    (time since the first update); ETA = (total - done) / rate. Elapsed
    counts from construction.

    On a terminal the line is redrawn in place, at most every
    `min_interval` seconds (and always at the end); otherwise a new line is
    printed at the first update, whenever another tenth of the total is
    done, and at the end: about 11 lines per bar. Only process 0 prints.
    `clock`, `stream` and `tty` are there for tests.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "steps",
        images_per_step: int | None = None,
        *,
        initial: int = 0,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
        tty: bool | None = None,
        min_interval: float = 0.25,
        await_sync: bool = False,
    ):
        self.total, self.desc, self.unit, self.images_per_step = max(int(total), 1), desc, unit, images_per_step
        self.done = self.initial = int(initial)
        self._clock, self._stream, self._tty, self.min_interval = clock, stream, tty, min_interval
        self._start = self._now = clock()
        self._first: tuple[float, int] | None = None  # (time, done) of the first update: the rate's origin
        self._drawn_at: float | None = None  # clock of the last draw
        self._drawn_done: int | None = None
        self._drawn_tenth = -1
        self._width = 0
        self._layout: tuple[int, bool] | None = None  # on a terminal: (bar cells, show images/s)
        self._closed = False
        self._await_sync = await_sync  # the rate from mark_synced's points only: updates count dispatched work
        self._first_sync: tuple[float, int] | None = None
        self._last_sync: tuple[float, int] | None = None

    def mark_synced(self) -> None:
        """The work counted so far has run (the caller waited for the device).

        A loop that dispatches steps without waiting for them counts steps
        the device has not run yet, so a rate over its updates is the
        dispatcher's (hundreds of steps/s right after compilation). Once
        this is called, the rate is taken between the first and the latest
        sync only, where the count is what the device has done.
        """
        now = self._clock()
        if self._first_sync is None:
            self._first_sync = (now, self.done)
        self._last_sync = (now, self.done)

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout

    @property
    def tty(self) -> bool:
        if self._tty is None:  # asked once: update() runs every step
            self._tty = _is_tty(self.stream)
        return self._tty

    @property
    def elapsed(self) -> float:
        return self._now - self._start

    @property
    def rate(self) -> float | None:
        """Units per second since the first update (or between syncs); None until two points apart."""
        if self._await_sync or self._first_sync is not None:
            if self._first_sync is None or self._last_sync is None:
                return None
            seconds, count = self._last_sync[0] - self._first_sync[0], self._last_sync[1] - self._first_sync[1]
            return count / seconds if seconds > 0 and count > 0 else None
        if self._first is None:
            return None
        seconds, count = self._now - self._first[0], self.done - self._first[1]
        return count / seconds if seconds > 0 and count > 0 else None

    @property
    def eta(self) -> float | None:
        rate = self.rate
        return None if rate is None else max(self.total - self.done, 0) / rate

    def update(self, done: int) -> None:
        """Sets the count to `done` (absolute) and redraws if it is time to."""
        self.done = int(done)
        self._now = self._clock()
        if self._first is None:
            self._first = (self._now, self.done)
        if self._closed:
            return
        tenth = min(self.done * 10 // self.total, 10)
        finished = self.done >= self.total
        if self.tty:
            due = (self._drawn_at is None or finished or self._now - self._drawn_at >= self.min_interval)
        else:
            due = self._drawn_done is None or tenth > self._drawn_tenth or (finished and self._drawn_done != self.done)
        if due:
            self._draw(tenth)

    def close(self, note: str | None = None) -> None:
        """Ends the line (with `note`, e.g. "early stopped"); prints the final count if it was not shown yet."""
        if self._closed:
            return
        self._now = self._clock()
        if self.tty:
            if self._drawn_done is not None or note:
                self._draw(None, note)
                if _show():
                    self.stream.write("\n")
                    self.stream.flush()
        elif self._drawn_done != self.done or note:
            self._draw(None, note)
        self._closed = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close("failed" if kind is not None else None)

    def line(self, note: str | None = None, columns: int | None = None) -> str:
        """The current text of the bar.

        With `columns` (a terminal's width) the layout is chosen once, for
        the widest text the bar will show: the bar shrinks to fit (down to 10
        cells), then images/s goes, then the bar; what is still too long is cut.
        """
        if columns is None:
            bar_width, images = _BAR_WIDTH, True
        else:
            if self._layout is None:
                self._layout = self._fit(columns)
            bar_width, images = self._layout
        sym = _symbols(self.stream)
        fraction = min(max(self.done / self.total, 0.0), 1.0)
        stats = self._stats(self.done, self.rate, self.elapsed, self.eta, note, images)
        if bar_width:
            filled = int(fraction * bar_width)
            text = f"{self.desc}  {sym['full'] * filled}{sym['empty'] * (bar_width - filled)} {stats}"
        else:
            text = f"{self.desc}  {stats}"
        return text if columns is None else text[: max(columns - 1, 20)]

    def _stats(self, done, rate, elapsed, eta, note, images) -> str:
        parts = [f"{done / self.total * 100:3.0f}%  {done}/{self.total} {self.unit}"]
        if rate is not None:
            parts.append(f"{_format_rate(rate)} {self.unit}/s")
            if self.images_per_step and images:
                parts.append(f"{_format_rate(rate * self.images_per_step)} img/s")
        parts.append(f"elapsed {format_clock(elapsed)}")
        if done < self.total and note is None:
            parts.append(f"ETA {format_clock(eta)}" if eta is not None else "ETA ?")
        if note:
            parts.append(note)
        return "  ".join(parts)

    def _fit(self, columns: int) -> tuple[int, bool]:
        """(bar cells, show images/s) for a terminal `columns` wide."""
        for images in (True, False):
            widest = self._stats(self.total - 1, 999.0, 3599.0, 3599.0, None, images)
            room = columns - 1 - len(self.desc) - 3 - len(widest)
            if room >= 10:
                return min(room, _BAR_WIDTH), images
        return 0, False

    def _draw(self, tenth: int | None, note: str | None = None) -> None:
        self._drawn_at, self._drawn_done = self._now, self.done
        if tenth is not None:
            self._drawn_tenth = tenth
        if not _show():
            return
        if self.tty:
            text = self.line(note, columns=shutil.get_terminal_size((100, 20)).columns)
            pad = max(self._width - len(text), 0)
            self._width = len(text)
            self.stream.write("\r" + text + " " * pad)
        else:
            self.stream.write(self.line(note) + "\n")
        self.stream.flush()
