"""Prepared shards: any `Source` at one resolution as a tfds dataset, built once.

docs/ARCHITECTURE.md ("Data flow"): raw cohorts are decoded, windowed and resized once
into prepared shards, one dataset per source × resolution; every later stage
(folds, the tf.data pipeline, evaluation) reads those shards and never the raw
files again.

Layout: `<data_dir>/medgan_prepared/<source>_<R>px_<fingerprint>/<version>/`
holds the TFRecord shards and tfds metadata plus two medgan files written in the
same atomic step (tfds builds into a temporary directory and renames it when
generation succeeds):

* `index.json`: image_id, patient_id, labels and path of every written image,
  in shard order, so folds can be drawn without reading a single pixel;
* `prepare_report.json`: what was indexed, written and skipped (with the error
  of every unreadable image) and the rows the source dropped by rule.

The fingerprint hashes everything that determines the images: the source's
name, class names, channels and public scalar attributes (constructor
parameters such as num_patients, seed, policy, windows, root), the resolution,
the full index and its drop counts, and `FORMAT_VERSION`. A different request
therefore never reuses a stale dataset, and an identical one reuses the
finished dataset without calling the source's `load` again.

Records per image:
  image       uint8 [R, R, C], PNG (lossless; JPEG artefacts would become
              features a GAN learns and a classifier exploits)
  labels      uint8 [K] multi-hot, K = len(class_names)
  image_id, patient_id, source   text
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from medgan import console, fileio
from medgan.data.records import ImageRecord, TooFewKept, UnreadableImage
from medgan.data.sources import Source

# Bump when the record layout or the meaning of a field changes: old datasets
# then live on under their old version directory and are not read by new code.
FORMAT_VERSION = "1.0.0"
SPLIT = "images"  # the single tfds split; folds select from it by image id
INDEX_FILE = "index.json"
REPORT_FILE = "prepare_report.json"
# zlib's default level. Measured with tf.io.decode_png on noisy 512 px phantom
# radiographs: level 1 is 12% larger and decodes 25% slower (156 vs 175 KB,
# 460 vs 360 images/s per core); level 0 decodes 2x faster but is 1.7x larger.
_PNG_COMPRESS_LEVEL = 6
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
_SCALARS = (str, int, float, bool, type(None))


class AllImagesUnreadable(TooFewKept):
    """Every image of a source failed to load: a wrong root or missing decoder, not bad luck."""


@dataclasses.dataclass(frozen=True)
class PreparedDataset:
    """A finished prepared dataset, as later stages see it.

    Attributes:
      name: "medgan_prepared/<config>/<version>", recorded in fold manifests.
      dataset_dir: the directory with shards, index.json and prepare_report.json.
      class_names: names of the K label positions.
      resolution: R of the [R, R, C] images.
      channels: C.
      num_indexed / num_written / num_skipped: images the source listed, that
        are in the shards, and that were unreadable (indexed = written + skipped).
    """

    name: str
    dataset_dir: str
    class_names: tuple[str, ...]
    resolution: int
    channels: int
    num_indexed: int
    num_written: int
    num_skipped: int

    def builder(self) -> tfds.core.DatasetBuilder:
        """A reader for the shards that needs no `Source` (works in any process)."""
        return tfds.builder_from_directory(self.dataset_dir)


class MedganPrepared(tfds.core.GeneratorBasedBuilder):
    """Writes one `Source` at one resolution; use `prepare`, not this class directly."""

    VERSION = tfds.core.Version(FORMAT_VERSION)
    RELEASE_NOTES = {FORMAT_VERSION: "PNG image, uint8 multi-hot labels, image/patient ids, source."}
    # Download checksums: none, nothing is downloaded. tfds 4.9.10 looks them up
    # next to `code_path`, which imports `importlib_resources`, a module tfds
    # uses but no longer declares (tensorflow/datasets#11212).
    url_infos = None

    def __init__(
        self,
        *,
        source: Source,
        resolution: int,
        records: Sequence[ImageRecord],
        dropped: Mapping[str, int],
        data_dir: str | os.PathLike,
        load_workers: int,
        progress: bool = True,
        min_kept_share: float = 0.0,
    ):
        self._min_kept_share = min_kept_share
        self._source = source
        self._resolution = resolution
        self._records = list(records)
        self._dropped = dict(dropped)
        self._load_workers = load_workers
        self._progress = progress
        self._params = source_params(source)
        config = tfds.core.BuilderConfig(
            name=f"{source.name}_{resolution}px_{self._fingerprint()}",
            version=FORMAT_VERSION,
            description=f"{source.name} at {resolution}x{resolution}, parameters {self._params}",
        )
        super().__init__(data_dir=os.fspath(data_dir), config=config)

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        header = {
            "format": FORMAT_VERSION,
            "name": self._source.name,
            "class_names": list(self._source.class_names),
            "channels": self._source.channels,
            "params": self._params,
            "resolution": self._resolution,
            "dropped": self._dropped,
        }
        digest.update(json.dumps(header, sort_keys=True).encode())
        for r in self._records:
            digest.update(json.dumps([r.image_id, r.patient_id, list(r.labels), r.path]).encode())
        return digest.hexdigest()[:16]

    def _info(self) -> tfds.core.DatasetInfo:
        r, c = self._resolution, self._source.channels
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"medgan prepared shards of {self._source.name}: class names {self._source.class_names}",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(r, r, c), dtype=np.uint8, encoding_format="png"),
                    "labels": tfds.features.Tensor(shape=(len(self._source.class_names),), dtype=np.uint8),
                    "image_id": tfds.features.Text(),
                    "patient_id": tfds.features.Text(),
                    "source": tfds.features.Text(),
                }
            ),
            # Shards keep the index order, so index.json is also the read order.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: the source reads its own files
        return {SPLIT: self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Loads images on a thread pool, in index order; skips and reports unreadable ones.

        The index and the report are written into the (still temporary) dataset
        directory once the last example is generated, so they appear atomically
        with the shards.
        """
        written: list[ImageRecord] = []
        skipped: list[dict[str, str | None]] = []
        load = _PngLoader(self._source, self._resolution)
        window = 4 * self._load_workers
        progress = console.Progress(len(self._records), f"prepare {self._source.name} {self._resolution} px",
                                    unit="images") if self._progress else None
        for done, (record, outcome) in enumerate(
            ordered_thread_map(load, self._records, self._load_workers, window), start=1
        ):
            if progress is not None:
                progress.update(done)
            if isinstance(outcome, UnreadableImage):
                skipped.append({"image_id": record.image_id, "path": record.path, "error": str(outcome)})
                continue
            png, patient_id = outcome
            written.append(dataclasses.replace(record, patient_id=patient_id))
            yield record.image_id, {
                "image": png,
                "labels": np.asarray(record.labels, np.uint8),
                "image_id": record.image_id,
                "patient_id": patient_id,
                "source": self._source.name,
            }
        if progress is not None:
            progress.close()
        if not written or len(written) < self._min_kept_share * len(self._records):
            first = "; ".join(f"{s['image_id']} ({s['path']}): {s['error']}" for s in skipped[:3])
            dropped = ", ".join(f"{reason} {n}" for reason, n in self._dropped.items() if n) or "none"
            if not written:
                raise AllImagesUnreadable(
                    f"{self._source.name}: all {len(skipped)} indexed images are unreadable, e.g. {first}. "
                    f"Rows dropped by rule before: {dropped}"
                )
            raise TooFewKept(
                f"{self._source.name}: {len(skipped)} of {len(self._records)} indexed images are unreadable, "
                f"leaving {len(written)}, below data.min_kept_share={self._min_kept_share:g} (lower it to accept "
                f"a partial copy). The first: {first}. Rows dropped by rule before: {dropped}. Nothing was kept"
            )
        data_dir = Path(self.data_dir)
        fileio.write_json(data_dir / INDEX_FILE, _index_json(written))
        fileio.write_json(
            data_dir / REPORT_FILE,
            {
                "source": self._source.name,
                "source_params": self._params,
                "class_names": list(self._source.class_names),
                "resolution": self._resolution,
                "channels": self._source.channels,
                "counts": {"indexed": len(self._records), "written": len(written), "skipped": len(skipped)},
                "dropped_by_rule": self._dropped,
                "skipped": skipped,
            },
        )


