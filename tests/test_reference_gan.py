"""launch/reference_gan.py skips cleanly (exit 0, one line) without torch or without the reference checkout."""

import importlib.util
import os
import subprocess
import sys

import pytest

_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "launch", "reference_gan.py")


def _run(*args):
    return subprocess.run([sys.executable, _SCRIPT, *args], capture_output=True, text=True, timeout=60)


def test_a_folder_that_is_not_the_reference_checkout_is_skipped(tmp_path):
    out = _run("--repo", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("reference_gan: skipped (") and "training/networks.py" in out.stdout
    assert len(out.stdout.strip().splitlines()) == 1


def test_without_torch_it_is_skipped_even_with_a_checkout(tmp_path):
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is importable here: the script would run the benchmark")
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "networks.py").write_text("")
    out = _run("--repo", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("reference_gan: skipped (no torch") and out.stdout.count("\n") == 1
