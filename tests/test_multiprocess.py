"""A real 2-process run on localhost: distributed init, 4-device mesh, train and eval streams.

docs/ARCHITECTURE.md ("Devices and sharding"): the same code runs on several processes; each reads its
own slice and the global batch is assembled by jax. Two subprocesses with two
fake CPU devices each talk through the gloo CPU collectives.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # real processes and whole jobs; make test-fast leaves them out

WORKER = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    from medgan.data import folds, pipeline
    from medgan import sharding

    # JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID are in the environment.
    assert sharding.initialize_distributed() and sharding.initialize_distributed()  # idempotent
    dataset_dir, manifest, out = sys.argv[1:]
    fold = folds.read_manifest(manifest)
    mesh = sharding.make_mesh()

    def ids(images, mask=None):
        index = np.rint((np.asarray(images).max(axis=(1, 2, 3)) + 1) * 127.5).astype(int) - 1
        keep = np.ones(len(index), bool) if mask is None else np.asarray(mask)
        return [f"img-{i:04d}" for i, k in zip(index, keep) if k]

    def local_rows(array):  # this process's rows, in global order
        shards = sorted(array.addressable_shards, key=lambda s: s.index[0].start)
        return np.concatenate([s.data for s in shards])

    report = {"process_count": jax.process_count(), "mesh": dict(mesh.shape), "train": [], "eval": []}
    train = pipeline.train_batches(dataset_dir, fold.ids["train"], global_batch_size=8, mesh=mesh, seed=0)
    for _ in range(2):
        batch = next(train)
        report["train"].append({
            "shape": list(batch["image"].shape),
            "local": ids(local_rows(batch["image"])),
            "global": ids(multihost_utils.process_allgather(batch["image"], tiled=True)),
        })
    evaluation = pipeline.EvalBatches(dataset_dir, fold.ids["test"], global_batch_size=4, mesh=mesh)
    report["num_eval_batches"] = len(evaluation)
    for batch in evaluation:
        report["eval"].append({
            "local": ids(local_rows(batch["image"]), local_rows(batch["mask"])),
            "global": ids(*multihost_utils.process_allgather((batch["image"], batch["mask"]), tiled=True)),
        })
    with open(out, "w") as f:
        json.dump(report, f)
    """
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(make_command, timeout=240, cwd=None):
    """Runs make_command(pid) as processes 0 and 1 of one jax cluster (2 CPU devices each)."""
    address = f"127.0.0.1:{_free_port()}"
    procs = []
    for pid in range(2):
        env = dict(
            os.environ,
            XLA_FLAGS="--xla_force_host_platform_device_count=2",
            JAX_PLATFORMS="cpu",
            JAX_COORDINATOR_ADDRESS=address,
            JAX_NUM_PROCESSES="2",
            JAX_PROCESS_ID=str(pid),
        )
        procs.append(
            subprocess.Popen(
                make_command(pid), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout))
    finally:
        for proc in procs:
            proc.kill()
    for pid, (proc, (_, stderr)) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"process {pid} exited with {proc.returncode}:\n{stderr[-5000:]}"
    return [stdout for stdout, _ in outputs]


def test_two_processes_stream_disjoint_slices_into_global_batches(coded_dataset, tmp_path):
    from medgan.data import folds

    prepared, fold = coded_dataset
    manifest = tmp_path / "manifest.json"
    folds.write_manifest(fold, manifest)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run_two_processes(
        lambda pid: [sys.executable, str(script), prepared.dataset_dir, str(manifest), str(tmp_path / f"out{pid}.json")]
    )

    reports = [json.loads((tmp_path / f"out{pid}.json").read_text()) for pid in range(2)]
    assert [r["process_count"] for r in reports] == [2, 2]
    assert [r["mesh"] for r in reports] == [{"data": 4}, {"data": 4}]
    train_split = set(fold.ids["train"])
    for step in range(2):
        a, b = (r["train"][step] for r in reports)
        assert a["shape"] == b["shape"] == [8, 16, 16, 1]
        assert a["global"] == b["global"] == a["local"] + b["local"]  # process 0 owns the first rows
        assert len(a["local"]) == len(b["local"]) == 4
        assert not set(a["local"]) & set(b["local"])
        assert set(a["global"]) <= train_split
    assert reports[0]["num_eval_batches"] == reports[1]["num_eval_batches"] == len(reports[0]["eval"])
    local = [[i for batch in r["eval"] for i in batch["local"]] for r in reports]
    assert not set(local[0]) & set(local[1])
    assert sorted(local[0] + local[1]) == sorted(fold.ids["test"])
    assert [batch["global"] for batch in reports[0]["eval"]] == [batch["global"] for batch in reports[1]["eval"]]