def prepare(
    source: Source,
    resolution: int,
    data_dir: str | os.PathLike,
    *,
    load_workers: int | None = None,
    progress: bool = True,
    min_kept_share: float = 0.0,
) -> PreparedDataset:
    """Builds (once) the prepared shards of `source` at `resolution`.

    Calls `source.index()` to fingerprint the request; if a dataset with that
    fingerprint exists under `data_dir` it is returned as is (no image is
    loaded). Otherwise every indexed image is loaded on `load_workers` threads
    (default: the source's `load_workers` attribute if it has one, else 2 ×
    CPU count, for decoders that release the GIL), unreadable ones are skipped
    and reported, and the rest is written, with a console progress bar unless
    `progress` is False (e.g. an in-memory cohort that takes a second).
    Fewer loaded images than `min_kept_share` of those indexed is an error
    (a copy the source's layout does not describe), as is none at all; rows
    the source drops by its rules (CheXpert's lateral views) do not count.

    One writer per `data_dir`: in a multi-process job, prepare on process 0,
    wait at a barrier, then let the others call `prepare` (a no-op for them).
    Two concurrent builds of the same dataset race on the final rename.

    Raises:
      ValueError: bad source metadata or index (names the image id / attribute).
      AllImagesUnreadable: no image could be loaded.
      TooFewKept: fewer than `min_kept_share` of the indexed images could be loaded.
    """
    _check_source(source, resolution)
    records, dropped = source.index()
    _check_index(source, records)
    builder = MedganPrepared(
        source=source,
        resolution=resolution,
        records=records,
        dropped=dropped,
        data_dir=data_dir,
        load_workers=load_workers or getattr(source, "load_workers", None) or 2 * (os.cpu_count() or 1),
        progress=progress,
        min_kept_share=min_kept_share,
    )
    builder.download_and_prepare(
        # Our datasets are not on the public tfds bucket: do not ask the network.
        download_config=tfds.download.DownloadConfig(try_download_gcs=False),
    )
    return load_prepared(builder.data_dir)


