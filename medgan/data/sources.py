"""The interface every raw cohort implements, so the prepare stage is written once.

A source answers two questions (docs/ARCHITECTURE.md, "Data flow"): which images exist
and with which labels (`index`, cheap: no pixels are read), and what one image
looks like at a given resolution (`load`, expensive: decode, window, resize).
`medgan.data.builders.prepare` turns any source into prepared tfds shards.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from medgan.data.records import ImageRecord

# The registry of cohorts a config may name (`config.data.source`); `cohorts.make_source` builds them.
PHANTOM_SOURCES = ("phantom_chest", "phantom_head_ct", "phantom_mammo")  # rendered, shipped with medgan
REAL_SOURCES = ("chexpert", "rsna_ich")  # read from `config.data.root`
SOURCES = PHANTOM_SOURCES + REAL_SOURCES


@runtime_checkable
class Source(Protocol):
    """A cohort of labelled images (CheXpert, RSNA ICH, phantoms, ...).

    Attributes:
      name: short identifier used in dataset names, e.g. "phantom_chest",
        "chexpert", "rsna_ich" (letters, digits and underscores).
      class_names: names of the multi-hot label positions (medgan.data.labels).
      channels: channels C of the prepared uint8 image (1 for a radiograph, one
        per CT window for RSNA).
    """

    name: str
    class_names: tuple[str, ...]
    channels: int

    def index(self) -> tuple[list[ImageRecord], dict[str, int]]:
        """All images of the cohort, without reading pixels.

        Returns:
          The records in a deterministic order, and the number of rows dropped
          by each rule of the source, e.g. {"lateral": 12, "no_positive": 3}.
        """
        ...

    def load(self, record: ImageRecord, resolution: int) -> tuple[np.ndarray, str]:
        """Decodes one image.

        Returns:
          uint8 [resolution, resolution, channels] and the patient id
          (`record.patient_id` unless only the file knows it, as for DICOM).

        Raises:
          medgan.data.records.UnreadableImage: the file is missing, truncated or
            corrupt; the message names the path.
        """
        ...
