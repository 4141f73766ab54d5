"""Image decoding: unreadable files are skipped and counted for training, an error for evaluation."""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from dgnet_edge.data import images
from dgnet_edge.data.images import LoadedImages, load_images, read_image, resize
from dgnet_edge.errors import DatasetError, ImageReadError

H, W = 16, 8


def write_bgr(path: Path, bgr: tuple[int, int, int] = (255, 0, 0), size: tuple[int, int] = (12, 6)) -> Path:
    """A solid-colour image (BGR order, as OpenCV writes) in the format of the path's suffix."""
    pixels = np.zeros((*size, 3), np.uint8)
    pixels[:] = bgr
    if not cv2.imwrite(str(path), pixels):
        raise RuntimeError(f"cv2.imwrite failed for {path}")
    return path


def corrupt_jpeg(path: Path) -> Path:
    """A JPEG cut off after its first 200 bytes, as an interrupted copy leaves it."""
    ok, encoded = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 32, 3), dtype=np.uint8))
    assert ok
    path.write_bytes(encoded.tobytes()[:200])
    return path


@pytest.fixture
def files(tmp_path):
    """A readable JPEG (blue) and PNG (red), a truncated JPEG, a text file named .jpg, an empty file
    and a path with no file."""
    (tmp_path / "garbage.jpg").write_bytes(b"this is not an image at all")
    (tmp_path / "empty.jpg").write_bytes(b"")
    return {
        "jpg": write_bgr(tmp_path / "good.jpg"),
        "png": write_bgr(tmp_path / "good.png", (0, 0, 255)),
        "corrupt": corrupt_jpeg(tmp_path / "corrupt.jpg"),
        "garbage": tmp_path / "garbage.jpg",
        "empty": tmp_path / "empty.jpg",
        "missing": tmp_path / "missing.jpg",
    }


# ---------------------------------------------------------------- read_image


def test_reads_rgb(files):
    jpg = read_image(files["jpg"])
    assert jpg.dtype == np.uint8 and jpg.shape == (12, 6, 3)
    assert tuple(jpg[6, 3]) == pytest.approx((0, 0, 255), abs=3)  # blue written as BGR comes back as RGB
    png = read_image(str(files["png"]))  # str paths work too
    assert tuple(png[0, 0]) == (255, 0, 0)


def test_grey_and_alpha_images_come_back_as_three_channels(tmp_path):
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((5, 4), 77, np.uint8))
    cv2.imwrite(str(tmp_path / "rgba.png"), np.full((5, 4, 4), 200, np.uint8))
    assert read_image(tmp_path / "grey.png").shape == (5, 4, 3)
    assert read_image(tmp_path / "rgba.png").shape == (5, 4, 3)


@pytest.mark.parametrize(
    "key, message",
    [
        ("corrupt", "not a readable image"),
        ("garbage", "not a readable image"),
        ("empty", "empty file"),
        ("missing", "not found"),
    ],
)
def test_unreadable_file_names_the_file(files, key, message):
    with pytest.raises(ImageReadError, match=message) as e:
        read_image(files[key])
    assert str(files[key]) in str(e.value)
    assert isinstance(e.value, DatasetError)  # the CLI reports it as a user error


def test_a_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageReadError, match="is a folder, not an image file"):
        read_image(tmp_path)


def test_corrupt_header_declaring_a_huge_image(tmp_path):
    """OpenCV raises (rather than returning None) on some corrupt headers."""
    ok, encoded = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    data = bytearray(encoded.tobytes())
    data[16:24] = struct.pack(">II", 200_000, 200_000)  # IHDR width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    (tmp_path / "huge.png").write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="huge.png: not a readable image"):
        read_image(tmp_path / "huge.png")


def test_os_error_while_reading_is_an_image_read_error(files, monkeypatch):
    """A permission error (or a file removed meanwhile) is reported, not raised as a bare OSError."""

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images.np, "fromfile", denied)
    with pytest.raises(ImageReadError, match="good.jpg: cannot read the file \\(Permission denied\\)"):
        read_image(files["jpg"])


# ---------------------------------------------------------------- resize


def test_resize():
    image = np.zeros((12, 6, 3), np.uint8)
    assert resize(image, H, W).shape == (H, W, 3)
    assert resize(image, 12, 6) is image


# ---------------------------------------------------------------- load_images


@pytest.mark.parametrize("workers", [0, 4])
def test_load_images_for_training_skips_counts_and_logs(files, workers, caplog):
    order = ["jpg", "corrupt", "png", "empty", "missing", "garbage", "jpg"]
    with caplog.at_level(logging.WARNING, logger="dgnet_edge.data.images"):
        loaded = load_images([files[k] for k in order], H, W, workers=workers, skip_unreadable=True)
    assert isinstance(loaded, LoadedImages)
    assert loaded.kept == [0, 2, 6]
    assert loaded.pixels.shape == (3, H, W, 3) and loaded.pixels.dtype == np.uint8
    assert len(loaded.failures) == 4
    for key, failure in zip(["corrupt", "empty", "missing", "garbage"], loaded.failures):
        assert str(files[key]) in failure
    # blue, red, blue: the kept rows line up with the inputs they came from
    assert [int(np.argmax(p[H // 2, W // 2])) for p in loaded.pixels] == [2, 0, 2]
    assert "skipped 4 unreadable image(s)" in caplog.text
    assert str(files["corrupt"]) in caplog.text


@pytest.mark.parametrize("workers", [0, 4])
@pytest.mark.parametrize("bad", ["corrupt", "empty", "missing"])
def test_load_images_for_evaluation_raises_on_the_first_unreadable_file(files, workers, bad):
    paths = [files["jpg"], files["png"], files[bad], files["garbage"], files["jpg"]]
    with pytest.raises(ImageReadError) as e:
        load_images(paths, H, W, workers=workers)
    assert str(files[bad]) in str(e.value)


def test_load_images_all_unreadable_or_none(files):
    loaded = load_images([files["empty"], files["missing"]], H, W, skip_unreadable=True)
    assert loaded.kept == [] and loaded.pixels.shape == (0, H, W, 3) and len(loaded.failures) == 2
    nothing = load_images([], H, W)
    assert nothing.kept == [] and nothing.pixels.shape == (0, H, W, 3) and nothing.failures == []


def test_load_images_all_readable(files):
    loaded = load_images([files["jpg"], files["png"]], H, W)
    assert loaded.kept == [0, 1] and loaded.failures == [] and loaded.pixels.shape == (2, H, W, 3)
