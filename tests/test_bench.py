"""launch/bench.py's machine record: every figure carries the CPU model and its vector extensions."""

import importlib.util
import os

import pytest

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "launch", "bench.py")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cpu_model_and_its_vector_extensions_are_read_from_cpuinfo(bench):
    machine = bench.cpu_model()
    assert set(machine) == {"cpu_model", "vector_extensions"}
    assert set(machine["vector_extensions"]) <= set(bench.VECTOR_EXTENSIONS)
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            text = f.read()
        assert machine["cpu_model"] != "unknown" and machine["cpu_model"] in text
        assert ("avx2" in machine["vector_extensions"]) == (" avx2" in text)


def test_the_machine_line_names_the_model_and_says_when_no_extension_is_there(bench):
    line = bench.machine_line({"cpu_model": "AMD EPYC", "vector_extensions": ["avx2", "fma"], "cpus": 2,
                               "jax": "0.10.2"})
    assert line == "AMD EPYC (avx2, fma), 2 cores, jax 0.10.2"
    assert "none of avx2" in bench.machine_line({"cpu_model": "old", "vector_extensions": [], "cpus": 1, "jax": "x"})
