"""Helpers shared by the tests: a coded source whose images say which image they are."""

import threading

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medgan.data.records import ImageRecord, UnreadableImage


def ct_dataset(patient_id: str | None = "ID_p1") -> Dataset:
    """A CT slice's identity without pixels: file meta (explicit VR little endian), SOP class and instance,
    modality, and `patient_id` (None: no PatientID). The caller sets the image header and PixelData."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    if patient_id is not None:
        ds.PatientID = patient_id
    return ds

# Long-tailed label combinations of the coded test cohort (K = 4), cycled over
# images: (1,0,0,0) x5, (0,1,0,0) x3, (0,1,1,0) x2, (0,0,0,1) x1.
CODED_CYCLE = [(1, 0, 0, 0)] * 5 + [(0, 1, 0, 0)] * 3 + [(0, 1, 1, 0)] * 2 + [(0, 0, 0, 1)]


class CodedSource:
    """A Source whose image i encodes i, so image/label pairing and flips are checkable exactly.

    Image i (i < 255): every pixel of the left half is i + 1, the right half is
    0, in every channel. `decode_index` inverts it from a uint8 or a [-1, 1]
    image and tells whether it was mirrored. Image ids "img-0007", patients of
    `images_per_patient` consecutive images, labels cycling through CODED_CYCLE.
    """

    name = "coded"
    class_names = ("a", "b", "c", "d")

    def __init__(self, num_images=60, images_per_patient=3, channels=1, unreadable=(), dropped_lateral=0):
        assert num_images <= 255
        self.num_images = num_images
        self.images_per_patient = images_per_patient
        self.channels = channels
        self.unreadable = tuple(unreadable)
        self.dropped_lateral = dropped_lateral
        self._lock = threading.Lock()
        self._loads = 0

    @property
    def load_calls(self):
        return self._loads

    def index(self):
        records = [
            ImageRecord(
                image_id=f"img-{i:04d}",
                patient_id=f"pat-{i // self.images_per_patient:03d}",
                labels=CODED_CYCLE[i % len(CODED_CYCLE)],
                path=f"images/{i:04d}.png",
            )
            for i in range(self.num_images)
        ]
        return records, {"lateral": self.dropped_lateral}

    def load(self, record, resolution):
        with self._lock:
            self._loads += 1
        i = int(record.image_id.split("-")[1])
        if i in self.unreadable:
            raise UnreadableImage(f"truncated file {record.path}")
        image = np.zeros((resolution, resolution, self.channels), np.uint8)
        image[:, : resolution // 2] = i + 1
        return image, record.patient_id


def decode_index(image):
    """(index, mirrored) of a CodedSource image, uint8 or float in [-1, 1], shape [R, R, C]."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.rint((image + 1.0) * 127.5).astype(np.int64)
    index = int(image.max()) - 1
    mirrored = bool(image[0, 0, 0] == 0)
    return index, mirrored


def coded_labels(index):
    return CODED_CYCLE[index % len(CODED_CYCLE)]
