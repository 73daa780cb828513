"""medgan.data.imaging: decoding, squaring and antialiased resizing."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from medgan.data import imaging
from medgan.data.records import UnreadableImage


def _gradient(height=48, width=64):
    return (np.add.outer(np.arange(height), np.arange(width)) * 2).astype(np.uint8)


def _jpeg_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


# --- read_grayscale -------------------------------------------------------------


def test_read_png_grayscale_exact(tmp_path):
    array = _gradient()
    Image.fromarray(array).save(tmp_path / "x.png")
    out = imaging.read_grayscale(tmp_path / "x.png")
    assert out.dtype == np.uint8 and out.shape == (48, 64)
    np.testing.assert_array_equal(out, array)


def test_read_jpeg_grayscale(tmp_path):
    array = _gradient()
    (tmp_path / "x.jpg").write_bytes(_jpeg_bytes(array))
    out = imaging.read_grayscale(tmp_path / "x.jpg")
    assert out.dtype == np.uint8 and out.shape == (48, 64)
    assert np.abs(out.astype(int) - array).max() <= 3  # JPEG is lossy


def test_read_rgb_uses_luma(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[:, 0] = (255, 0, 0)
    rgb[:, 1] = (0, 255, 0)
    rgb[:, 2] = (0, 0, 255)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    out = imaging.read_grayscale(tmp_path / "x.png")
    # ITU-R 601-2: L = 0.299 R + 0.587 G + 0.114 B.
    np.testing.assert_array_equal(out, [[76, 150, 29]] * 2)


def test_read_16bit_png_maps_full_range(tmp_path):
    wide = np.array([[0, 257, 257 * 128], [65535, 128, 129]], np.uint16)
    Image.fromarray(wide).save(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").mode == "I;16"
    out = imaging.read_grayscale(tmp_path / "x.png")
    np.testing.assert_array_equal(out, [[0, 1, 128], [255, 0, 1]])


def test_truncated_jpeg_is_unreadable(tmp_path):
    data = _jpeg_bytes(_gradient(256, 256))
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImage, match="cut.jpg"):
        imaging.read_grayscale(path)


def test_missing_and_corrupt_files_are_unreadable(tmp_path):
    with pytest.raises(UnreadableImage, match="absent.jpg"):
        imaging.read_grayscale(tmp_path / "absent.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"not an image" * 10)
    with pytest.raises(UnreadableImage, match="junk.jpg"):
        imaging.read_grayscale(tmp_path / "junk.jpg")


def test_refuses_when_truncated_images_are_allowed(tmp_path, monkeypatch):
    (tmp_path / "x.jpg").write_bytes(_jpeg_bytes(_gradient()))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        imaging.read_grayscale(tmp_path / "x.jpg")


# --- to_square ------------------------------------------------------------------


def test_pad_centres_and_fills():
    image = np.arange(1, 9, dtype=np.uint8).reshape(2, 4)
    out = imaging.to_square(image, "pad")
    np.testing.assert_array_equal(
        out, [[0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8], [0, 0, 0, 0]]
    )
    # An odd difference puts the extra row at the bottom; fill is honoured.
    out = imaging.to_square(np.ones((1, 4), np.float32), "pad", fill=-1000)
    np.testing.assert_array_equal(out[:, 0], [-1000, 1, -1000, -1000])
    # Tall images pad columns; channels are kept.
    out = imaging.to_square(np.ones((4, 2, 3), np.uint8), "pad")
    assert out.shape == (4, 4, 3)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 1, 0])


def test_crop_takes_centre():
    image = np.arange(24, dtype=np.uint8).reshape(4, 6)
    np.testing.assert_array_equal(imaging.to_square(image, "crop"), image[:, 1:5])
    assert imaging.to_square(np.zeros((7, 3, 2), np.uint8), "crop").shape == (3, 3, 2)


def test_stretch_leaves_image_and_resize_scales_axes():
    image = _gradient(20, 40)
    assert imaging.to_square(image, "stretch") is image
    assert imaging.resize(image, 8).shape == (8, 8)


def test_to_square_rejects_unknown_mode():
    with pytest.raises(ValueError, match="letterbox"):
        imaging.to_square(np.zeros((2, 3), np.uint8), "letterbox")


# --- resize -----------------------------------------------------------------------


def _checkerboard(size=64):
    return (np.indices((size, size)).sum(axis=0) % 2 * 255).astype(np.uint8)


@pytest.mark.parametrize("method", imaging.RESIZE_METHODS)
def test_downsampled_checkerboard_is_uniform_grey(method):
    """A 1-px checkerboard (Nyquist frequency) must average out, not alias.

    Point sampling would return all 0 or all 255 here.
    """
    board = _checkerboard()
    out = imaging.resize(board, 8, method)
    assert out.dtype == np.uint8 and out.shape == (8, 8)
    assert set(np.unique(out)) <= {127, 128}
    out = imaging.resize(board.astype(np.float32), 8, method)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 127.5, atol=0.5)


def test_channels_are_resized_independently():
    image = np.stack([_gradient(), 255 - _gradient(), _checkerboard()[:48]], axis=-1)
    out = imaging.resize(image, 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], imaging.resize(image[..., c], 16))


def test_uint8_lanczos_clips_overshoot():
    step = np.zeros((8, 8), np.uint8)
    step[:, 4:] = 255
    as_float = imaging.resize(step.astype(np.float32), 32)
    assert as_float.min() < -5 and as_float.max() > 260  # Lanczos rings
    out = imaging.resize(step, 32)
    assert out.min() == 0 and out.max() == 255  # clipped, not wrapped around
    expected = np.clip(np.round(as_float), 0, 255)
    assert np.abs(out.astype(float) - expected).max() <= 1


@pytest.mark.parametrize("resolution", [16, 100])
def test_area_stays_within_input_range(resolution):
    """Brain (40 HU) next to bone (1000 HU): no ringing in HU with "area"."""
    hu = np.full((64, 64), 40.0, np.float32)
    hu[:, 30:] = 1000.0
    out = imaging.resize(hu, resolution, method="area")
    assert out.min() == pytest.approx(40.0) and out.max() == pytest.approx(1000.0)
    assert imaging.resize(hu, resolution, method="lanczos").min() < 0


def test_area_downsampling_is_footprint_mean():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    out = imaging.resize(image, 2, method="area")
    np.testing.assert_allclose(out, [[2.5, 4.5], [10.5, 12.5]])


def test_resize_rejects_other_dtypes_and_methods():
    with pytest.raises(TypeError, match="float64"):
        imaging.resize(np.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match="cubic"):
        imaging.resize(np.zeros((4, 4), np.uint8), 2, method="cubic")
