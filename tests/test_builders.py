"""Prepared shards: content, unreadable images, idempotence, fingerprints, index."""

import json
import random
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import CodedSource, coded_labels, decode_index

from medgan.data import builders
from medgan.data.records import ImageRecord


def _read_all(prepared):
    ds = prepared.builder().as_dataset(split=builders.SPLIT, shuffle_files=False)
    return list(ds.as_numpy_iterator())


def test_prepare_writes_every_image_with_its_labels_and_ids(tmp_path):
    source = CodedSource(num_images=30)
    prepared = builders.prepare(source, 16, tmp_path)

    assert (prepared.num_indexed, prepared.num_written, prepared.num_skipped) == (30, 30, 0)
    assert (prepared.resolution, prepared.channels, prepared.class_names) == (16, 1, CodedSource.class_names)
    assert prepared.name == "medgan_prepared/" + "/".join(Path(prepared.dataset_dir).parts[-2:])
    examples = _read_all(prepared)
    assert len(examples) == 30
    for ex in examples:
        index, mirrored = decode_index(ex["image"])
        assert ex["image_id"].decode() == f"img-{index:04d}" and not mirrored
        assert ex["image"].shape == (16, 16, 1) and ex["image"].dtype == np.uint8
        np.testing.assert_array_equal(ex["image"], source.load(ImageRecord(f"img-{index:04d}", "", ()), 16)[0])
        assert tuple(ex["labels"]) == coded_labels(index)
        assert ex["patient_id"].decode() == f"pat-{index // 3:03d}"
        assert ex["source"].decode() == "coded"


def test_three_channel_images_round_trip(tmp_path):
    prepared = builders.prepare(CodedSource(num_images=5, channels=3), 8, tmp_path)
    for ex in _read_all(prepared):
        assert ex["image"].shape == (8, 8, 3)
        index, _ = decode_index(ex["image"])
        assert (ex["image"][:, :4] == index + 1).all() and (ex["image"][:, 4:] == 0).all()


def test_unreadable_images_are_skipped_counted_and_reported(tmp_path):
    prepared = builders.prepare(CodedSource(num_images=20, unreadable=(3, 11), dropped_lateral=4), 16, tmp_path)

    assert (prepared.num_indexed, prepared.num_written, prepared.num_skipped) == (20, 18, 2)
    report = json.loads((Path(prepared.dataset_dir) / builders.REPORT_FILE).read_text())
    assert report["counts"] == {"indexed": 20, "written": 18, "skipped": 2}
    assert report["dropped_by_rule"] == {"lateral": 4}
    assert report["skipped"] == [
        {"image_id": "img-0003", "path": "images/0003.png", "error": "truncated file images/0003.png"},
        {"image_id": "img-0011", "path": "images/0011.png", "error": "truncated file images/0011.png"},
    ]
    # Public attributes other than the protocol's are the source's parameters.
    assert report["source_params"] == {
        "dropped_lateral": 4,
        "images_per_patient": 3,
        "num_images": 20,
        "unreadable": [3, 11],
    }
    written = {ex["image_id"].decode() for ex in _read_all(prepared)}
    assert written == {f"img-{i:04d}" for i in range(20)} - {"img-0003", "img-0011"}


def test_all_unreadable_is_an_error_and_leaves_no_dataset(tmp_path):
    with pytest.raises(builders.AllImagesUnreadable, match=r"all 4 indexed images are unreadable, e\.g\. img-0000"):
        builders.prepare(CodedSource(num_images=4, unreadable=range(4)), 16, tmp_path)
    assert not list(tmp_path.rglob(builders.FORMAT_VERSION))  # no dataset directory
    assert not [p for p in tmp_path.rglob("*") if "incomplete" in p.name]


