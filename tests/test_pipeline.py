"""Input pipeline: per-process slices, global sharded batches, eval padding, flips."""

import collections
import itertools

import jax
import numpy as np
import pytest
from helpers import coded_labels, decode_index

from medgan import sharding
from medgan.data import builders, pipeline


def _ids(batch):
    return [i.decode() for i, m in zip(batch["image_id"], batch.get("mask", [True] * len(batch["image_id"]))) if m]


def test_shares_are_balanced_over_processes_and_label_combinations(coded_dataset):
    prepared, fold = coded_dataset
    split = fold.ids["train"]  # 8 images of each of 3 combinations
    labels = {r.image_id: r.labels for r in builders.read_index(prepared.dataset_dir)}
    for process_count in (1, 2, 3, 5):
        owner = pipeline.assign_processes(prepared.dataset_dir, split, process_count)
        assert set(owner) == set(split)
        sizes = collections.Counter(owner.values())
        assert max(sizes.values()) - min(sizes.values()) <= 1 and len(sizes) == process_count
        for combination in fold.combinations:
            shares = collections.Counter(p for i, p in owner.items() if labels[i] == combination)
            assert max(shares.values()) - min(shares[p] for p in range(process_count)) <= 1


@pytest.mark.parametrize("process_count", [1, 2, 3])
def test_process_slices_are_disjoint_cover_the_split_and_agree_on_eval_batches(coded_dataset, process_count):
    prepared, fold = coded_dataset
    split = fold.ids["train"]
    owner = pipeline.assign_processes(prepared.dataset_dir, split, process_count)
    counts = [sum(1 for p in owner.values() if p == q) for q in range(process_count)]
    seen, num_batches = [], set()
    for p in range(process_count):
        ds = pipeline.eval_dataset(
            prepared.dataset_dir, split, batch_size=4, process_index=p, process_count=process_count
        )
        batches = list(pipeline.numpy_batches(ds))
        ids = [i for b in batches for i in _ids(b)]
        assert len(ids) == counts[p] and len(batches) == ds.cardinality()
        num_batches.add(len(batches))
        seen.append(set(ids))
        # The training stream of this process draws from the same slice.
        train = pipeline.train_dataset(
            prepared.dataset_dir, split, batch_size=4, seed=0, process_index=p, process_count=process_count
        )
        drawn = {i for b in itertools.islice(pipeline.numpy_batches(train), 10) for i in _ids(b)}
        assert drawn <= set(ids)
    assert num_batches == {-(-max(counts) // 4)}
    assert sum(len(s) for s in seen) == len(set().union(*seen)) == len(split)
    assert set().union(*seen) == set(split)


def test_train_batches_are_global_arrays_sharded_over_data_with_matching_labels(coded_dataset):
    prepared, fold = coded_dataset
    mesh = sharding.make_mesh()
    assert mesh.shape == {"data": 8}
    batches = pipeline.train_batches(prepared.dataset_dir, fold.ids["train"], global_batch_size=16, mesh=mesh, seed=0)
    split = set(fold.ids["train"])
    for batch in itertools.islice(batches, 3):
        assert set(batch) == {"image", "labels"}
        for key, shape in (("image", (16, 16, 16, 1)), ("labels", (16, 4))):
            array = batch[key]
            assert isinstance(array, jax.Array) and array.shape == shape and array.dtype == np.float32
            assert array.sharding == sharding.batch_sharding(mesh)
            assert [s.data.shape[0] for s in array.addressable_shards] == [2] * 8
        images, labels = np.asarray(batch["image"]), np.asarray(batch["labels"])
        for image, label in zip(images, labels):
            index, _ = decode_index(image)
            assert f"img-{index:04d}" in split
            assert tuple(label.astype(int)) == coded_labels(index)


def test_train_epochs_are_seeded_permutations_of_the_split(coded_dataset):
    prepared, fold = coded_dataset
    split = fold.ids["train"]  # 24 images = 3 batches of 8

    def first_epochs(seed):
        ds = pipeline.train_dataset(prepared.dataset_dir, split, batch_size=8, seed=seed)
        ids = [i for b in itertools.islice(pipeline.numpy_batches(ds), 6) for i in _ids(b)]
        return ids[:24], ids[24:]

    epoch1, epoch2 = first_epochs(seed=1)
    assert sorted(epoch1) == sorted(epoch2) == sorted(split)
    assert epoch1 != epoch2  # reshuffled every epoch
    assert first_epochs(seed=1) == (epoch1, epoch2)
    assert first_epochs(seed=2)[0] != epoch1


@pytest.mark.parametrize("start_step", [1, 4])
def test_a_resumed_stream_continues_with_the_same_batches_and_flips(coded_dataset, start_step):
    prepared, fold = coded_dataset
    split = fold.ids["train"]  # 24 images: batch 4 of 8 lies in the second epoch
    kwargs = dict(batch_size=8, seed=3, flip=True)
    full = list(
        itertools.islice(pipeline.numpy_batches(pipeline.train_dataset(prepared.dataset_dir, split, **kwargs)), 6)
    )
    resumed = pipeline.train_dataset(prepared.dataset_dir, split, start_step=start_step, **kwargs)
    for expected, got in zip(full[start_step:], itertools.islice(pipeline.numpy_batches(resumed), 6 - start_step)):
        assert _ids(got) == _ids(expected)
        np.testing.assert_array_equal(got["image"], expected["image"])  # same flips
        np.testing.assert_array_equal(got["labels"], expected["labels"])
    with pytest.raises(ValueError, match="start_step"):
        pipeline.train_dataset(prepared.dataset_dir, split, start_step=-1, **kwargs)


def test_global_train_batches_resume_at_a_step(coded_dataset):
    prepared, fold = coded_dataset
    mesh = sharding.make_mesh()
    kwargs = dict(global_batch_size=16, mesh=mesh, seed=0, flip=True)
    full = list(itertools.islice(pipeline.train_batches(prepared.dataset_dir, fold.ids["train"], **kwargs), 3))
    resumed = next(pipeline.train_batches(prepared.dataset_dir, fold.ids["train"], start_step=2, **kwargs))
    np.testing.assert_array_equal(np.asarray(resumed["image"]), np.asarray(full[2]["image"]))


def test_eval_pass_covers_each_image_once_with_a_mask_and_repeats(coded_dataset):
    prepared, fold = coded_dataset
    mesh = sharding.make_mesh()
    split = fold.ids["val"]  # 3 images: one batch of 16, 13 of them padding
    evaluation = pipeline.EvalBatches(prepared.dataset_dir, split, global_batch_size=16, mesh=mesh)
    assert len(evaluation) == 1

    def one_pass():
        ids, padding = [], 0
        for batch in evaluation:
            assert batch["mask"].dtype == bool and batch["mask"].sharding == sharding.batch_sharding(mesh)
            for image, label, keep in zip(*(np.asarray(batch[k]) for k in ("image", "labels", "mask"))):
                if keep:
                    index, _ = decode_index(image)
                    assert tuple(label.astype(int)) == coded_labels(index)
                    ids.append(f"img-{index:04d}")
                else:
                    padding += 1
                    assert (image == -1).all() and not label.any()
        return ids, padding

    ids, padding = one_pass()
    assert sorted(ids) == sorted(split) and len(ids) == len(set(ids))
    assert padding == 16 - len(split)
    assert one_pass() == (ids, padding)  # the second pass (from the cache) is the same


def test_images_are_scaled_exactly_to_minus_one_one(coded_dataset):
    prepared, fold = coded_dataset
    ds = pipeline.eval_dataset(prepared.dataset_dir, fold.ids["train"], batch_size=8)
    for batch in pipeline.numpy_batches(ds):
        images = batch["image"]
        assert images.dtype == np.float32 and images.min() >= -1.0 and images.max() <= 1.0
        for image, image_id in zip(images, batch["image_id"]):
            index = int(image_id.decode().split("-")[1])
            np.testing.assert_array_equal(image[:, :8], np.float32(index + 1) / np.float32(127.5) - np.float32(1))
            np.testing.assert_array_equal(image[:, 8:], -1.0)


def _orientations(coded_dataset, seed, flip):
    prepared, fold = coded_dataset
    ds = pipeline.train_dataset(prepared.dataset_dir, fold.ids["train"], batch_size=8, seed=seed, flip=flip)
    out = []
    for batch in itertools.islice(pipeline.numpy_batches(ds), 8):
        for image, image_id in zip(batch["image"], batch["image_id"]):
            index, mirrored = decode_index(image)
            assert f"img-{index:04d}" == image_id.decode()  # flipping keeps the image's identity
            out.append((index, mirrored))
    return out


def test_flips_only_when_enabled_and_deterministic_for_a_seed(coded_dataset):
    plain = _orientations(coded_dataset, seed=5, flip=False)
    assert not any(m for _, m in plain)
    flipped = _orientations(coded_dataset, seed=5, flip=True)
    assert [i for i, _ in flipped] == [i for i, _ in plain]  # flips do not change the order
    mirrored = sum(m for _, m in flipped)
    assert 0.3 * len(flipped) < mirrored < 0.7 * len(flipped)
    assert _orientations(coded_dataset, seed=5, flip=True) == flipped
    assert [m for _, m in _orientations(coded_dataset, seed=6, flip=True)] != [m for _, m in flipped]


def test_global_batch_must_divide_over_devices():
    mesh = sharding.make_mesh()
    assert pipeline.local_batch_size(16, mesh) == 16
    with pytest.raises(ValueError, match="global batch size 12 is not divisible by the 8 devices"):
        pipeline.local_batch_size(12, mesh)


def test_ids_missing_from_the_dataset_are_named(coded_dataset):
    prepared, fold = coded_dataset
    with pytest.raises(ValueError, match=r"1 of 3 fold image ids are not in the prepared dataset .*'img-9999'"):
        pipeline.assign_processes(prepared.dataset_dir, [*fold.ids["val"][:2], "img-9999"], 2)
