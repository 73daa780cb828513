"""Performance harness. Results go to BENCHMARKS.md; targets live here, not in tests.

  python launch/bench.py input [--images 1024] [--repeats 5] [--workdir /tmp/medgan-bench]
  python launch/bench.py classifier [--repeats 5]
  python launch/bench.py gan [--steps 3] [--repeats 3] [--memory 256:32,512:16]
  python launch/bench.py all          # the three above; tables and targets into BENCHMARKS.md
  python launch/bench.py audit [--queries 10000] [--references 200000] [--images 50000]

Every result records the CPU model and its vector extensions (AVX2, AVX-512,
AMX): the same code runs 3-4x slower without AVX-512, so figures from two
machines compare only as ratios to their own same-run matmul rate.

`input`: images/s of the streaming pipeline reading prepared shards at 256 and
512 px, against decoding the source files (CheXpert-layout JPEGs, RSNA-layout
DICOMs) directly with the same loaders the prepare stage uses. Every figure is
the median of `--repeats` timed runs in one process, so ratios between rows
are meaningful on a shared, noisy machine.

`gan`: pggan (final stage), cpd (WGAN-GP) and stylegan2 (ADA, lazy R1 every 16
steps, timed over whole R1 periods) at 64 px, global batch 32: images/s of the
D+G step, XLA's FLOPs per step against the same run's matmul FLOP/s, compile
time; then the per-device `memory_analysis()` of the step at 256 px / 32 and
512 px / 16 per device (abstract inputs). `all` times the steps at quarter widths.

`audit`: the exact nearest-neighbour search of the memorisation audit
(cosine, 1,024-d, k = 5, memory-bounded tiles) in query x reference pairs
per second against the same run's matmul rate, and the time of FD, KID and
precision / recall / density / coverage on feature sets of the study's size.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from medgan.models.gans import GAN_MODELS  # noqa: E402
from medgan.provenance import VECTOR_EXTENSIONS, cpu_model  # noqa: E402

TARGETS = {256: 1000.0, 512: 400.0}  # img/s from prepared shards on 2 cores
LOOP_OVERHEAD_TARGET = 0.05  # whole loop vs bare step
# Fraction of the same-run matmul rate each train step should reach (a GAN step: any model).
MATMUL_TARGETS = {"gan": 0.50, "densenet121": 0.40, "densenet_tiny": 0.20}
# `all` times the GAN steps at quarter widths (the default widths cost ~15 TFLOP a step, minutes on a CPU),
# the widths of the side-by-side run against stylegan2-ada-pytorch; memory stays at the default widths.
ALL_GAN_SPEED_WIDTHS = ("--fmap-base", "2048", "--fmap-max", "128")
TABLE_LINES = ("|", "machine:", "matmul", "loop overhead", "  successive", "memory,", "(images/s")
GENERATED_BEGIN = "<!-- launch/bench.py all: generated from here; edits below are overwritten -->"
GENERATED_END = "<!-- launch/bench.py all: end of the generated part -->"


def median_rate(run_once: Callable[[], int], repeats: int) -> tuple[float, list[float]]:
    """Median images/s of `run_once` (which returns how many images it produced)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        count = run_once()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates), rates


def _pipeline_rate(dataset_dir, ids, batch_size, batches, repeats, cache) -> float:
    from medgan.data import pipeline

    ds = pipeline.train_dataset(dataset_dir, ids, batch_size=batch_size, seed=0, cache=cache)
    iterator = pipeline.numpy_batches(ds)
    for _ in range(batches):  # warm-up: fills the cache and tf.data's autotuner
        next(iterator)

    def run_once():
        for _ in range(batches):
            next(iterator)
        return batches * batch_size

    return median_rate(run_once, repeats)[0]


def _global_rate(dataset_dir, ids, batch_size, batches, repeats) -> float:
    """Pipeline plus assembly into a global jax.Array on this process's devices."""
    import jax

    from medgan import sharding
    from medgan.data import pipeline

    mesh = sharding.make_mesh()
    iterator = pipeline.train_batches(dataset_dir, ids, global_batch_size=batch_size, mesh=mesh, seed=0)
    for _ in range(batches):
        jax.block_until_ready(next(iterator))

    def run_once():
        for _ in range(batches):
            jax.block_until_ready(next(iterator)["image"])
        return batches * batch_size

    return median_rate(run_once, repeats)[0]


def _direct_rate(source, records, resolution, repeats) -> float:
    """Decode + resize the source files on a thread pool as wide as the machine."""
    workers = os.cpu_count() or 1

    def run_once():
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for image, _ in pool.map(lambda r: source.load(r, resolution), records):
                assert image.shape[0] == resolution
        return len(records)

    return median_rate(run_once, repeats)[0]


