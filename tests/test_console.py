"""The console: library logs go to WORKDIR/log.txt, warnings to stderr; stages, progress bars and their arithmetic."""

import io
import logging
import os
import pathlib
import subprocess
import sys

import pytest
from absl import logging as absl_logging

from medgan import console

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch):
    """Each test may install handlers, filters and levels; all are put back afterwards."""
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    for key in ("JAX_PROCESS_ID", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "TPU_WORKER_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))  # restored after
    root = logging.getLogger()
    absl_handler = absl_logging.get_absl_handler()
    saved = (list(root.handlers), root.level, absl_logging.get_verbosity(), list(absl_handler.filters),
             absl_logging.get_absl_logger().level)
    yield
    console.reset()
    handlers, level, verbosity, filters, absl_level = saved
    absl_logging.set_verbosity(verbosity)
    root.handlers[:] = handlers
    root.setLevel(level)
    absl_handler.filters[:] = filters
    absl_logging.get_absl_logger().setLevel(absl_level)


@pytest.fixture(params=["absl_app", "plain"])
def console_kind(request):
    """Under absl.app.run (absl's handler on root, as medgan.main) and in a plain Python program."""
    root = logging.getLogger()
    if request.param == "absl_app":
        if absl_logging.get_absl_handler() not in root.handlers:
            root.addHandler(absl_logging.get_absl_handler())
    else:
        root.removeHandler(absl_logging.get_absl_handler())
    return request.param


def _log_text(tmp_path, name="log.txt"):
    for handler in logging.getLogger().handlers:
        handler.flush()
    return (tmp_path / name).read_text()


def test_info_goes_to_the_log_file_only_and_warnings_reach_the_console(tmp_path, capsys, console_kind):
    path = console.setup(str(tmp_path), verbose=False)
    assert path == str(tmp_path / "log.txt") and console.current_log_path() == path
    absl_logging.info("absl info %s", "uptime=12s")  # clu, orbax, tfds log through absl
    logging.getLogger("tensorflow").info("tensorflow info")
    logging.getLogger("jax._src.xla_bridge").info("jax info")
    logging.info("root info")  # medgan.train.loop
    absl_logging.warning("absl warning")
    logging.getLogger("orbax").error("orbax error")
    out, err = capsys.readouterr()
    assert "info" not in out + err.replace("WARNING: Logging before flag parsing", ""), err
    assert "absl warning" in err and "orbax error" in err
    text = _log_text(tmp_path)
    for message in ("absl info uptime=12s", "tensorflow info", "jax info", "root info", "absl warning", "orbax error"):
        assert message in text
    first = text.splitlines()[0]
    assert first[:4].isdigit() and first[4] == "-", f"no timestamp: {first!r}"  # 2025-11-28 05:44:11,519 ...
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"]  # set (or kept) before tensorflow's import


def test_verbose_and_the_environment_restore_info_on_the_console(tmp_path, capsys, monkeypatch, console_kind):
    console.setup(str(tmp_path), verbose=True)
    absl_logging.info("loud info")
    assert "loud info" in capsys.readouterr().err
    assert "loud info" in _log_text(tmp_path)
    console.setup(str(tmp_path / "again"), verbose=False)
    absl_logging.info("quiet info")
    assert "quiet info" not in capsys.readouterr().err
    monkeypatch.setenv(console.VERBOSE_ENV, "info")
    console.setup(str(tmp_path / "env"), verbose=False)
    absl_logging.info("env info")
    assert "env info" in capsys.readouterr().err


def test_setup_twice_appends_to_the_file_and_leaves_one_file_handler(tmp_path, console_kind):
    console.setup(str(tmp_path))
    logging.warning("first run")
    console.setup(str(tmp_path))
    logging.warning("second run")
    text = _log_text(tmp_path)
    assert text.count("first run") == 1 and text.count("second run") == 1
    files = [h for h in logging.getLogger().handlers
             if isinstance(h, logging.FileHandler) and h.baseFilename.startswith(str(tmp_path))]
    assert len(files) == 1


def test_other_processes_log_to_their_own_file_and_print_no_display(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JAX_PROCESS_ID", "1")
    assert console.setup(str(tmp_path)) == str(tmp_path / "log.1.txt")
    with console.stage("train"):
        pass
    progress = console.Progress(10, "train", tty=False)
    for i in range(1, 11):
        progress.update(i)
    progress.close()
    console.summary(["answer"])
    logging.getLogger("medgan.test").warning("a warning every process logs")
    logging.getLogger("medgan.test").error("an error of process 1")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "a warning every process logs" not in captured.err and "an error of process 1" in captured.err
    log = _log_text(tmp_path, "log.1.txt")
    assert "stage train: done" in log and "a warning every process logs" in log


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_non_tty_progress_prints_a_line_per_tenth_and_ends_at_the_total():
    stream = io.StringIO()
    progress = console.Progress(100, "train gan", tty=False, stream=stream, clock=FakeClock())
    for step in range(1, 101):
        progress.update(step)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11, lines  # the first update, 10%, 20%, ..., 100%
    assert "\r" not in stream.getvalue()
    assert "100/100 steps" in lines[-1] and "1/100" in lines[0] and "50/100" in lines[5]
    assert all(line.startswith("train gan") for line in lines)


def test_non_tty_close_before_the_end_prints_where_it_stopped():
    stream = io.StringIO()
    progress = console.Progress(100, "train", tty=False, stream=stream, clock=FakeClock(), initial=40)
    for step in range(41, 56):
        progress.update(step)
    progress.close("early stopped")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, lines  # 41 (first), 50, and the close at 55
    assert "55/100" in lines[-1] and lines[-1].endswith("early stopped")


def test_rate_eta_and_images_per_second_on_a_fake_clock():
    clock = FakeClock()
    stream = io.StringIO()
    progress = console.Progress(100, "train", images_per_step=8, tty=False, stream=stream, clock=clock)
    clock.now += 30.0  # the first step compiles: not part of the rate
    progress.update(1)
    assert progress.rate is None and progress.eta is None and "ETA ?" in progress.line()
    clock.now += 10.0
    progress.update(21)  # 20 steps in 10 s since the first update
    assert progress.rate == pytest.approx(2.0)
    assert progress.eta == pytest.approx(79 / 2.0)
    assert progress.elapsed == pytest.approx(40.0)
    line = progress.line()
    assert "2.00 steps/s" in line and "16.0 img/s" in line and "elapsed 0:40" in line and "ETA 0:40" in line
    assert "21/100 steps" in line and " 21%" in line
    clock.now += 39.5
    progress.update(100)
    assert progress.eta == 0 and "ETA" not in progress.line()


def test_the_rate_runs_between_syncs_not_over_steps_only_dispatched():
    clock = FakeClock()
    progress = console.Progress(200, "train", tty=False, stream=io.StringIO(), clock=clock, await_sync=True)
    progress.update(1)
    for step in range(2, 21):  # dispatched in a tenth of a second: the device has run none of them
        clock.now += 0.005
        progress.update(step)
    assert progress.rate is None and "steps/s" not in progress.line()  # not the dispatcher's 200 steps/s
    clock.now += 4.9
    progress.mark_synced()  # the device caught up at step 20
    clock.now += 0.01
    progress.update(30)  # dispatched again at once
    assert progress.rate is None
    clock.now += 5.0
    progress.mark_synced()  # the device ran steps 21-30 in 5 s
    assert progress.rate == pytest.approx(10 / 5.01)
    clock.now += 0.01
    progress.update(40)  # the dispatcher is ahead again: the rate stays the device's
    assert progress.rate == pytest.approx(10 / 5.01) and progress.eta == pytest.approx(160 / (10 / 5.01))


def test_tty_progress_redraws_in_place_at_most_four_times_a_second():
    clock = FakeClock()
    stream = io.StringIO()
    progress = console.Progress(1000, "train", tty=True, stream=stream, clock=clock)
    for step in range(1, 1001):
        clock.now += 0.01  # 100 steps/s: 10 s in all
        progress.update(step)
    progress.close()
    text = stream.getvalue()
    draws = text.count("\r")
    assert 38 <= draws <= 43, draws  # every 0.25 s, the last step, the close
    assert text.endswith("\n") and text.count("\n") == 1
    assert "1000/1000" in text.rsplit("\r", 1)[1]


def test_stage_prints_its_name_and_duration(capsys):
    clock = FakeClock()
    with console.stage("train classifier", clock=clock) as current:
        clock.now += 12.34
        current.note = "AUC 0.81"
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "train classifier" in out[0] and out[0].startswith(("▸", ">"))
    assert "train classifier" in out[1] and "12.3 s" in out[1] and "AUC 0.81" in out[1]
    with pytest.raises(RuntimeError):
        with console.stage("synthesize", clock=clock):
            clock.now += 125
            raise RuntimeError("boom")
    assert "synthesize  failed after 2 min 05 s" in capsys.readouterr().out


def test_in_stage_tells_a_job_it_runs_as_a_stage(capsys):
    assert not console.in_stage()
    with console.stage("outer"):
        assert console.in_stage()
        with pytest.raises(ValueError):
            with console.stage("inner"):
                raise ValueError("boom")
        assert console.in_stage()
    assert not console.in_stage()


def test_header_and_summary(capsys, tmp_path):
    console.setup(str(tmp_path))
    console.header("benchmark", "work/demo", "8 x cpu")
    console.summary({"relative AUC": "0.97", "report": "work/demo/report.md"}, title="result")
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "medgan benchmark" in out and "work/demo" in out and "8 x cpu" in out and str(tmp_path / "log.txt") in out
    assert len({len(line) for line in lines[:6]}) == 1, lines[:6]  # a closed frame
    assert "  relative AUC  0.97" in lines and "  report        work/demo/report.md" in lines


def test_ascii_symbols_where_the_stream_cannot_encode_unicode():
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    with console.stage("prepare", stream=stream):
        pass
    progress = console.Progress(10, "train", tty=False, stream=stream)
    progress.update(10)
    stream.flush()
    text = stream.buffer.getvalue().decode("ascii")
    assert "> prepare ..." in text and "ok prepare" in text and "#" in text


def test_durations_and_clocks():
    assert console.format_duration(12.34) == "12.3 s"
    assert console.format_duration(3725) == "1 h 02 min"
    assert console.format_clock(65) == "1:05" and console.format_clock(3725) == "1:02:05"


@pytest.mark.slow
def test_native_stderr_is_captured_and_restored(capfd):
    with console.native_stderr_captured() as captured:
        os.write(2, b"I0000 port.cc:153] a native banner\n")
    os.write(2, b"after the block\n")
    assert captured == ["I0000 port.cc:153] a native banner\n"]
    assert capfd.readouterr().err == "after the block\n"
    with pytest.raises(ValueError), console.native_stderr_captured() as captured:
        os.write(2, b"before the error\n")
        raise ValueError
    assert captured == ["before the error\n"]


def test_the_cli_keeps_library_info_off_the_console(tmp_path):
    """A real job through medgan.main: no absl INFO on stderr, all of it in log.txt; --verbose brings it back."""
    config = tmp_path / "prepare_importing_tensorflow.py"  # as configs/demo.py does, through medgan.study
    prepare = str(REPO / "configs" / "prepare.py")
    config.write_text("import importlib.util\nimport tensorflow\n"
                      f"spec = importlib.util.spec_from_file_location('prepare', {prepare!r})\n"
                      "module = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(module)\n"
                      "get_config = module.get_config\n")
    args = [sys.executable, "-m", "medgan.main", f"--config={config}:source=phantom_mammo,resolution=32",
            "--config.data.phantom_patients=10"]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", console.VERBOSE_ENV)}
    quiet = subprocess.run([*args, f"--workdir={tmp_path}/quiet"], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    info_lines = [line for line in quiet.stderr.splitlines() if line[:1] == "I" and line[1:5].isdigit()]
    assert not info_lines, quiet.stderr[-3000:]
    assert "cpu_feature_guard" not in quiet.stderr and "Downloading and preparing" not in quiet.stdout
    assert "oneDNN" not in quiet.stderr and "absl::InitializeLog" not in quiet.stderr
    log = (tmp_path / "quiet" / "log.txt").read_text()
    assert "medgan job 'prepare'" in log and "tfds: preparing" in log
    loud = subprocess.run([*args, f"--workdir={tmp_path}/loud", "--verbose"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert "medgan job 'prepare'" in loud.stderr


def _count_loop(workdir, num_steps, **kwargs):
    import itertools

    import jax
    import jax.numpy as jnp

    from medgan.train import loop

    step_fn = jax.jit(lambda state, batch: ({"w": state["w"] + 1.0}, {"loss": state["w"]}))
    batch = {"batch": {"image": jnp.zeros((8, 4, 4, 1))}, "stage": 4}  # a GAN's batch: the images one level down
    return loop.train_loop(workdir=workdir, state={"w": jnp.zeros(())}, step_fn=step_fn,
                           make_batches=lambda start: itertools.repeat(batch), num_steps=num_steps,
                           checkpoint_every=100, log_every=5, **kwargs)


def test_the_training_loop_shows_a_bar_and_resumes_it(tmp_path, capsys):
    result = _count_loop(tmp_path / "gan", 20)
    assert result.steps == 20
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 11 and all(line.startswith("train gan  ") for line in lines), lines
    assert "1/20 steps" in lines[0] and "20/20 steps" in lines[-1] and "img/s" in lines[-1]
    _count_loop(tmp_path / "gan", 30, progress_desc="more")  # resumes at 20
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("more  ") and "21/30 steps" in lines[0] and "30/30 steps" in lines[-1]
    _count_loop(tmp_path / "quiet", 5, progress_desc=None)
    assert capsys.readouterr().out == ""
