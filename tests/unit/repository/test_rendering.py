"""Rendered frames (repository.dicomweb.render and .pixels) and the render cache (repository.render_cache).

Every instance is built here with pydicom from known pixel values, written as
Part 10 and read back as the hub reads a stored blob, rendered, and the PNG's
grey levels or colours compared with what PS3.3 C.11 gives for those values:
exactly for lossless transfer syntaxes, within a tolerance for lossy JPEG.
"""

from __future__ import annotations

import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import convert_color_space, pixel_array
from pydicom.uid import (
    JPEG2000,
    MPEG2MPML,
    UID,
    DeflatedExplicitVRLittleEndian,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from repository import render_cache
from repository.dicomweb.errors import NotAcceptable, NotFound
from repository.dicomweb.pixels import decode_frame, describe_transfer_syntax
from repository.dicomweb.render import RenderOptions, Window, render
from repository.render_cache import RenderCache, cache_key, shared_cache
from tests.factories.dicom import instance_bytes, make_instance, pixel_values
from tests.unit.repository.dicomweb import conftest as dicomweb
from tests.unit.repository.dicomweb.conftest import Web

web = dicomweb.web           # the DICOMweb app's fixture, for the view's test

FULL_12_BIT = Window(2048, 4096)        # LINEAR over 0..4095: x -> round(x * 255 / 4095)


# -- helpers -------------------------------------------------------------------------------------------------------

def instance(*frames: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int | None = None) -> Dataset:
    """A native instance holding `frames` (rows, columns[, samples]); signed when their dtype is."""
    first = frames[0]
    ds = make_instance(rows=first.shape[0], columns=first.shape[1])
    bits = first.dtype.itemsize * 8
    ds.SamplesPerPixel = first.shape[2] if first.ndim == 3 else 1
    if ds.SamplesPerPixel > 1:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored = bits, bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(first.dtype.kind == "i")
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.PixelData = b"".join(f.astype(f.dtype.newbyteorder("<")).tobytes() for f in frames)
    ds["PixelData"].VR = "OW" if bits > 8 else "OB"
    return ds


def encapsulated(ds: Dataset, syntax: str, fragments: list[bytes]) -> Dataset:
    """`ds` with its pixel data replaced by these encoded frames, one fragment each."""
    ds.PixelData = encapsulate(fragments)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    return ds


def stored(ds: Dataset) -> Dataset:
    """The instance written as Part 10 and read back, as the hub reads a blob."""
    return dcmread(io.BytesIO(instance_bytes(ds)))


def rendered(ds: Dataset, frame: int = 1, media_type: str = "image/png", **options: object) -> np.ndarray:
    data = render(stored(ds), frame, RenderOptions(media_type, **options)).image  # type: ignore[arg-type]
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == ("PNG" if media_type == "image/png" else "JPEG")
        return np.asarray(image)


def linear(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR) written out as the standard gives it, into 0..255."""
    x = np.asarray(x, dtype=np.float64)
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
    y = np.where(x <= c - 0.5 - (w - 1) / 2, 0, np.where(x > c - 0.5 + (w - 1) / 2, 255, y))
    return np.rint(y).astype(np.uint8)


def add_lut(item: Dataset, descriptor_tag: int, data_tag: int, lut: np.ndarray, first: int = 0,
            bits: int = 16) -> None:
    """A LUT Descriptor (US, PS3.3 C.11.1.1.1) and its LUT Data (OW, little endian)."""
    item.add_new(descriptor_tag, "US", [len(lut) % 65536, first, bits])
    item.add_new(data_tag, "OW", lut.astype("<u2").tobytes())


# -- the grayscale pipeline ----------------------------------------------------------------------------------------

def test_monochrome2_applies_the_rescale_then_the_asked_or_the_stored_window() -> None:
    ds = instance(pixel_values(8, 8))
    ds.RescaleSlope, ds.RescaleIntercept = 2, -1024
    ds.WindowCenter, ds.WindowWidth = 1500, 800
    hounsfield = pixel_values(8, 8).astype(np.float64) * 2 - 1024
    asked = rendered(ds, window=Window(2500, 2001))
    assert asked.dtype == np.uint8 and np.array_equal(asked, linear(hounsfield, 2500, 2001))
    assert ((asked > 0) & (asked < 255)).any()           # the window's slope is exercised, not only its clamps
    assert np.array_equal(rendered(ds), linear(hounsfield, 1500, 800))


def test_monochrome1_is_inverted() -> None:
    ds = instance(pixel_values(8, 8), photometric="MONOCHROME1")
    assert np.array_equal(rendered(ds, window=Window(2000, 1000)), 255 - linear(pixel_values(8, 8), 2000, 1000))


@pytest.mark.parametrize("signed", [True, False])
def test_bits_above_bits_stored_are_ignored_and_signed_values_kept(signed: bool) -> None:
    values = (np.arange(64).reshape(8, 8) * 64 - (2048 if signed else 0)).astype(np.int32)   # 12-bit values
    raw = ((values & 0x0FFF) | 0xA000).astype(np.uint16)    # an overlay's bits above Bits Stored
    ds = instance(raw.view(np.int16) if signed else raw, bits_stored=12)
    window = Window(0, 4096) if signed else FULL_12_BIT
    assert np.array_equal(decode_frame(stored(ds), 1), values)
    assert np.array_equal(rendered(ds, window=window), linear(values, window.center, window.width))


def test_a_modality_lut_sequence_replaces_the_rescale() -> None:
    values = pixel_values(8, 8)
    ds = instance(values)
    item = Dataset()
    add_lut(item, 0x00283002, 0x00283006, 4095 - np.arange(4096))    # an inverting Modality LUT, 4096 entries
    item.ModalityLUTType = "US"
    ds.ModalityLUTSequence = [item]
    assert np.array_equal(rendered(ds, window=FULL_12_BIT), linear(4095 - values.astype(np.int64), 2048, 4096))


def test_a_voi_lut_sequence_is_used_unless_a_window_is_asked() -> None:
    values = pixel_values(8, 8)                                 # 1000..3331
    lut = (np.arange(2000, dtype=np.float64) ** 2 * 65535 / 1999 ** 2).astype(np.uint16)   # a curve, 16 bits
    ds = instance(values)
    item = Dataset()
    add_lut(item, 0x00283002, 0x00283006, lut, first=1000)
    ds.VOILUTSequence = [item]
    ds.WindowCenter, ds.WindowWidth = 100, 10                   # the LUT is preferred (PS3.4 N.2.1.1)
    expected = np.rint(lut[np.clip(values, 1000, 2999) - 1000] * 255.0 / 65535).astype(np.uint8)
    assert np.array_equal(rendered(ds), expected)
    assert np.array_equal(rendered(ds, window=FULL_12_BIT), linear(values, 2048, 4096))


def test_enhanced_multi_frame_takes_each_frames_rescale_and_window() -> None:
    frames = [pixel_values(8, 8) + 10 * n for n in range(3)]
    ds = instance(*frames)
    shared, transformation = Dataset(), Dataset()
    transformation.RescaleSlope, transformation.RescaleIntercept, transformation.RescaleType = 2, -1024, "HU"
    shared.PixelValueTransformationSequence = [transformation]
    ds.SharedFunctionalGroupsSequence = [shared]
    windows = [(1000, 400), (2000, 3000), (3000, 500)]
    per_frame = []
    for center, width in windows:
        group, voi = Dataset(), Dataset()
        voi.WindowCenter, voi.WindowWidth = center, width
        group.FrameVOILUTSequence = [voi]
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    hounsfield = frames[1].astype(np.float64) * 2 - 1024
    assert np.array_equal(rendered(ds, frame=2), linear(hounsfield, *windows[1]))


# -- colour --------------------------------------------------------------------------------------------------------

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [128, 128, 128], [20, 200, 90]],
                   dtype=np.uint8)


def test_rgb_is_shown_as_stored() -> None:
    rgb = np.random.default_rng(7).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    assert np.array_equal(rendered(instance(rgb, photometric="RGB")), rgb)


def test_ybr_full_is_shown_as_rgb() -> None:
    rgb = np.repeat(COLOURS[None, :, :], 4, axis=0)                    # 4 rows of the six colours
    ds = instance(convert_color_space(rgb, "RGB", "YBR_FULL"), photometric="YBR_FULL")
    shown = rendered(ds).astype(int)
    assert tuple(shown[0, 0]) == pytest.approx((255, 0, 0), abs=2)      # red stays red
    assert np.abs(shown - rgb).max() <= 2


def test_ybr_full_422_is_upsampled_and_shown_as_rgb() -> None:
    rgb = np.repeat(np.repeat(COLOURS[None, :, :], 2, axis=1), 2, axis=0)   # 2 rows, each colour twice across
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    luma = ybr[..., 0].reshape(2, 6, 2)
    packed = np.stack([luma[..., 0], luma[..., 1], ybr[:, ::2, 1], ybr[:, ::2, 2]], axis=-1)  # Y Y Cb Cr
    ds = instance(rgb, photometric="YBR_FULL_422")
    ds.PixelData = packed.astype(np.uint8).tobytes()
    assert np.abs(rendered(ds).astype(int) - rgb).max() <= 2


def test_palette_colour_goes_through_its_lookup_tables() -> None:
    indices = (np.arange(16, dtype=np.uint8) % 4).reshape(4, 4)
    ds = instance(indices, photometric="PALETTE COLOR")
    luts = {"red": np.array([0, 65535, 0, 32768] + [0] * 252, dtype=np.uint16),
            "green": np.array([0, 0, 65535, 16384] + [0] * 252, dtype=np.uint16),
            "blue": np.array([65535, 0, 0, 1000] + [0] * 252, dtype=np.uint16)}
    for n, lut in enumerate(luts.values()):      # (0028,1101..1103) descriptors, (0028,1201..1203) data
        add_lut(ds, 0x00281101 + n, 0x00281201 + n, lut)
    expected = np.rint(np.stack([lut[indices] for lut in luts.values()], axis=-1) * 255.0 / 65535).astype(np.uint8)
    assert np.array_equal(rendered(ds), expected)


# -- frames and size -----------------------------------------------------------------------------------------------

def test_a_multi_frame_instance_renders_the_asked_frame() -> None:
    frames = [(pixel_values(8, 8) + 300 * n) % 4096 for n in range(5)]
    ds = instance(*frames)
    assert np.array_equal(rendered(ds, frame=3, window=FULL_12_BIT), linear(frames[2], 2048, 4096))
    with pytest.raises(NotFound, match="5 frame"):
        rendered(ds, frame=6)


def test_only_the_asked_frame_is_decoded() -> None:
    """Frame 1 is not RLE at all: frames 2-5 still render, so they are decoded one by one."""
    frames = [(pixel_values(16, 16) + 300 * n) % 4096 for n in range(5)]
    ds = instance(*frames)
    ds.compress(RLELossless, generate_instance_uid=False)
    fragments = list(generate_frames(ds.PixelData, number_of_frames=5))
    encapsulated(ds, RLELossless, [b"\x00" * 64, *fragments[1:]])
    assert np.array_equal(decode_frame(stored(ds), 3), frames[2])
    with pytest.raises(NotAcceptable, match=r"RLE Lossless \(1\.2\.840\.10008\.1\.2\.5\) pixel data cannot be decoded"):
        rendered(ds, frame=1)


@pytest.mark.parametrize(("viewport", "shape"), [((64, 64), (32, 64)), ((10, 100), (5, 10)), ((16, 8), (8, 16))])
def test_the_viewport_scales_and_keeps_the_aspect_ratio(viewport: tuple[int, int], shape: tuple[int, int]) -> None:
    ds = instance(pixel_values(8, 16))                  # 8 rows, 16 columns
    assert rendered(ds, viewport=viewport).shape == shape
    assert rendered(ds, media_type="image/jpeg", viewport=viewport).shape == shape


# -- transfer syntaxes ---------------------------------------------------------------------------------------------

def jpeg_lossless(syntax: str) -> Dataset:
    """JPEG process 14 by libjpeg-turbo (imagecodecs): predictor 1 for SV1 (.70), 6 for plain .57."""
    code = imagecodecs.jpeg8_encode(pixel_values(64, 64), lossless=True, bitspersample=16,
                                    predictor=1 if syntax == JPEGLosslessSV1 else 6)
    return encapsulated(make_instance(rows=64, columns=64), syntax, [code])


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                                    RLELossless, JPEGLSLossless, JPEG2000Lossless, JPEGLossless, JPEGLosslessSV1])
def test_lossless_transfer_syntaxes_render_the_exact_values(syntax: str) -> None:
    if syntax in (JPEGLossless, JPEGLosslessSV1):
        ds = jpeg_lossless(syntax)
    else:
        ds = make_instance(rows=64, columns=64, transfer_syntax=syntax)   # pydicom's own or a plugin's encoder
    read = stored(ds)
    assert read.file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(decode_frame(read, 1), pixel_values(64, 64))
    assert np.array_equal(rendered(ds, window=FULL_12_BIT), linear(pixel_values(64, 64), 2048, 4096))


def test_jpeg_baseline_grey_renders_within_a_tolerance() -> None:
    grey = np.add.outer(np.arange(32) * 4, np.arange(32) * 4).clip(0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(grey).save(out, format="JPEG", quality=95)
    ds = encapsulated(instance(grey), JPEGBaseline8Bit, [out.getvalue()])
    ds.LossyImageCompression = "01"
    shown = rendered(ds, window=Window(128, 256))            # LINEAR 128/256 maps x to x
    assert np.abs(shown.astype(int) - grey).max() <= 4


def test_jpeg_baseline_ybr_full_422_is_shown_as_rgb_by_either_decoder() -> None:
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[:, :8] = (255, 0, 0)
    rgb[:, 8:] = (0, 0, 255)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=95, subsampling=1)     # 4:2:2, YCbCr (JFIF)
    ds = encapsulated(instance(rgb, photometric="YBR_FULL_422"), JPEGBaseline8Bit, [out.getvalue()])
    ds.LossyImageCompression = "01"
    shown = rendered(ds).astype(int)
    assert np.abs(shown[:, :6] - (255, 0, 0)).max() <= 6 and np.abs(shown[:, 10:] - (0, 0, 255)).max() <= 6
    by_libjpeg_turbo = pixel_array(stored(ds), index=0, decoding_plugin="imagecodecs").astype(int)
    assert np.abs(by_libjpeg_turbo - shown).max() <= 6


@pytest.mark.parametrize(("syntax", "fragment", "message"), [
    (JPEG2000, b"\xff\x4f\xff\x51" + b"garbage" * 20, r"JPEG 2000 Image Compression \(1\.2\.840\.10008\.1\.2\.4\.91\) "
                                                      r"pixel data cannot be decoded here: pylibjpeg: "),
    (JPEGLosslessSV1, b"\xff\xd8\xff\xc3" + b"\x00" * 60, r"\(1\.2\.840\.10008\.1\.2\.4\.70\) pixel data cannot be "
                                                          r"decoded here: imagecodecs: "),
    (RLELossless, b"\x07" * 64, r"RLE Lossless .* cannot be decoded here"),
    (MPEG2MPML, b"\x00\x00\x01\xb3" * 16, r"MPEG2 .* cannot be decoded here: no decoder for it"),
])
def test_an_undecodable_frame_is_not_acceptable_with_the_syntax_named(syntax: str, fragment: bytes,
                                                                      message: str) -> None:
    ds = encapsulated(make_instance(rows=64, columns=64), syntax, [fragment])
    with pytest.raises(NotAcceptable, match=message):
        rendered(ds)


def test_an_instance_without_pixel_data_is_not_acceptable() -> None:
    ds = make_instance()
    del ds.PixelData
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EncapsulatedPDFStorage
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = b"%PDF-1.4\n%%EOF\n"
    with pytest.raises(NotAcceptable, match=r"Encapsulated PDF Storage\) has no pixel data to render"):
        rendered(ds)


@pytest.mark.parametrize(("uid", "text"), [
    (JPEG2000Lossless, "JPEG 2000 Image Compression (Lossless Only) (1.2.840.10008.1.2.4.90)"),
    ("1.2.3.4", "1.2.3.4"),
    ("", "an unknown transfer syntax"),
    (None, "an unknown transfer syntax"),
])
def test_describe_transfer_syntax(uid: str | None, text: str) -> None:
    assert describe_transfer_syntax(uid) == text


# -- the render cache ----------------------------------------------------------------------------------------------

SHA = "ab" * 32


def test_cache_keys_name_the_bytes_the_frame_and_the_options() -> None:
    options = RenderOptions("image/jpeg", Window(40, 400), (256, 256), 80)
    key = cache_key(SHA, 1, options)
    assert len(key) == 64 and key == cache_key(SHA.upper(), 1, RenderOptions("image/jpeg", Window(40, 400),
                                                                             (256, 256), 80))
    others = [cache_key("cd" * 32, 1, options), cache_key(SHA, 2, options),
              cache_key(SHA, 1, RenderOptions("image/png", Window(40, 400), (256, 256), 80)),
              cache_key(SHA, 1, RenderOptions("image/jpeg", Window(40, 401), (256, 256), 80)),
              cache_key(SHA, 1, RenderOptions("image/jpeg", Window(40, 400, "SIGMOID"), (256, 256), 80)),
              cache_key(SHA, 1, RenderOptions("image/jpeg", None, (256, 256), 80)),
              cache_key(SHA, 1, RenderOptions("image/jpeg", Window(40, 400), None, 80)),
              cache_key(SHA, 1, RenderOptions("image/jpeg", Window(40, 400), (256, 256), 81))]
    assert len({key, *others}) == 1 + len(others)
    assert cache_key(SHA, 1, RenderOptions("image/png", quality=10)) == cache_key(SHA, 1, RenderOptions("image/png"))


def test_cache_put_then_get(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path / "rendered")
    key = cache_key(SHA, 1, RenderOptions())
    assert cache.get(key) is None
    cache.put(key, b"\xff\xd8 an image")
    assert cache.get(key) == b"\xff\xd8 an image"
    assert (tmp_path / "rendered" / key[:2] / key).is_file()
    cache.put(key, b"another")
    assert cache.get(key) == b"another"
    with pytest.raises(ValueError, match="64 lower-case hex"):
        cache.get("../../etc/passwd")
    assert shared_cache(tmp_path / "x") is shared_cache(tmp_path / "x")


def test_cache_evicts_the_least_recently_used_when_over_budget(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, max_bytes=11_000, sweep_every=1000)     # room for five entries of 2032 bytes
    keys = [cache_key(SHA, n, RenderOptions()) for n in range(6)]
    now = time.time()
    for n, key in enumerate(keys[:5]):
        cache.put(key, bytes([n]) * 2000)
        os.utime(tmp_path / key[:2] / key, (now - 100 + n, now - 100 + n))   # put one second apart, long ago
    assert cache.get(keys[0]) == bytes([0]) * 2000          # read: now the most recently used
    cache.put(keys[5], b"\x05" * 2000)                      # 6 x 2032 bytes > 11,000: down to 90 %
    present = [cache.get(key) is not None for key in keys]
    assert present == [True, False, False, True, True, True]
    assert cache.size() == 4 * 2032


def test_a_damaged_or_missing_entry_is_a_miss(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path)
    key = cache_key(SHA, 1, RenderOptions())
    cache.put(key, b"x" * 100)
    path = tmp_path / key[:2] / key
    path.write_bytes(path.read_bytes()[:-1] + b"y")          # one byte changed
    assert cache.get(key) is None and not path.exists()
    path.write_bytes(b"short")
    assert cache.get(key) is None
    cache.put(key, b"again")
    path.unlink()                                            # evicted by another process
    assert cache.get(key) is None


def test_a_cache_that_cannot_write_does_not_fail(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    cache = RenderCache(tmp_path / "file" / "rendered")     # under a file: no folder can be made
    key = cache_key(SHA, 1, RenderOptions())
    cache.put(key, b"image")
    assert cache.get(key) is None


def test_concurrent_puts_and_gets_from_threads_and_processes_sharing_a_folder(tmp_path: Path) -> None:
    """Two RenderCache objects on one folder stand for two gunicorn workers; eight threads use them."""
    caches = [RenderCache(tmp_path, max_bytes=20_000, sweep_every=8) for _ in range(2)]
    keys = [cache_key(SHA, n, RenderOptions()) for n in range(24)]
    seen: list[bytes] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        cache, k = caches[n % 2], n % len(keys)
        cache.put(keys[k], bytes([k]) * (1000 + n))
        data = cache.get(keys[(k * 7) % len(keys)])
        if data is not None:
            with lock:
                seen.append(data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(400)))
    assert seen and all(len(set(data)) == 1 and len(data) >= 1000 for data in seen)    # whole entries only
    caches[0].sweep()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(".tmp-")]
    assert sum(p.stat().st_size for p in files) <= 20_000
    for key in keys:
        data = caches[1].get(key)
        assert data is None or len(set(data)) == 1


def test_the_rendered_view_answers_from_the_cache_once_rendered(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = instance(pixel_values(8, 8))
    web.ingest(web.a, [ds])
    path = (f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
            f"/rendered?window=2048,4096,linear")

    def get() -> bytes:
        answer = web.call(web.a, "GET", path, scope="dicomweb:read", headers={"Accept": "image/png"})
        assert answer.status_code == 200 and answer.content_type == "image/png"
        return answer.get_data()  # type: ignore[no-any-return]

    first = get()
    with Image.open(io.BytesIO(first)) as image:
        assert np.array_equal(np.asarray(image), linear(pixel_values(8, 8), 2048, 4096))
    folder = web.app.config["XDSHUB_SETTINGS"].data_dir / "cache" / "rendered"
    assert len([p for p in folder.rglob("*") if p.is_file()]) == 2          # the image and its window

    def no_rendering(*args: object) -> bytes:
        raise AssertionError("rendered again instead of read from the cache")
    monkeypatch.setattr(render_cache, "render", no_rendering)
    assert get() == first
