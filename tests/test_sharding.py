"""Mesh, shardings and the multi-process start-up decision."""

import jax
import numpy as np
import pytest
from jax.sharding import AxisType, PartitionSpec as P

from medgan import sharding


def test_mesh_has_one_auto_data_axis_over_all_devices():
    mesh = sharding.make_mesh()
    assert mesh.axis_names == ("data",) and mesh.shape == {"data": 8}
    assert mesh.axis_types == (AxisType.Auto,)
    assert set(mesh.devices.flat) == set(jax.devices())
    assert sharding.make_mesh(jax.devices()[:2]).shape == {"data": 2}


def test_batch_sharding_splits_the_leading_axis_and_replicated_copies():
    mesh = sharding.make_mesh()
    batch = jax.device_put(jax.numpy.zeros((16, 3)), sharding.batch_sharding(mesh))
    assert sharding.batch_sharding(mesh).spec == P("data")
    assert [s.data.shape for s in batch.addressable_shards] == [(2, 3)] * 8
    params = jax.device_put(jax.numpy.zeros((4, 3)), sharding.replicated(mesh))
    assert [s.data.shape for s in params.addressable_shards] == [(4, 3)] * 8


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, False),
        ({"SLURM_NTASKS": "4", "SLURM_STEP_NODELIST": "n[1-2]", "SLURM_PROCID": "0"}, True),
        ({"SLURM_NTASKS": "1", "SLURM_STEP_NODELIST": "n1", "SLURM_PROCID": "0"}, False),
        ({"SLURM_NTASKS": "4"}, False),  # an sbatch script outside srun is one process
        ({"OMPI_COMM_WORLD_SIZE": "2"}, True),
        ({"TPU_WORKER_HOSTNAMES": "h0,h1"}, True),
        ({"TPU_WORKER_HOSTNAMES": "h0"}, False),
        ({"TPU_PROCESS_ADDRESSES": "a:1,b:1"}, True),
        ({"MEGASCALE_COORDINATOR_ADDRESS": "h0:8080"}, True),
        ({"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1234"}, True),
        ({"JAX_NUM_PROCESSES": "2"}, True),
        ({"JAX_NUM_PROCESSES": "1"}, False),
    ],
)
def test_multiprocess_environment(environ, expected):
    assert sharding.multiprocess_environment(environ) is expected


def test_initialize_distributed_is_a_no_op_for_one_process(monkeypatch):
    for key in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert sharding.initialize_distributed("auto") is False
    assert sharding.initialize_distributed("off") is False
    with pytest.raises(ValueError, match="mode must be one of"):
        sharding.initialize_distributed("yes")


SLURM_TASK = {"SLURM_STEP_NODELIST": "gpu[01-02]", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NTASKS": "4",
              "SLURM_NODEID": "1", "SLURM_STEP_NUM_NODES": "2"}


@pytest.mark.parametrize("environ, expected", [
    ({**SLURM_TASK, "CUDA_VISIBLE_DEVICES": "1"}, [0]),  # --gpus-per-task=1: the bound GPU is CUDA's 0
    ({**SLURM_TASK, "CUDA_VISIBLE_DEVICES": "0,1,2,3"}, None),  # all GPUs visible: jax's [SLURM_LOCALID]
    (SLURM_TASK, None),
    ({"CUDA_VISIBLE_DEVICES": "2"}, None),  # not a Slurm task: left to jax
])
def test_local_device_ids_follow_slurm_gpu_binding(environ, expected):
    assert sharding.local_device_ids(environ) == expected


def test_a_slurm_task_bound_to_one_gpu_initialises_with_that_gpu(monkeypatch):
    for key in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "JAX_COORDINATOR_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {**SLURM_TASK, "CUDA_VISIBLE_DEVICES": "1"}.items():
        monkeypatch.setenv(key, value)
    calls = []
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: calls.append(kwargs))
    assert sharding.initialize_distributed() is True
    assert calls == [{"local_device_ids": [0]}]


def test_host_map_runs_any_number_of_rows_in_padded_global_batches():
    mesh = sharding.make_mesh()
    rows = np.arange(21, dtype=np.float32).reshape(21, 1)
    seen = []

    def double(batch):
        seen.append(batch.shape)
        return batch * 2

    np.testing.assert_array_equal(sharding.host_map(double, rows, mesh, 8), rows * 2)
    assert seen == [(8, 1)] * 3  # 21 rows: two full batches and one padded
    with pytest.raises(ValueError, match="no rows"):
        sharding.host_map(double, rows[:0], mesh, 8)
