"""pipeline/images.py: safe decoding of untrusted image and video bytes.

Every input is made here: valid PNG / JPEG from numpy + OpenCV, then broken on purpose (truncated,
corrupted, zero-size, lying headers, lying names, other types). Each must end in a specific
PipelineError subclass, quickly, never a crash, a hang or a half-decoded image.
"""

from __future__ import annotations

import struct
import time
import zlib

import cv2
import numpy as np
import pytest

from pipeline import images as im
from pipeline.errors import PipelineError


def _img(h: int = 96, w: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 2 % 256, yy * 2 % 256, (xx + yy) % 256], -1).astype(np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 4, (10, 200, 30), -1)
    return img


def _png(img: np.ndarray | None = None) -> bytes:
    ok, buf = cv2.imencode(".png", _img() if img is None else img)
    assert ok
    return buf.tobytes()


def _jpeg(img: np.ndarray | None = None, q: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", _img() if img is None else img, [cv2.IMWRITE_JPEG_QUALITY, q])
    assert ok
    return buf.tobytes()


def _png_bomb(w: int, h: int) -> bytes:
    """A tiny PNG whose IHDR declares w x h (valid CRC), followed by a little IDAT and IEND."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


def _jpeg_with_size(data: bytes, w: int, h: int) -> bytes:
    """Rewrite the SOF0 dimensions of a baseline JPEG."""
    i = data.index(b"\xff\xc0")
    return data[:i + 5] + struct.pack(">HH", h, w) + data[i + 9:]


# --- valid input ------------------------------------------------------------------------------

def test_png_and_jpeg_decode_to_bgr_with_header_size():
    for data, fmt in ((_png(), "png"), (_jpeg(), "jpeg")):
        d = im.decode_image(data, declared=f"x.{fmt}")
        assert (d.format, d.width, d.height) == (fmt, 128, 96)
        assert d.bgr.shape == (96, 128, 3) and d.bgr.dtype == np.uint8
        assert len(d.sha256) == 64 and d.findings == ()
    assert np.array_equal(im.decode_image(_png()).bgr, _img())  # PNG is lossless: exact pixels


def test_grayscale_16bit_and_alpha_png_become_8bit_bgr():
    gray16 = (np.arange(96 * 128, dtype=np.uint16).reshape(96, 128) * 5)
    bgra = np.dstack([_img(), np.zeros((96, 128), np.uint8)])  # fully transparent: pixels still analysed
    for src in (gray16, bgra):
        d = im.decode_image(_png(src))
        assert d.bgr.shape == (96, 128, 3) and d.bgr.dtype == np.uint8
    assert np.array_equal(im.decode_image(_png(bgra)).bgr, _img())


def test_trailing_bytes_are_reported_not_hidden():
    d = im.decode_image(_png() + b"PK\x03\x04 appended archive")
    assert d.findings == ("trailing_bytes:21",)
    assert im.decode_image(_jpeg() + b"xyz").findings == ("trailing_bytes:3",)


# --- malformed input --------------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"", bytearray()])
def test_zero_size(data):
    with pytest.raises(im.EmptyImage):
        im.decode_image(data)


@pytest.mark.parametrize("cut", [8, 20, 40, 200, -30, -12])
def test_truncated_png(cut):
    data = _png()
    with pytest.raises(im.CorruptImage):  # TruncatedImage is a CorruptImage
        im.decode_image(data[:cut])


@pytest.mark.parametrize("cut", [3, 10, 100, 400, -200, -2])
def test_truncated_jpeg(cut):
    data = _jpeg()
    with pytest.raises(im.CorruptImage):
        im.decode_image(data[:cut])


def test_truncated_jpeg_is_named_truncated():
    for cut in (2, 200, 1000):
        with pytest.raises(im.TruncatedImage):
            im.decode_image(_jpeg()[:-cut])


def test_corrupt_png_ihdr_crc_and_corrupt_idat():
    data = bytearray(_png())
    data[18] ^= 0xFF  # inside IHDR: CRC fails
    with pytest.raises(im.CorruptImage, match="CRC"):
        im.decode_image(bytes(data))
    data = bytearray(_png())
    i = data.index(b"IDAT") + 20
    data[i:i + 40] = b"\x00" * 40  # compressed data destroyed
    with pytest.raises(im.CorruptImage):
        im.decode_image(bytes(data))


def test_corrupt_jpeg_markers():
    data = _jpeg()
    with pytest.raises(im.CorruptImage):
        im.decode_image(b"\xff\xd8\xff\xd9")  # SOI, EOI, nothing between
    bad = bytearray(data)
    bad[2:4] = b"\x00\x00"  # not a marker where one must be
    with pytest.raises(im.CorruptImage):
        im.decode_image(b"\xff\xd8\xff" + bytes(bad[3:]))
    with pytest.raises(im.CorruptImage):
        im.decode_image(_jpeg_with_size(data, 128, 0))


@pytest.mark.parametrize("w,h", [(100_000, 100_000), (20_001, 10), (10, 2**31 - 1), (7000, 7000)])
def test_png_decompression_bomb_refused_from_header_fast(w, h):
    t = time.perf_counter()
    with pytest.raises(im.ImageTooLarge, match="decompression-bomb"):
        im.decode_image(_png_bomb(w, h))
    assert time.perf_counter() - t < 0.05  # nothing was decoded or allocated


def test_png_zero_dimension_header():
    with pytest.raises(im.CorruptImage):
        im.decode_image(_png_bomb(0, 10))


def test_jpeg_decompression_bomb_refused_from_sof():
    with pytest.raises(im.ImageTooLarge):
        im.decode_image(_jpeg_with_size(_jpeg(), 65_000, 65_000))


def test_jpeg_header_larger_than_its_data_is_refused_or_decoded_at_header_size():
    """Known limit (see pipeline/images.py): libjpeg treats missing entropy data as a warning, so a
    header claiming more pixels than the data holds may decode (grey-filled) at the header's size.
    Either way: no crash, and never an image of another size than the header's."""
    try:
        d = im.decode_image(_jpeg_with_size(_jpeg(), 400, 300))
    except im.CorruptImage:
        return
    assert d.bgr.shape == (300, 400, 3)


def test_too_many_bytes(monkeypatch):
    monkeypatch.setattr(im, "MAX_BYTES", 1000)
    with pytest.raises(im.ImageTooLarge):
        im.decode_image(_png(_img(200, 200)))


@pytest.mark.parametrize("data,kind", [
    (b"GIF89a" + b"\0" * 40, "GIF"),
    (b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 40, "WEBP"),
    (b"BM" + b"\0" * 60, "BMP"),
    (b"II*\x00" + b"\0" * 60, "TIFF"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG"),
    (b"%PDF-1.7\n", "PDF"),
    (b"hello, this is text", "unknown"),
    (b"RIFF\0\0\0\0AVI LIST", "AVI"),
])
def test_unsupported_types_named(data, kind):
    with pytest.raises(im.UnsupportedImageType, match=kind):
        im.decode_image(data)


@pytest.mark.parametrize("declared", ["photo.jpg", "photo.JPEG", "image/jpeg", ".jpg", "a.gif"])
def test_extension_lies_refused(declared):
    with pytest.raises(im.ImageTypeMismatch, match="content is PNG"):
        im.decode_image(_png(), declared=declared)


def test_declared_type_agreeing_or_unknown_is_fine():
    assert im.decode_image(_png(), declared="image/png").format == "png"
    assert im.decode_image(_jpeg(), declared="upload.jfif").format == "jpeg"
    assert im.decode_image(_png(), declared="blob").format == "png"  # no extension: claims nothing


def test_every_error_is_a_pipeline_error_with_status_and_exit_code():
    for cls in (im.EmptyImage, im.UnsupportedImageType, im.ImageTypeMismatch, im.CorruptImage,
                im.TruncatedImage, im.ImageTooLarge, im.ImageNotFound):
        assert issubclass(cls, PipelineError)
        assert 400 <= cls.status < 500 and cls.exit_code in (2, 3) and cls.code


def test_random_garbage_never_crashes():
    rng = np.random.default_rng(7)
    base = [_png(), _jpeg()]
    for k in range(150):
        data = bytearray(base[k % 2])
        for _ in range(int(rng.integers(1, 20))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        if k % 3 == 0:
            data = data[: int(rng.integers(0, len(data)))]
        try:
            d = im.decode_image(bytes(data))
        except im.ImageError:
            continue
        assert d.bgr.shape == (d.height, d.width, 3)


def test_read_upload_missing_and_directory(tmp_path):
    with pytest.raises(im.ImageNotFound):
        im.decode_file(tmp_path / "nope.png")
    with pytest.raises(im.ImageNotFound):
        im.decode_file(tmp_path)
    (tmp_path / "a.png").write_bytes(_jpeg())
    with pytest.raises(im.ImageTypeMismatch):
        im.decode_file(tmp_path / "a.png")


# --- video ------------------------------------------------------------------------------------

def make_video(path, frames: int = 12, size: tuple[int, int] = (160, 128)) -> bytes:
    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    assert vw.isOpened()
    for i in range(frames):
        f = _img(h, w)
        cv2.putText(f, str(i), (10, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
        vw.write(f)
    vw.release()
    return path.read_bytes()


def test_video_frames_sampled_evenly(tmp_path):
    data = make_video(tmp_path / "v.avi", frames=12)
    v = im.video_frames(data, declared="v.avi", samples=4)
    assert v.format == "avi" and (v.width, v.height) == (160, 128) and v.frame_count == 12
    assert [i for i, _ in v.frames] == [0, 4, 7, 11]
    assert all(f.shape == (128, 160, 3) for _, f in v.frames)
    again = im.video_frames(data, samples=4)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(v.frames, again.frames))


def test_video_malformed(tmp_path):
    data = make_video(tmp_path / "v.avi", frames=6)
    with pytest.raises(im.ImageError):
        im.video_frames(data[:200])  # header only
    with pytest.raises(im.EmptyImage):
        im.video_frames(b"")
    with pytest.raises(im.UnsupportedImageType):
        im.video_frames(_png())
    with pytest.raises(im.ImageTypeMismatch):
        im.video_frames(data, declared="clip.mp4")