def load_prepared(dataset_dir: str | os.PathLike) -> PreparedDataset:
    """The `PreparedDataset` of a finished build, from its report (no source needed)."""
    dataset_dir = Path(dataset_dir)
    report_path = dataset_dir / REPORT_FILE
    if not report_path.exists():
        raise FileNotFoundError(f"{report_path} does not exist: {dataset_dir} is not a finished prepared dataset")
    report = json.loads(report_path.read_text())
    counts = report["counts"]
    version_dir, config_dir, builder_dir = dataset_dir, dataset_dir.parent, dataset_dir.parent.parent
    return PreparedDataset(
        name=f"{builder_dir.name}/{config_dir.name}/{version_dir.name}",
        dataset_dir=os.fspath(dataset_dir),
        class_names=tuple(report["class_names"]),
        resolution=report["resolution"],
        channels=report["channels"],
        num_indexed=counts["indexed"],
        num_written=counts["written"],
        num_skipped=counts["skipped"],
    )


def read_index(dataset_dir: str | os.PathLike) -> list[ImageRecord]:
    """Every image in the shards, in shard order, without decoding any image.

    Patient ids are those the loader returned (DICOM PatientID for RSNA).
    """
    columns = json.loads((Path(dataset_dir) / INDEX_FILE).read_text())
    return [
        ImageRecord(image_id, patient_id, tuple(labels), path)
        for image_id, patient_id, labels, path in zip(
            columns["image_id"], columns["patient_id"], columns["labels"], columns["path"], strict=True
        )
    ]


def labels_of(dataset_dir: str | os.PathLike, ids: Iterable[str]) -> np.ndarray:
    """Multi-hot labels [N, K] of `ids` from the index, in index order (no image is decoded)."""
    wanted = set(ids)
    return np.array([r.labels for r in read_index(dataset_dir) if r.image_id in wanted], np.float32)