def test_fewer_images_than_the_kept_share_is_an_error_naming_the_first(tmp_path):
    from medgan.data.records import TooFewKept

    source = CodedSource(num_images=8, unreadable=range(5))
    with pytest.raises(TooFewKept, match=r"5 of 8 indexed images are unreadable, leaving 3, below "
                                         r"data\.min_kept_share=0\.5 .* The first: img-0000 \(images/0000\.png\)"):
        builders.prepare(source, 16, tmp_path, min_kept_share=0.5)
    assert not list(tmp_path.rglob(builders.REPORT_FILE))
    assert builders.prepare(source, 16, tmp_path, min_kept_share=0.25).num_written == 3


def test_second_prepare_is_a_no_op(tmp_path):
    first = builders.prepare(CodedSource(num_images=12), 16, tmp_path)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    time.sleep(0.01)

    again = CodedSource(num_images=12)
    second = builders.prepare(again, 16, tmp_path)

    assert again.load_calls == 0
    assert second == first
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == files
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == before


def test_any_change_of_request_gets_its_own_dataset(tmp_path):
    base = builders.prepare(CodedSource(num_images=6), 16, tmp_path).dataset_dir
    assert builders.prepare(CodedSource(num_images=6), 16, tmp_path).dataset_dir == base
    others = [
        builders.prepare(CodedSource(num_images=7), 16, tmp_path).dataset_dir,  # index differs
        builders.prepare(CodedSource(num_images=6), 8, tmp_path).dataset_dir,  # resolution
        builders.prepare(CodedSource(num_images=6, dropped_lateral=1), 16, tmp_path).dataset_dir,  # drop counts
        builders.prepare(CodedSource(num_images=6, images_per_patient=2), 16, tmp_path).dataset_dir,  # patients
    ]
    assert len({base, *others}) == 5
    assert all(Path(d).parent.name.startswith("coded_") for d in others)


def test_read_index_equals_source_index_in_shard_order(tmp_path):
    source = CodedSource(num_images=25, unreadable=(7,))
    prepared = builders.prepare(source, 16, tmp_path)

    expected = [r for r in source.index()[0] if r.image_id != "img-0007"]
    assert builders.read_index(prepared.dataset_dir) == expected
    assert [ex["image_id"].decode() for ex in _read_all(prepared)] == [r.image_id for r in expected]
    assert builders.load_prepared(prepared.dataset_dir) == prepared


def test_loader_returning_a_wrong_image_names_the_image(tmp_path):
    class WrongShape(CodedSource):
        def load(self, record, resolution):
            image, patient = super().load(record, resolution)
            return image[:, :, 0], patient

    with pytest.raises(ValueError, match=r"load\('img-0000'\) returned uint8 \[16, 16\], expected uint8 \[16, 16, 1\]"):
        builders.prepare(WrongShape(num_images=3), 16, tmp_path)


def test_duplicate_image_ids_are_rejected(tmp_path):
    class Duplicates(CodedSource):
        def index(self):
            records, dropped = super().index()
            return records + records[:1], dropped

    with pytest.raises(ValueError, match="img-0000.*twice"):
        builders.prepare(Duplicates(num_images=3), 16, tmp_path)


def test_ordered_thread_map_keeps_order_with_bounded_lookahead():
    started = []

    def slow_square(x):
        started.append(x)
        time.sleep(random.uniform(0, 0.003))
        return x * x

    out = []
    for x, y in builders.ordered_thread_map(slow_square, range(60), workers=4, window=6):
        assert max(started) <= x + 5  # never more than `window` items ahead of the consumer
        out.append((x, y))
    assert out == [(x, x * x) for x in range(60)]


def test_phantom_source_prepares(tmp_path):
    phantoms = pytest.importorskip("medgan.data.phantoms")
    source = phantoms.PhantomSource("chest", num_patients=3, seed=0)
    prepared = builders.prepare(source, 32, tmp_path)

    records, _ = source.index()
    assert prepared.num_written == len(records) and prepared.num_skipped == 0
    assert builders.read_index(prepared.dataset_dir) == records
    assert Path(prepared.dataset_dir).parent.name.startswith("phantom_chest_32px_")
    for ex in _read_all(prepared):
        assert ex["image"].shape == (32, 32, source.channels) and ex["image"].std() > 0
