"""CT display windows: Hounsfield units -> uint8 grey levels.

A CT slice spans ~-1000 HU (air) to >1000 HU (bone) while the grey/white
matter and blood contrast that identifies a haemorrhage lives within
~20-90 HU. A window maps an HU interval [center - width/2, center + width/2]
linearly onto the grey scale and clips outside it, as a radiologist's viewer
does. The benchmark uses the brain window (docs/ARCHITECTURE.md, "The benchmark definitions");
subdural and bone windows are optional extra channels.
"""

from __future__ import annotations

import numpy as np

# name -> (center, width) in HU.
WINDOWS = {
    "brain": (40, 80),
    "subdural": (80, 200),
    "bone": (600, 2800),
}


def apply_window(hu: np.ndarray, center: float, width: float) -> np.ndarray:
    """Linear, clipped window of any-shaped HU array to uint8 of the same shape.

        grey = floor(255 * clip((hu - (center - width / 2)) / width, 0, 1) + 0.5)

    i.e. center - width/2 -> 0, center + width/2 -> 255, rounded half up
    (brain window 40/80: 0 HU -> 0, 20 -> 64, 40 -> 128, 60 -> 191, 80 -> 255).
    Computed in float64 so the rounding of exact halves is exact.

    This is the contract's convention (and the usual one in RSNA ICH
    pipelines), not DICOM's VOI LUT formula (PS3.3 C.11.2.1.2), which maps
    [c - 0.5 - (w - 1)/2, c - 0.5 + (w - 1)/2]; the two differ by under one
    grey level for CT windows.
    """
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    lower = center - width / 2
    scaled = np.clip((np.asarray(hu, dtype=np.float64) - lower) / width, 0.0, 1.0)
    return np.floor(scaled * 255.0 + 0.5).astype(np.uint8)