def source_params(source: Source) -> dict[str, Any]:
    """The public scalar attributes of `source` (its constructor parameters, in practice).

    Strings, numbers, booleans, None, paths and tuples/lists of those are kept;
    anything else (caches, data frames, loaders) is not part of a source's
    identity. The protocol attributes are fingerprinted separately.
    """

    def scalar(value: Any) -> bool:
        return isinstance(value, _SCALARS + (os.PathLike,))

    def plain(value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    params = {}
    for key, value in sorted(getattr(source, "__dict__", {}).items()):
        if key.startswith("_") or key in ("name", "class_names", "channels"):
            continue
        if scalar(value):
            params[key] = plain(value)
        elif isinstance(value, (tuple, list)) and all(scalar(v) for v in value):
            params[key] = [plain(v) for v in value]
    return params


T = TypeVar("T")
R = TypeVar("R")


def ordered_thread_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, window: int
) -> Iterator[tuple[T, R]]:
    """Yields (item, fn(item)) in input order, computing up to `window` items ahead on threads.

    Unlike `Executor.map`, at most `window` results are in flight, so a cohort
    of a million images does not pile up decoded pixels in memory when the
    consumer (the shard writer) is slower than the loaders.
    """
    pending: collections.deque = collections.deque()
    items = iter(items)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= window:
                head, future = pending.popleft()
                yield head, future.result()
        while pending:
            head, future = pending.popleft()
            yield head, future.result()


class _PngLoader:
    """source.load + checks + PNG encoding, run on a worker thread.

    Returns (png bytes, patient id), or the UnreadableImage for a bad file;
    any other error is a bug and is raised naming the image.
    """

    def __init__(self, source: Source, resolution: int):
        self._source = source
        self._shape = (resolution, resolution, source.channels)

    def __call__(self, record: ImageRecord) -> tuple[bytes, str] | UnreadableImage:
        try:
            image, patient_id = self._source.load(record, self._shape[0])
        except UnreadableImage as err:
            return err
        except Exception as err:
            raise RuntimeError(
                f"{self._source.name}: load({record.image_id!r}, path={record.path!r}) failed: {err!r}"
            ) from err
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != self._shape:
            got = f"{image.dtype} {list(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(
                f"{self._source.name}: load({record.image_id!r}) returned {got}, expected uint8 {list(self._shape)}"
            )
        if not patient_id:
            raise ValueError(f"{self._source.name}: load({record.image_id!r}) returned no patient id")
        return _encode_png(image), patient_id


def _encode_png(image: np.ndarray) -> bytes:
    """uint8 [H, W, C] (C in 1..4) -> PNG bytes (L, LA, RGB or RGBA)."""
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _check_source(source: Source, resolution: int) -> None:
    if not isinstance(source, Source):
        raise TypeError(f"{source!r} does not implement medgan.data.sources.Source")
    if not _NAME_RE.match(source.name):
        raise ValueError(f"source name {source.name!r} must contain only letters, digits and underscores")
    if not 1 <= source.channels <= 4:
        raise ValueError(f"{source.name}: channels must be 1..4 to store as PNG, got {source.channels}")
    if not source.class_names:
        raise ValueError(f"{source.name}: class_names is empty")
    if not (isinstance(resolution, int) and resolution > 0):
        raise ValueError(f"{source.name}: resolution must be a positive int, got {resolution!r}")


def _check_index(source: Source, records: Sequence[ImageRecord]) -> None:
    if not records:
        raise ValueError(f"{source.name}: index() returned no images")
    seen: set[str] = set()
    num_classes = len(source.class_names)
    for record in records:
        if record.image_id in seen:
            raise ValueError(f"{source.name}: image id {record.image_id!r} appears twice in the index")
        seen.add(record.image_id)
        if len(record.labels) != num_classes or any(v not in (0, 1) for v in record.labels):
            raise ValueError(
                f"{source.name}: image {record.image_id!r} has labels {record.labels}, "
                f"expected {num_classes} values in {{0, 1}} ({source.class_names})"
            )


def _index_json(records: Sequence[ImageRecord]) -> dict[str, list]:
    return {
        "image_id": [r.image_id for r in records],
        "patient_id": [r.patient_id for r in records],
        "labels": [list(r.labels) for r in records],
        "path": [r.path for r in records],
    }