def bench_input(args) -> dict:
    from medgan.data import builders, chexpert, phantoms, rsna_ich

    os.makedirs(args.workdir, exist_ok=True)
    # ~2.4 images per phantom patient; ask for enough patients for --images.
    source = phantoms.PhantomSource("chest", num_patients=max(1, args.images * 10 // 24), seed=0)
    rows = []
    for resolution in (256, 512):
        start = time.perf_counter()
        prepared = builders.prepare(source, resolution, os.path.join(args.workdir, "prepared"))
        prepare_seconds = time.perf_counter() - start
        ids = [r.image_id for r in builders.read_index(prepared.dataset_dir)]
        batches = max(1, len(ids) // args.batch)
        row = {
            "resolution": resolution,
            "images": len(ids),
            "target": TARGETS[resolution],
            "shards_cached": _pipeline_rate(
                prepared.dataset_dir, ids, args.batch, batches, args.repeats, cache=True
            ),
            "shards_uncached": _pipeline_rate(
                prepared.dataset_dir, ids, args.batch, batches, args.repeats, cache=False
            ),
            "shards_global_array": _global_rate(
                prepared.dataset_dir, ids, args.batch, batches, args.repeats
            ),
            "prepare_seconds_first_build": prepare_seconds,
        }
        rows.append(row)

    # Source files as a cohort delivers them: CheXpert JPEGs larger than the
    # target (here 1024 px; the real "small" release is ~390 px, the full one
    # ~2800 px) and RSNA's 512 x 512 DICOMs, a share of them compressed.
    records = source.index()[0][: args.direct_images]
    chexpert_root = os.path.join(args.workdir, "chexpert_layout")
    rsna_root = os.path.join(args.workdir, "rsna_layout")
    if not os.path.exists(os.path.join(chexpert_root, "done")):
        phantoms.write_chexpert_layout(chexpert_root, records, resolution=1024, seed=0)
        open(os.path.join(chexpert_root, "done"), "w").close()
    if not os.path.exists(os.path.join(rsna_root, "done")):
        head_records = phantoms.PhantomSource("head_ct", num_patients=len(records), seed=0).index()[0]
        phantoms.write_rsna_layout(rsna_root, head_records[: args.direct_images], resolution=512, seed=0)
        open(os.path.join(rsna_root, "done"), "w").close()
    chexpert_source = chexpert.CheXpertSource(_chexpert_dataset_dir(chexpert_root))
    rsna_source = rsna_ich.RsnaIchSource(rsna_root)
    chexpert_records = chexpert_source.index()[0]
    rsna_records = rsna_source.index()[0]
    for row in rows:
        row["direct_jpeg_1024"] = _direct_rate(chexpert_source, chexpert_records, row["resolution"], args.repeats)
        row["direct_dicom_512"] = _direct_rate(rsna_source, rsna_records, row["resolution"], args.repeats)
    return {"machine": _machine(), "batch": args.batch, "repeats": args.repeats, "rows": rows}


def matmul_flops_per_second(repeats: int, n: int = 2048) -> float:
    """Median FLOP/s of an n x n float32 matmul: this machine's attainable peak, measured now."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    matmul = jax.jit(lambda x, y: x @ y)
    jax.block_until_ready(matmul(a, a))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(matmul(a, a))
        seconds.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(seconds)


def _classifier_setup(name, resolution, batch, overrides, mesh):
    import jax
    import jax.numpy as jnp

    from medgan import sharding
    from medgan.models import classifiers
    from medgan.train import classifier_step, state as state_lib

    num_classes = 14
    model = classifiers.make_classifier(name, num_classes, **overrides)
    state = state_lib.create_classifier_state(
        model, state_lib.adam(), jax.random.key(0), (1, resolution, resolution, 1), mesh
    )
    train, _ = classifier_step.make_steps(mesh, flip=True)
    data = sharding.batch_sharding(mesh)
    batch = {
        "image": jax.device_put(
            jax.random.uniform(jax.random.key(1), (batch, resolution, resolution, 1), minval=-1, maxval=1), data
        ),
        "labels": jax.device_put(
            (jax.random.uniform(jax.random.key(2), (batch, num_classes)) < 0.3).astype(jnp.float32), data
        ),
    }
    pos_weight = jax.device_put(jnp.ones(num_classes), sharding.replicated(mesh))
    key = jax.device_put(jax.random.key(3), sharding.replicated(mesh))
    return state, train, batch, pos_weight, key


def _bare_steps(train, state, inputs, steps):
    """(state, seconds per step) of `steps` back-to-back `train(state, *inputs)`, one sync at the end."""
    import jax

    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = train(state, *inputs)
    jax.block_until_ready(metrics)
    return state, (time.perf_counter() - start) / steps


def _step_rate(name, resolution, batch, overrides, repeats, steps, mesh) -> dict:
    """Train-step images/s (median of `repeats` runs of `steps` steps) and XLA's FLOPs per step."""
    import jax

    state, train, data, pos_weight, key = _classifier_setup(name, resolution, batch, overrides, mesh)
    compiled = train.lower(state, data, key, pos_weight).compile()
    flops = compiled.cost_analysis()["flops"]
    state, metrics = train(state, data, key, pos_weight)
    jax.block_until_ready(metrics)
    seconds = []
    for _ in range(repeats):
        state, step_time = _bare_steps(train, state, (data, key, pos_weight), steps)
        seconds.append(step_time)
    step_seconds = statistics.median(seconds)
    return {"model": name, "resolution": resolution, "batch": batch, "overrides": overrides,
            "step_seconds": step_seconds, "images_per_second": batch / step_seconds,
            "flops_per_step": flops, "flops_per_second": flops / step_seconds}


def _loop_overhead(repeats: int, steps: int, mesh, workdir: str) -> dict:
    """Seconds per step of the whole train_loop vs the bare jitted step, on the demo classifier.

    The loop run includes everything it owns: checkpoint manager set-up, an
    asynchronous checkpoint every steps/3 steps and at the end, metrics fetched
    and written every steps/12 steps, progress reports. One untimed loop run first
    pays the process's one-time costs (TensorBoard writer, orbax start-up).
    """
    import shutil

    import jax

    from medgan.train import loop

    name, resolution, batch, overrides = DEMO_CLASSIFIER
    state, train, data, pos_weight, key = _classifier_setup(name, resolution, batch, overrides, mesh)

    def batches(start_step):
        while True:
            yield data

    def run_loop(state, directory):
        shutil.rmtree(directory, ignore_errors=True)
        return loop.train_loop(
            workdir=directory, state=state, step_fn=lambda s, b: train(s, b, key, pos_weight),
            make_batches=batches, num_steps=int(state.step) + steps, checkpoint_every=max(1, steps // 3),
            log_every=max(1, steps // 12),
        )

    state = run_loop(state, os.path.join(workdir, "loop_warmup")).state
    bare, whole, steady = [], [], []
    for repeat in range(repeats):
        state, step_time = _bare_steps(train, state, (data, key, pos_weight), steps)
        bare.append(step_time)

        start = time.perf_counter()
        result = run_loop(state, os.path.join(workdir, f"loop_overhead_{repeat}"))
        jax.block_until_ready(result.state.params)
        whole.append((time.perf_counter() - start) / steps)
        steady.append(result.train_seconds / result.timed_steps)
        state = result.state
    bare_s, whole_s, steady_s = statistics.median(bare), statistics.median(whole), statistics.median(steady)
    return {"steps": steps, "bare_step_seconds": bare_s, "loop_step_seconds": whole_s,
            "loop_step_seconds_per_call": whole, "bare_step_seconds_per_call": bare,
            "loop_steady_step_seconds": steady_s, "overhead": whole_s / bare_s - 1,
            "steady_overhead": steady_s / bare_s - 1, "target": LOOP_OVERHEAD_TARGET}


def _memory(name, resolution, per_device_batch, mesh) -> dict:
    """Per-device memory of the compiled train step at `per_device_batch` images per device."""
    import jax

    from medgan import sharding
    from medgan.models import classifiers
    from medgan.train import classifier_step, state as state_lib

    model = classifiers.make_classifier(name, 14, tile_to_rgb=True)
    abstract_state = jax.eval_shape(
        lambda: state_lib.create_classifier_state(
            model, state_lib.adam(), jax.random.key(0), (1, resolution, resolution, 1), mesh
        )
    )
    train, _ = classifier_step.make_steps(mesh, flip=True)
    global_batch = per_device_batch * mesh.size
    data = sharding.batch_sharding(mesh)
    batch = {
        "image": jax.ShapeDtypeStruct((global_batch, resolution, resolution, 1), "float32", sharding=data),
        "labels": jax.ShapeDtypeStruct((global_batch, 14), "float32", sharding=data),
    }
    replicated = sharding.replicated(mesh)
    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=replicated)
    pos_weight = jax.ShapeDtypeStruct((14,), "float32", sharding=replicated)
    stats = train.lower(abstract_state, batch, key, pos_weight).compile().memory_analysis()
    return {"model": name, "resolution": resolution, "per_device_batch": per_device_batch,
            **_memory_gib(stats)}


def _memory_gib(stats) -> dict:
    """GiB fields of a compiled executable's `memory_analysis()`; peak = arguments + outputs - aliased + temp."""
    gib = 1 << 30
    return {"argument_gib": stats.argument_size_in_bytes / gib, "output_gib": stats.output_size_in_bytes / gib,
            "temp_gib": stats.temp_size_in_bytes / gib, "alias_gib": stats.alias_size_in_bytes / gib,
            "peak_gib": (stats.argument_size_in_bytes + stats.output_size_in_bytes
                         - stats.alias_size_in_bytes + stats.temp_size_in_bytes) / gib}


# The demo's classifier (configs/demo.py) and the study's at this CPU's batch size.
DEMO_CLASSIFIER = ("densenet_tiny", 64, 48, {"stem": "imagenet"})
STUDY_CLASSIFIER = ("densenet121", 224, 8, {"tile_to_rgb": True})


def bench_classifier(args) -> dict:
    from medgan import sharding

    mesh = sharding.make_mesh()
    os.makedirs(args.workdir, exist_ok=True)
    peak = matmul_flops_per_second(args.repeats)
    steps = [
        _step_rate(*DEMO_CLASSIFIER, args.repeats, 20, mesh),
        _step_rate(*STUDY_CLASSIFIER, args.repeats, 3, mesh),
    ]
    for row in steps:
        row["fraction_of_matmul"] = row["flops_per_second"] / peak
    return {
        "machine": _machine(),
        "repeats": args.repeats,
        "matmul_flops_per_second": peak,
        "steps": steps,
        "loop": _loop_overhead(args.repeats, 300, mesh, args.workdir),
        "memory": _memory("densenet121", 224, 48, mesh),
    }


def print_classifier_table(result: dict) -> None:
    print(f"machine: {machine_line(result['machine'])}")
    print(f"matmul 2048^2 f32: {result['matmul_flops_per_second'] / 1e9:.1f} GFLOP/s")
    print("| model | px | batch | img/s | GFLOP/step | GFLOP/s | of matmul |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in result["steps"]:
        print(f"| {row['model']} | {row['resolution']} | {row['batch']} | {row['images_per_second']:.1f} | "
              f"{row['flops_per_step'] / 1e9:.2f} | {row['flops_per_second'] / 1e9:.1f} | "
              f"{row['fraction_of_matmul']:.0%} |")
    loop_row = result["loop"]
    print(f"loop overhead over {loop_row['steps']} steps: {loop_row['loop_step_seconds'] * 1e3:.1f} ms/step "
          f"in train_loop (steady state {loop_row['loop_steady_step_seconds'] * 1e3:.1f}) vs "
          f"{loop_row['bare_step_seconds'] * 1e3:.1f} ms bare = {loop_row['overhead']:+.1%} "
          f"(steady {loop_row['steady_overhead']:+.1%}; target < {loop_row['target']:.0%})")
    print("  successive train_loop calls, ms/step: "
          + ", ".join(f"{t * 1e3:.1f}" for t in loop_row["loop_step_seconds_per_call"]))
    memory = result["memory"]
    print(f"memory, {memory['model']} {memory['resolution']} px, {memory['per_device_batch']}/device: "
          f"arguments {memory['argument_gib']:.2f} GiB, temp {memory['temp_gib']:.2f} GiB, "
          f"peak {memory['peak_gib']:.2f} GiB")


GAN_NUM_LABELS = 14  # CheXpert's findings, as the classifier benches use
GAN_SPEED = (64, 32)  # px, global batch
GAN_MEMORY = ((256, 32), (512, 16))  # px, batch per device


def _gan_setup(name, resolution, overrides, r1_interval, global_batch):
    """(spec, hyperparameters, jitted train step) at full widths unless `overrides` says otherwise.

    stylegan2 runs with ADA on and lazy R1 every `r1_interval` steps; pggan / cpd
    with WGAN-GP; the progressive GAN at its final stage (alpha = 1).
    """
    from medgan.models import gans
    from medgan.train import gan_step

    spec = gans.make_gan(name, resolution=resolution, num_labels=GAN_NUM_LABELS, **overrides)
    hp = gan_step.GanHyperparameters(augment=spec.default_augment, r1_interval=r1_interval,
                                     global_batch_size=global_batch)
    return spec, hp


def _gan_step_rate(name, resolution, batch, overrides, repeats, steps, r1_interval, mesh) -> dict:
    """D+G step images/s (median of `repeats` runs of `steps` steps), XLA FLOPs per step, compile time."""
    import jax
    import jax.numpy as jnp

    from medgan import sharding
    from medgan.train import gan_step

    spec, hp = _gan_setup(name, resolution, overrides, r1_interval, batch)
    if spec.loss == "nonsaturating":  # whole lazy-R1 periods, so R1 costs what it costs in training
        steps = -(-steps // r1_interval) * r1_interval
    state = gan_step.create_gan_state(spec, hp, jax.random.key(0), mesh)
    train = gan_step.make_train_step(spec, hp, mesh)
    patterns = [train.regularisers_at(step) for step in range(steps)]
    data = sharding.batch_sharding(mesh)
    inputs = (
        {"image": jax.device_put(jax.random.uniform(
            jax.random.key(1), (batch, resolution, resolution, spec.generator.channels), minval=-1, maxval=1), data),
         "labels": jax.device_put(
            (jax.random.uniform(jax.random.key(2), (batch, GAN_NUM_LABELS)) < 0.3).astype(jnp.float32), data)},
        jax.device_put(jax.random.key(3), sharding.replicated(mesh)),
        np.float32(1.0),
    )
    jax.block_until_ready(state)
    programs, lower_seconds, compile_seconds = {}, 0.0, 0.0
    for pattern in sorted(set(patterns)):  # one program per lazy-regularisation pattern (gan_step.TrainStep)
        start = time.perf_counter()
        lowered = train.jitted(*pattern).lower(state, *inputs)
        lower_seconds += time.perf_counter() - start
        programs[pattern] = lowered.compile()
        compile_seconds += time.perf_counter() - start
    flops = sum(programs[p].cost_analysis()["flops"] for p in patterns) / steps
    for program in programs.values():  # warm-up
        state, metrics = program(state, *inputs)
    jax.block_until_ready(metrics)
    in_order = itertools.cycle([programs[p] for p in patterns])

    def scheduled(state, *args):
        return next(in_order)(state, *args)

    seconds = []
    for _ in range(repeats):
        state, step_time = _bare_steps(scheduled, state, inputs, steps)
        seconds.append(step_time)
    step_seconds = statistics.median(seconds)
    return {"model": name, "resolution": resolution, "batch": batch, "overrides": overrides,
            "steps": steps, "r1_interval": hp.r1_interval if spec.loss == "nonsaturating" else None,
            "augment": hp.augment, "lower_seconds": lower_seconds, "compile_seconds": compile_seconds,
            "step_seconds": step_seconds, "step_seconds_all": seconds, "images_per_second": batch / step_seconds,
            "flops_per_step": flops, "flops_per_second": flops / step_seconds}


def _gan_memory(name, resolution, per_device_batch, overrides, r1_interval, mesh) -> dict:
    """Per-device memory of the compiled D+G step at `per_device_batch` images per device (abstract inputs)."""
    import jax

    from medgan import sharding
    from medgan.train import gan_step

    global_batch = per_device_batch * mesh.size
    spec, hp = _gan_setup(name, resolution, overrides, r1_interval, global_batch)
    abstract_state = jax.eval_shape(lambda: gan_step.create_gan_state(spec, hp, jax.random.key(0), mesh))
    train = gan_step.make_train_step(spec, hp, mesh)
    data, replicated = sharding.batch_sharding(mesh), sharding.replicated(mesh)
    batch = {
        "image": jax.ShapeDtypeStruct(
            (global_batch, resolution, resolution, spec.generator.channels), "float32", sharding=data),
        "labels": jax.ShapeDtypeStruct((global_batch, GAN_NUM_LABELS), "float32", sharding=data),
    }
    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=replicated)
    alpha = jax.ShapeDtypeStruct((), "float32", sharding=replicated)
    start = time.perf_counter()
    peak = None  # the program of the regularisation step (R1's double backward) is the larger one
    for pattern in train.patterns():
        stats = _memory_gib(train.jitted(*pattern).lower(abstract_state, batch, key, alpha).compile().memory_analysis())
        peak = stats if peak is None or stats["peak_gib"] > peak["peak_gib"] else peak
    return {"model": name, "resolution": resolution, "per_device_batch": per_device_batch,
            "compile_seconds": time.perf_counter() - start, **peak}


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    """"256:32,512:16" -> [(256, 32), (512, 16)] (px, batch per device); "" -> []."""
    return [tuple(int(v) for v in item.split(":")) for item in text.split(",") if item]


def bench_gan(args) -> dict:
    import jax.numpy as jnp

    from medgan import sharding

    mesh = sharding.make_mesh()
    os.makedirs(args.workdir, exist_ok=True)
    overrides = {k: v for k, v in (("fmap_base", args.fmap_base), ("fmap_max", args.fmap_max),
                                   ("latent_dim", args.latent_dim)) if v}
    if args.dtype != "float32":
        overrides["dtype"] = jnp.dtype(args.dtype)
    models = args.models.split(",")
    peak = matmul_flops_per_second(args.repeats)
    steps = []
    for name in ([] if args.no_speed else models):
        row = _gan_step_rate(name, args.resolution, args.batch, overrides, args.repeats, args.steps,
                             args.r1_interval, mesh)
        row["fraction_of_matmul"] = row["flops_per_second"] / peak
        steps.append(row)
        print(f"  {name}: {row['images_per_second']:.2f} img/s, {row['flops_per_step'] / 1e9:.1f} GFLOP/step, "
              f"{row['fraction_of_matmul']:.0%} of matmul, compile {row['compile_seconds']:.1f} s", flush=True)
    memory = []
    for resolution, per_device in _parse_sizes(args.memory):
        for name in models:
            row = _gan_memory(name, resolution, per_device, overrides, args.r1_interval, mesh)
            memory.append(row)
            print(f"  memory {name} {resolution} px, {per_device}/device: arguments {row['argument_gib']:.2f}, "
                  f"temp {row['temp_gib']:.2f}, peak {row['peak_gib']:.2f} GiB, "
                  f"compile {row['compile_seconds']:.1f} s", flush=True)
    return {"machine": _machine(), "repeats": args.repeats, "device_count": mesh.size,
            "matmul_flops_per_second": peak, "steps": steps, "memory": memory}


def print_gan_table(result: dict) -> None:
    print(f"machine: {machine_line(result['machine'])}")
    print(f"matmul 2048^2 f32: {result['matmul_flops_per_second'] / 1e9:.1f} GFLOP/s; "
          f"{result['device_count']} device(s)")
    if result["steps"]:
        print("| model | px | batch | steps x repeats | img/s | GFLOP/step | GFLOP/s | of matmul | compile s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in result["steps"]:
        print(f"| {row['model']} | {row['resolution']} | {row['batch']} | {row['steps']} x {result['repeats']} | "
              f"{row['images_per_second']:.2f} | {row['flops_per_step'] / 1e9:.1f} | "
              f"{row['flops_per_second'] / 1e9:.1f} | {row['fraction_of_matmul']:.0%} | "
              f"{row['compile_seconds']:.1f} |")
    if result["memory"]:
        print()
        print("| model | px | batch/device | arguments GiB | outputs GiB | aliased GiB | temp GiB | peak GiB "
              "| compile s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in result["memory"]:
            print(f"| {row['model']} | {row['resolution']} | {row['per_device_batch']} | {row['argument_gib']:.2f} | "
                  f"{row['output_gib']:.2f} | {row['alias_gib']:.2f} | {row['temp_gib']:.2f} | "
                  f"{row['peak_gib']:.2f} | {row['compile_seconds']:.0f} |")


def _chexpert_dataset_dir(root: str) -> str:
    """The folder holding train.csv inside a written CheXpert layout."""
    for dirpath, _, filenames in os.walk(root):
        if "train.csv" in filenames:
            return dirpath
    raise FileNotFoundError(f"no train.csv under {root}")


def machine_line(machine: dict) -> str:
    """One line for a table's header: CPU model, its extensions, cores, jax."""
    extensions = ", ".join(machine.get("vector_extensions", [])) or "none of " + ", ".join(VECTOR_EXTENSIONS)
    return (f"{machine.get('cpu_model', 'unknown CPU')} ({extensions}), {machine.get('cpus')} cores, "
            f"jax {machine.get('jax')}")


def _machine() -> dict:
    import jax
    import tensorflow as tf

    return {
        **cpu_model(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "tensorflow": tf.__version__,
        "devices": [str(d) for d in jax.devices()],
    }


def print_input_table(result: dict) -> None:
    print(f"machine: {machine_line(result['machine'])}")
    print("| px | images | shards, cached | shards, from disk | + global jax.Array | "
          "JPEG 1024 px direct | DICOM 512 px direct | target |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in result["rows"]:
        print(
            f"| {row['resolution']} | {row['images']} | {row['shards_cached']:.0f} | "
            f"{row['shards_uncached']:.0f} | {row['shards_global_array']:.0f} | "
            f"{row['direct_jpeg_1024']:.0f} | {row['direct_dicom_512']:.0f} | {row['target']:.0f} |"
        )
    print("(images/s, median of", result["repeats"], "runs; batch", result["batch"], ")")


def bench_audit(args) -> dict:
    """Seconds of the audit's searches and fidelity metrics on random features of the study's size."""
    from medgan.eval import fidelity
    from medgan.eval.neighbours import nearest_neighbours

    rng = np.random.default_rng(0)
    queries = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    references = rng.normal(size=(args.references, args.dim)).astype(np.float32)
    matmul = matmul_flops_per_second(3)
    nearest_neighbours(queries[:64], references[:4096], 5, reference_tile=args.tile)  # compile
    start = time.perf_counter()
    nearest_neighbours(queries, references, 5, reference_tile=args.tile)
    search = time.perf_counter() - start
    del references
    real = rng.normal(size=(args.images, args.dim)).astype(np.float32)
    synthetic = (rng.normal(size=(args.images, args.dim)) + 0.1).astype(np.float32)

    def seconds(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def fd():
        stats = [fidelity.accumulate(({"image": x[i:i + 1000]} for i in range(0, len(x), 1000)), lambda f: f, args.dim)
                 for x in (real, synthetic)]
        return fidelity.frechet_distance_of(*stats)

    manifold_images = min(args.images, args.manifold_images)
    return {
        "machine": _machine(), "matmul_flops_per_second": matmul, "dim": args.dim, "tile": args.tile,
        "queries": args.queries, "references": args.references, "search_seconds": search,
        "pairs_per_second": args.queries * args.references / search,
        "search_flops_fraction": 2 * args.queries * args.references * args.dim / search / matmul,
        "images": args.images, "fd_seconds": seconds(fd),
        "kid_seconds": seconds(lambda: fidelity.kernel_distance(real, synthetic)),
        "manifold_images": manifold_images,
        "manifold_seconds": seconds(lambda: fidelity.manifold_metrics(real[:manifold_images],
                                                                      synthetic[:manifold_images])),
    }


def print_audit_table(result: dict) -> None:
    print(f"machine: {machine_line(result['machine'])}")
    print(f"matmul 2048^2 f32: {result['matmul_flops_per_second'] / 1e9:.1f} GFLOP/s")
    print("| what | size | seconds | rate |")
    print("|---|---|---:|---:|")
    print(f"| nearest neighbours, cosine, k = 5, tiles of {result['tile']} | {result['queries']:,} x "
          f"{result['references']:,}, {result['dim']}-d | {result['search_seconds']:.1f} | "
          f"{result['pairs_per_second'] / 1e6:.0f} M pairs/s ({result['search_flops_fraction']:.0%} of matmul) |")
    print(f"| FD (moments + matrix square root) | 2 x {result['images']:,}, {result['dim']}-d | "
          f"{result['fd_seconds']:.1f} | |")
    print(f"| KID, 100 subsets of 1,000 | 2 x {result['images']:,}, {result['dim']}-d | "
          f"{result['kid_seconds']:.1f} | |")
    print(f"| precision, recall, density, coverage (k = 3) | 2 x {result['manifold_images']:,}, {result['dim']}-d | "
          f"{result['manifold_seconds']:.1f} | |")


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="bench", required=True)
    input_parser = sub.add_parser("input", help="input pipeline images/s")
    input_parser.add_argument("--images", type=int, default=1024, help="images per prepared dataset")
    input_parser.add_argument("--direct-images", type=int, default=256, help="source files decoded directly")
    input_parser.add_argument("--batch", type=int, default=64)
    input_parser.add_argument("--repeats", type=int, default=5)
    input_parser.add_argument("--workdir", default="/tmp/medgan-bench")
    input_parser.add_argument("--out", default="", help="JSON result path (default <workdir>/input.json)")
    classifier_parser = sub.add_parser("classifier", help="classifier train step, loop overhead, memory")
    classifier_parser.add_argument("--repeats", type=int, default=5)
    classifier_parser.add_argument("--workdir", default="/tmp/medgan-bench")
    classifier_parser.add_argument("--out", default="", help="JSON result path (default <workdir>/classifier.json)")
    all_parser = sub.add_parser("all", help="input, classifier and gan with their defaults, one after another")
    all_parser.add_argument("--workdir", default="/tmp/medgan-bench")
    all_parser.add_argument("--markdown", default=os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "BENCHMARKS.md"), help="file whose generated part gets the tables ('' = none)")
    gan_parser = sub.add_parser("gan", help="GAN D+G step images/s, FLOP/s, compile time; memory at 256/512 px")
    gan_parser.add_argument("--models", default=",".join(GAN_MODELS))
    gan_parser.add_argument("--resolution", type=int, default=GAN_SPEED[0], help="px of the timed steps")
    gan_parser.add_argument("--batch", type=int, default=GAN_SPEED[1], help="global batch of the timed steps")
    gan_parser.add_argument("--steps", type=int, default=3,
                            help="timed steps per repeat (stylegan2: rounded up to whole R1 periods)")
    gan_parser.add_argument("--repeats", type=int, default=3)
    gan_parser.add_argument("--r1-interval", type=int, default=16, help="stylegan2 lazy R1 interval")
    gan_parser.add_argument("--no-speed", action="store_true", help="memory analysis only (compiles, runs nothing)")
    gan_parser.add_argument("--memory", default=",".join(f"{r}:{b}" for r, b in GAN_MEMORY),
                            help="px:batch-per-device list for memory_analysis ('' to skip)")
    gan_parser.add_argument("--fmap-base", type=int, default=0, help="override (smoke runs); 0 = model default")
    gan_parser.add_argument("--fmap-max", type=int, default=0, help="override (smoke runs); 0 = model default")
    gan_parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                            help="compute dtype of G and D (parameters stay float32)")
    gan_parser.add_argument("--latent-dim", type=int, default=0, help="override (smoke runs); 0 = model default")
    gan_parser.add_argument("--workdir", default="/tmp/medgan-bench")
    gan_parser.add_argument("--out", default="", help="JSON result path (default <workdir>/gan.json)")
    audit_parser = sub.add_parser("audit", help="memorisation search pairs/s; FD, KID, precision/recall seconds")
    audit_parser.add_argument("--queries", type=int, default=10_000, help="synthetic images searched")
    audit_parser.add_argument("--references", type=int, default=200_000, help="real training images")
    audit_parser.add_argument("--dim", type=int, default=1024, help="feature dimension (DenseNet-121: 1,024)")
    audit_parser.add_argument("--tile", type=int, default=16384, help="reference rows per tile")
    audit_parser.add_argument("--images", type=int, default=50_000, help="images per set for FD and KID")
    audit_parser.add_argument("--manifold-images", type=int, default=10_000, help="per set, precision/recall")
    audit_parser.add_argument("--workdir", default="/tmp/medgan-bench")
    audit_parser.add_argument("--out", default="", help="JSON result path (default <workdir>/audit.json)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    bench, show = {"all": (None, None), "input": (bench_input, print_input_table),
                   "classifier": (bench_classifier, print_classifier_table),
                   "gan": (bench_gan, print_gan_table), "audit": (bench_audit, print_audit_table)}[args.bench]
    if args.bench == "all":
        run_all(args.workdir, args.markdown)
        return None
    result = bench(args)
    out = args.out or os.path.join(args.workdir, f"{args.bench}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    show(result)
    print(f"result: {out}")
    return result


def run_all(workdir: str, markdown: str) -> None:
    """input, classifier, GAN speed (quarter widths) and GAN memory (default widths); tables into `markdown`."""
    import contextlib
    import io

    start, sections, results = time.perf_counter(), [], {}
    for key, title, argv in (
        ("input", "Input pipeline", ["input"]),
        ("classifier", "Classifier train steps", ["classifier"]),
        ("gan", "GAN D+G steps, 64 px, global batch 32, quarter widths (`" + " ".join(ALL_GAN_SPEED_WIDTHS) + "`)",
         ["gan", "--memory", "", *ALL_GAN_SPEED_WIDTHS]),
        ("gan_memory", "GAN step memory per device, default widths, f32", ["gan", "--no-speed"]),
    ):
        section_start, buffer = time.perf_counter(), io.StringIO()
        with contextlib.redirect_stdout(buffer):  # the tables; progress bars and per-row lines are left out
            results[key] = main([*argv, "--workdir", workdir, "--out", os.path.join(workdir, f"{key}.json")])
        table = "\n".join(line for line in buffer.getvalue().splitlines() if line.startswith(TABLE_LINES))
        sections.append(f"### {title}\n\n{table}\n\n({time.perf_counter() - section_start:.0f} s)")
        print(sections[-1], flush=True)
    verdicts = "\n".join(f"- {line}" for line in targets_met(results))
    text = (f"{GENERATED_BEGIN}\n## `python launch/bench.py all`, {time.strftime('%Y-%m-%d')}\n\n"
            f"Machine: {machine_line(results['input']['machine'])}. Wall time "
            f"{(time.perf_counter() - start) / 60:.0f} min.\n\n**Targets**\n\n{verdicts}\n\n"
            + "\n\n".join(sections) + f"\n{GENERATED_END}\n")
    print(verdicts)
    if markdown:
        replace_generated_part(markdown, text)
        print(f"tables written to {markdown}")


def targets_met(results: dict) -> list[str]:
    """One line per target of `bench.py all`'s results: the figure, the target, met or not."""
    def line(what, value, target, met, unit="of matmul"):
        fmt = (lambda v: f"{v:.0%}") if unit == "of matmul" else (lambda v: f"{v:,.0f} {unit}")
        return f"{what}: {fmt(value)} ({'met' if met else 'not met'}; target ≥ {fmt(target)})"
    lines = [line(f"input {r['resolution']} px from shards", r["shards_uncached"], r["target"],
                  r["shards_uncached"] >= r["target"], "img/s") for r in results["input"]["rows"]]
    for row in results["classifier"]["steps"]:
        target = MATMUL_TARGETS.get(row["model"])
        if target is not None:
            lines.append(line(f"{row['model']} step", row["fraction_of_matmul"], target,
                              row["fraction_of_matmul"] >= target))
    loop_row = results["classifier"]["loop"]
    lines.append(f"train_loop overhead over the bare step: {loop_row['overhead']:+.1%} "
                 f"({'met' if loop_row['overhead'] < loop_row['target'] else 'not met'}; target < "
                 f"{loop_row['target']:.0%})")
    for row in results["gan"]["steps"]:
        lines.append(line(f"{row['model']} step", row["fraction_of_matmul"], MATMUL_TARGETS["gan"],
                          row["fraction_of_matmul"] >= MATMUL_TARGETS["gan"]))
    return lines


def replace_generated_part(path: str, text: str) -> None:
    """Puts `text` (GENERATED_BEGIN ... GENERATED_END) in place of the file's generated part, or appends it."""
    with open(path) as f:
        current = f.read()
    if GENERATED_BEGIN in current:
        head, rest = current.split(GENERATED_BEGIN, 1)
        if GENERATED_END not in rest:
            raise ValueError(f"{path}: {GENERATED_BEGIN!r} without {GENERATED_END!r}; fix the file by hand")
        updated = head + text.rstrip("\n") + rest.split(GENERATED_END, 1)[1]
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    with open(path + ".tmp", "w") as f:
        f.write(updated)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
