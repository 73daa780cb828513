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


def _results(gan_fraction, densenet_fraction, shards_per_second):
    return {
        "input": {"rows": [{"resolution": 256, "shards_uncached": shards_per_second, "target": 1000.0}]},
        "classifier": {"steps": [{"model": "densenet121", "fraction_of_matmul": densenet_fraction},
                                 {"model": "densenet_tiny", "fraction_of_matmul": 0.25}],
                       "loop": {"overhead": 0.08, "target": 0.05}},
        "gan": {"steps": [{"model": "stylegan2", "fraction_of_matmul": gan_fraction}]},
    }


def test_every_target_gets_a_line_saying_met_or_not(bench):
    lines = bench.targets_met(_results(gan_fraction=0.5, densenet_fraction=0.39, shards_per_second=1500.0))
    assert lines == [
        "input 256 px from shards: 1,500 img/s (met; target ≥ 1,000 img/s)",
        "densenet121 step: 39% (not met; target ≥ 40%)",
        "densenet_tiny step: 25% (met; target ≥ 20%)",
        "train_loop overhead over the bare step: +8.0% (not met; target < 5%)",
        "stylegan2 step: 50% (met; target ≥ 50%)",
    ]


def test_the_generated_part_is_replaced_and_the_rest_of_the_file_kept(bench, tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nhand-written\n")
    block = lambda body: f"{bench.GENERATED_BEGIN}\n{body}\n{bench.GENERATED_END}\n"  # noqa: E731
    bench.replace_generated_part(str(path), block("first"))
    assert path.read_text() == "# Benchmarks\n\nhand-written\n\n" + block("first")
    path.write_text(path.read_text() + "\n## after\n")
    bench.replace_generated_part(str(path), block("second"))
    assert path.read_text() == "# Benchmarks\n\nhand-written\n\n" + block("second") + "\n## after\n"
    path.write_text(f"{bench.GENERATED_BEGIN}\nno end\n")
    with pytest.raises(ValueError, match="without"):
        bench.replace_generated_part(str(path), block("third"))
    assert not (tmp_path / "BENCHMARKS.md.tmp").exists()


def test_the_audit_benchmark_runs_at_a_tiny_size_and_prints_its_table(bench, tmp_path, capsys):
    result = bench.main(["audit", "--queries", "40", "--references", "300", "--dim", "16", "--tile", "64",
                         "--images", "200", "--manifold-images", "100", "--workdir", str(tmp_path)])
    assert result["pairs_per_second"] > 0 and result["search_seconds"] > 0
    assert all(result[key] > 0 for key in ("fd_seconds", "kid_seconds", "manifold_seconds"))
    assert (tmp_path / "audit.json").exists()
    assert "| nearest neighbours, cosine, k = 5, tiles of 64 | 40 x 300, 16-d |" in capsys.readouterr().out
