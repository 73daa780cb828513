"""Pixel plumbing shared by the real-cohort loaders: decode, make square, resize.

Every source hands the prepare stage a uint8 [R, R, C] image (docs/ARCHITECTURE.md,
"Data flow"). Real images arrive in many sizes and aspect ratios, so each source
decodes its file, makes it square (`to_square`) and resamples it to the
benchmark resolution (`resize`). Phantoms render at the target resolution
directly and do not come through here.

Resampling must be antialiased: the resolution sweep goes down to 32 px from
~2500 px radiographs and 512 px CT slices, and a point-sampled (nearest or
non-prefiltered bilinear) downscale aliases fine texture into moiré that the
GAN would faithfully learn and the classifier could key on.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np
from PIL import Image, ImageFile

from medgan.data.records import UnreadableImage

SQUARE_MODES = ("pad", "crop", "stretch")
RESIZE_METHODS = ("lanczos", "area")

PathLike = Union[str, "os.PathLike[str]"]


def read_grayscale(path: PathLike) -> np.ndarray:
    """Decodes a JPEG/PNG (anything PIL reads) to uint8 [H, W].

    Colour and palette images are converted with PIL's ITU-R 601-2 luma
    transform; 16-bit grayscale (PNG "I;16") is mapped linearly from the full
    16-bit range, value / 257 rounded, so 65535 -> 255 (PIL's own conversion
    would clip everything above 255 to white). 32-bit integer and float images
    have no defined display range and are refused.

    The whole file is decoded here (`Image.load`), not lazily, and PIL's
    `ImageFile.LOAD_TRUNCATED_IMAGES` must be False (its default): otherwise a
    truncated JPEG decodes "successfully" with its missing lower part filled
    with grey, and that grey band would end up in the training set.

    Raises:
      UnreadableImage: the file is missing, truncated, corrupt or of an
        unsupported pixel mode; the message names the path.
      RuntimeError: some library in this process switched
        `ImageFile.LOAD_TRUNCATED_IMAGES` on.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process; medgan refuses to "
            "decode images with it because truncated files would be padded with grey "
            "instead of being reported. Set it back to False."
        )
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode.startswith("I;16"):
                wide = np.asarray(image).astype(np.float64)
                return np.floor(wide / 257.0 + 0.5).astype(np.uint8)
            if image.mode in ("I", "F"):
                raise UnreadableImage(
                    f"{path}: unsupported pixel mode {image.mode!r} (expected 8- or 16-bit)"
                )
            return np.array(image.convert("L"))
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
        # OSError covers missing files, PIL.UnidentifiedImageError and
        # "image file is truncated"; the others come from individual plugins.
        raise UnreadableImage(f"{path}: {type(err).__name__}: {err}") from err


def to_square(image: np.ndarray, mode: str = "pad", fill: float = 0) -> np.ndarray:
    """Makes [H, W] or [H, W, C] square, keeping the image centred.

    Modes:
      "pad": pads the short side to the long one with the constant `fill`,
        split evenly (the extra row/column of an odd difference goes to the
        bottom/right). Keeps the whole field of view and the aspect ratio; the
        default, because findings at the image border (a costophrenic angle,
        a fracture) must not be cut away from their labels.
      "crop": cuts the centred square of side min(H, W) (keeps resolution,
        loses the margins of the long side).
      "stretch": returns the image unchanged and leaves it to `resize` to
        scale each axis to R (distorts anatomy by the aspect ratio).

    `fill` should be the value of "nothing" in the image's units: 0 for a
    display-range image, air or less in Hounsfield units for CT (0 HU would be
    water).

    Returns:
      [S, S] or [S, S, C] of the input dtype (S = max(H, W) for "pad",
      min(H, W) for "crop"), or the input itself for "stretch".
    """
    if mode not in SQUARE_MODES:
        raise ValueError(f"to_square mode {mode!r} is not one of {SQUARE_MODES}")
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an [H, W] or [H, W, C] image, got shape {image.shape}")
    height, width = image.shape[:2]
    if mode == "stretch" or height == width:
        return image
    if mode == "crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return image[top : top + side, left : left + side]
    side = max(height, width)
    pad_h, pad_w = side - height, side - width
    pad = [(pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)]
    pad += [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode="constant", constant_values=np.asarray(fill, image.dtype))


def resize(image: np.ndarray, resolution: int, method: str = "lanczos") -> np.ndarray:
    """Antialiased resampling of [H, W] or [H, W, C] to [R, R] or [R, R, C].

    Each axis is scaled to `resolution`, so call `to_square` first unless a
    distortion is wanted. Channels are resampled independently. Uses PIL's
    separable resampling, whose kernel support widens with the shrink factor
    (a proper low-pass before decimation), exactly (no `reducing_gap`
    shortcut).

    Methods:
      "lanczos": Lanczos-3, the sharpest of PIL's filters; for display-range
        images (radiographs), where its ringing (negative lobes: over- and
        undershoot of ~3-8 % of an edge's height) is mild.
      "area": each output pixel is the mean of the input over its footprint
        (PIL BOX) when shrinking, antialiased bilinear (triangle) when
        enlarging. Both have non-negative weights, so outputs stay within the
        input's range. For physical units that are windowed afterwards (CT in
        Hounsfield units): a footprint mean is the partial-volume value a
        coarser reconstruction would show, while Lanczos ringing at the
        ~1000 HU skull edge would be tens of HU, a full-scale artefact in the
        80 HU brain window.

    Args:
      image: uint8 or float32 [H, W] or [H, W, C].
      resolution: output side R.
      method: "lanczos" or "area".

    Returns:
      [R, R] or [R, R, C] of the input dtype; uint8 results are rounded and
      clipped to [0, 255] (PIL's 8-bit resampler does both).
    """
    if method not in RESIZE_METHODS:
        raise ValueError(f"resize method {method!r} is not one of {RESIZE_METHODS}")
    if image.dtype not in (np.uint8, np.float32):
        raise TypeError(f"resize takes uint8 or float32 images, got {image.dtype}")
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if image.ndim == 3:
        channels = [resize(image[..., c], resolution, method) for c in range(image.shape[-1])]
        return np.stack(channels, axis=-1)
    if image.ndim != 2:
        raise ValueError(f"expected an [H, W] or [H, W, C] image, got shape {image.shape}")
    if method == "lanczos":
        resample = Image.Resampling.LANCZOS
    elif resolution <= min(image.shape):
        resample = Image.Resampling.BOX
    else:
        resample = Image.Resampling.BILINEAR
    # uint8 [H, W] -> PIL mode "L", float32 [H, W] -> mode "F".
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.array(pil.resize((resolution, resolution), resample))