SYNTHESIZE_AGAIN = textwrap.dedent(
    """
    import sys
    from medgan import main
    from medgan.jobs import benchmark
    from medgan.study import sweeps

    config_file, point, workdir, out = sys.argv[1:]
    config = sweeps.load_config_module(config_file).get_config(point)
    main.run_job(benchmark.stage_configs(config, workdir)["synthesize"], out)
    """
)


def test_two_process_benchmark_point_prepares_once_and_writes_one_result(tmp_path):
    """A whole benchmark point (both classifiers, the GAN, synthesis) as a 2-process cluster.

    Process 0 alone prepares and writes; train_gan checks that both processes end
    with the same generator (sharding.check_processes_agree), and 1 process of 4
    devices synthesizes from that generator what the 2 x 2 devices did. The GAN
    itself is not compared with a one-process run: each process streams its own
    share of the fold, so the global batches differ from a single stream by design.
    """
    workdir = tmp_path / "point"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config_file, point = os.path.join(repo, "configs", "demo.py"), "size=tiny,classes=2,per_class=20"
    run_two_processes(
        lambda pid: [sys.executable, "-m", "medgan.main", f"--workdir={workdir}", f"--config={config_file}:{point}"],
        cwd=repo, timeout=600,
    )
    result = json.loads((workdir / "results.json").read_text())
    assert (result["software"]["processes"], result["software"]["devices"]) == (2, 4)
    assert result["gan"]["steps"] == 4 and result["synthetic_images"] == 48  # 2 x (20 train + 4 val)
    assert result["relative_auc"]["mean"] == result["synthetic"]["mean_auc"] / result["real"]["mean_auc"]
    builds = list((workdir / "prepared").rglob("prepare_report.json"))
    assert len(builds) == 1, builds
    assert os.path.getsize(workdir / result["figures"]["real_vs_synthetic"]) > 10_000

    one = tmp_path / "one"
    script = tmp_path / "synthesize_again.py"
    script.write_text(SYNTHESIZE_AGAIN)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    for key in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(key, None)
    subprocess.run([sys.executable, str(script), config_file, point, str(workdir), str(one)], env=env, cwd=repo,
                   check=True, capture_output=True, timeout=600)
    assert _written_files(workdir / "synthetic") == _written_files(one)  # process 1 wrote nothing
    ids_two, images_two, labels_two = _synthetic_images(workdir / "synthetic")
    ids_one, images_one, labels_one = _synthetic_images(one)
    assert list(ids_two) == list(ids_one) and (labels_two == labels_one).all()
    difference = np.abs(images_two.astype(np.float64) - images_one.astype(np.float64))
    assert difference.max() <= 2 / 127.5 + 1e-6  # the same images up to the rounding of float sums


def _synthetic_images(directory):
    from medgan.data import builders, pipeline

    dataset = os.path.join(directory, "dataset")
    ids = sorted(r.image_id for r in builders.read_index(dataset))
    batches = list(pipeline.numpy_batches(pipeline.eval_dataset(dataset, ids, batch_size=len(ids))))
    return batches[0]["image_id"], batches[0]["image"], batches[0]["labels"]


def _written_files(directory):
    """Relative paths of the files medgan writes under `directory`, leaving out per-process logs and
    TensorBoard events."""
    return sorted(
        os.path.relpath(os.path.join(root, name), directory)
        for root, _, names in os.walk(directory) for name in names
        if not name.startswith(("log.", "events.out"))
    )


BARRIER_WORKER = textwrap.dedent(
    """
    import sys, time
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    from medgan import sharding

    assert sharding.initialize_distributed()
    if jax.process_index() == 0:
        time.sleep(float(sys.argv[1]))  # process 0 alone, like preparing a cohort
    sharding.wait_for_processes("work of process 0")
    sharding.wait_for_processes("work of process 0")  # a name may be used again
    total = multihost_utils.process_allgather(np.array([jax.process_index() + 1]))
    print("sum of process numbers:", int(total.sum()))
    sharding.check_processes_agree("00ff" * 16, "the same weights")
    try:
        sharding.check_processes_agree(f"{jax.process_index():064x}", "drifted weights")
    except sharding.ProcessesDisagree as error:
        print("disagreement found:", error)
    """
)


def test_processes_wait_for_process_zero_longer_than_a_first_collective_would(tmp_path):
    """Process 0 works alone for longer than gloo's 30 s context initialisation; the others must wait.

    Then both check a digest they agree on (passes) and one they do not (ProcessesDisagree on both).
    """
    script = tmp_path / "barrier_worker.py"
    script.write_text(BARRIER_WORKER)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outputs = run_two_processes(lambda pid: [sys.executable, str(script), "35"], cwd=repo, timeout=180)
    for out in outputs:  # gloo prints its own lines to stdout too
        assert "sum of process numbers: 3" in out.splitlines(), out
        assert "disagreement found: drifted weights: processes [1] hold other values than process 0" in out, out
        assert out.count("disagreement found") == 1, out
