"""Rendered frames (PS3.18 9.5 and 8.3.5.1; IHE RAD-107): a frame as a consumer-ready JPEG or PNG.

Only the asked frame is decoded (`repository.dicomweb.pixels`, which lists the
decoder of each transfer syntax). The grayscale pipeline of PS3.3 C.11 /
PS3.4 N.2: stored values (signed or not, Bits Stored masked by pydicom), then
the Modality LUT (Modality LUT Sequence, else Rescale Slope and Intercept,
C.11.1), then the VOI: the `window=center,width,function` query parameter,
else the instance's VOI LUT Sequence (C.11.2.1.1, its output scaled from the
LUT's bit depth), else its first Window Center and Width, else the frame's own
range, with the functions LINEAR (C.11.2.1.2.1), LINEAR_EXACT (C.11.2.1.3.2)
and SIGMOID (C.11.2.1.3.1), into 8 bits; MONOCHROME1 is inverted so that black
is the lowest value. Enhanced multi-frame instances carry the rescale and the
window per frame (Pixel Value Transformation and Frame VOI LUT functional
groups, C.7.6.16.2.9 and .10): the frame's own are used. Colour: RGB, YBR_FULL
and YBR_FULL_422 (given as RGB by pydicom), YBR_ICT and YBR_RCT (given as RGB
by the JPEG 2000 decoders), PALETTE COLOR through its lookup tables (C.7.6.3.1.5);
deeper than 8 bits scaled down. `viewport=vw,vh` scales the image to fit the
viewport, keeping its aspect ratio (8.3.5.1.3); `quality` (1-100) is the JPEG
quality (8.3.5.1.2). Pixel data that cannot be decoded or rendered is
NotAcceptable (406), never a 500.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from repository.dicomweb.errors import BadRequest, NotAcceptable
from repository.dicomweb.pixels import DECODE_ERRORS, decode_frame

__all__ = ["RENDERED_TYPES", "RenderOptions", "Rendered", "Window", "parse_render_options", "render", "voi_window"]

RENDERED_TYPES = ("image/jpeg", "image/png")    # the first is the default
FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}
PARAMETERS = frozenset({"window", "viewport", "quality"})
DEFAULT_QUALITY = 90
MAX_VIEWPORT = 8192
# The Modality LUT and VOI LUT attributes the grey pipeline reads (PS3.3 C.11.1, C.11.2) ...
LUT_KEYWORDS = ("RescaleSlope", "RescaleIntercept", "ModalityLUTSequence", "WindowCenter", "WindowWidth",
                "VOILUTFunction", "VOILUTSequence", "PixelRepresentation")
# ... which enhanced multi-frame instances put in functional groups (PS3.3 C.7.6.16.2.9, C.7.6.16.2.10)
FRAME_GROUPS = ("PixelValueTransformationSequence", "FrameVOILUTSequence")


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "LINEAR"      # VOI LUT Function (0028,1056) term


@dataclass(frozen=True)
class RenderOptions:
    media_type: str = "image/jpeg"
    window: Window | None = None
    viewport: tuple[int, int] | None = None
    quality: int = DEFAULT_QUALITY


def _numbers(name: str, value: str, count: int) -> list[str]:
    items = [v.strip() for v in value.split(",")]
    if len(items) != count:
        raise BadRequest(f"{name} takes {count} comma-separated values, got {value[:80]!r}")
    return items


def parse_render_options(params: Mapping[str, str], media_type: str) -> RenderOptions:
    """The rendering parameters of the query (PS3.18 8.3.5.1); BadRequest naming a wrong one."""
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise BadRequest(f"unsupported rendering parameter(s) {', '.join(unknown)}; "
                         f"supported: {', '.join(sorted(PARAMETERS))}")
    window = None
    if "window" in params:
        center, width, function = _numbers("window", params["window"], 3)
        if function.lower() not in FUNCTIONS:
            raise BadRequest(f"window function must be one of {', '.join(FUNCTIONS)}, got {function[:20]!r}")
        try:
            window = Window(float(center), float(width), FUNCTIONS[function.lower()])
        except ValueError:
            raise BadRequest(f"window center and width must be numbers, got {params['window'][:80]!r}") from None
        _check_width(window)
    viewport = None
    if "viewport" in params:
        vw, vh = _numbers("viewport", params["viewport"], 2)
        if not (vw.isdigit() and vh.isdigit()) or not (0 < int(vw) <= MAX_VIEWPORT and 0 < int(vh) <= MAX_VIEWPORT):
            raise BadRequest(f"viewport must be two whole numbers from 1 to {MAX_VIEWPORT}, "
                             f"got {params['viewport'][:80]!r}")
        viewport = (int(vw), int(vh))
    quality = DEFAULT_QUALITY
    if "quality" in params:
        value = params["quality"]
        if not value.isdigit() or not 1 <= int(value) <= 100:
            raise BadRequest(f"quality must be a whole number from 1 to 100, got {value[:20]!r}")
        quality = int(value)
    return RenderOptions(media_type, window, viewport, quality)


def _check_width(window: Window) -> None:
    minimum = 1.0 if window.function == "LINEAR" else 0.0   # C.11.2.1.2.1: width >= 1; others: > 0
    if window.width < minimum or (minimum == 0.0 and window.width <= 0):
        raise BadRequest(f"window width {window.width:g} is not allowed for {window.function}")


def voi_window(values: np.ndarray, window: Window, out_max: int = 255) -> np.ndarray:
    """PS3.3 C.11.2.1.2 and C.11.2.1.3: values through the VOI window into 0..out_max (uint8 for 255)."""
    x = values.astype(np.float64)
    c, w = window.center, window.width
    if window.function == "LINEAR_EXACT":
        y = np.clip((x - c) / w + 0.5, 0.0, 1.0)
    elif window.function == "SIGMOID":
        y = 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    else:   # LINEAR: y = ((x - (c - 0.5)) / (w - 1) + 0.5) with the two clamps
        if w == 1:
            y = np.where(x > c - 0.5, 1.0, 0.0)
        else:
            y = np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)
            y = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, np.where(x > c - 0.5 + (w - 1) / 2, 1.0, y))
    return np.rint(y * out_max).astype(np.uint8)


def _first(value: object) -> float:
    """The first value of a possibly multi-valued DS (Window Center and Width may hold several windows)."""
    if isinstance(value, MultiValue | list | tuple):
        value = value[0]
    return float(value)  # type: ignore[arg-type]


def _dataset_window(attributes: Dataset, values: np.ndarray) -> Window:
    center, width = attributes.get("WindowCenter"), attributes.get("WindowWidth")
    function = str(attributes.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if function not in FUNCTIONS.values():
        function = "LINEAR"
    if center is not None and width is not None:
        try:
            window = Window(_first(center), _first(width), function)
            if window.width >= 1:
                return window
        except (TypeError, ValueError, IndexError):
            pass
    low, high = float(values.min()), float(values.max())
    return Window((low + high + 1) / 2, max(high - low + 1, 1.0))


def _frame_attributes(dataset: Dataset, index: int) -> Dataset:
    """The LUT attributes that hold for frame `index`: the top level's, then the shared, then the frame's groups'."""
    shared, per_frame = dataset.get("SharedFunctionalGroupsSequence"), dataset.get("PerFrameFunctionalGroupsSequence")
    if not shared and not per_frame:
        return dataset
    attributes = Dataset()
    if hasattr(dataset, "file_meta"):       # the byte order of OW LUT Data
        attributes.file_meta = dataset.file_meta
    for keyword in LUT_KEYWORDS:
        if keyword in dataset:
            attributes.add(dataset.data_element(keyword))  # type: ignore[arg-type]
    groups = ([shared[0]] if shared else []) + ([per_frame[index]] if per_frame and index < len(per_frame) else [])
    for group in groups:
        for keyword in FRAME_GROUPS:
            if group.get(keyword):
                for element in group.get(keyword)[0]:
                    attributes.add(element)
    return attributes


def _voi_lut(attributes: Dataset, values: np.ndarray) -> np.ndarray | None:
    """PS3.3 C.11.2.1.1: the values through the first VOI LUT into 0..255; None when there is no usable one."""
    items = attributes.get("VOILUTSequence")
    if not items or items[0].get("LUTData") is None:
        return None
    try:
        entries, first, depth = (int(v) for v in items[0].LUTDescriptor)
        if first > 0x7FFF and int(attributes.get("PixelRepresentation", 0) or 0) == 1:
            first -= 0x10000       # C.11.2.1.1: the first mapped value is signed (SS) for signed pixels
        entries = entries or 0x10000
        indices = np.clip(np.rint(values), first, first + entries - 1).astype(np.int64)
        output = apply_voi_lut(indices, attributes, prefer_lut=True)
    except DECODE_ERRORS:    # a malformed LUT: the window is used instead
        return None
    return np.rint(output.astype(np.float64) * 255.0 / (2 ** depth - 1)).clip(0, 255).astype(np.uint8)


def _grey(dataset: Dataset, frame: np.ndarray, window: Window | None, index: int) -> tuple[Image.Image, Window | None]:
    """The grey image and the window it went through (None: the VOI LUT)."""
    attributes = _frame_attributes(dataset, index)
    values = apply_modality_lut(frame, attributes)
    grey = _voi_lut(attributes, values) if window is None else None
    if grey is None:
        window = window or _dataset_window(attributes, values)
        grey = voi_window(values, window)
    if str(dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        grey = 255 - grey
    return Image.fromarray(grey), window


def _colour(dataset: Dataset, frame: np.ndarray) -> Image.Image:
    if str(dataset.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
        frame = apply_color_lut(frame, dataset)
        bits = int(dataset.RedPaletteColorLookupTableDescriptor[2])   # bits of each LUT entry, 8 or 16
    else:
        bits = int(dataset.get("BitsStored", 8) or 8)
    if frame.dtype != np.uint8 or bits != 8:
        frame = np.clip(np.rint(frame.astype(np.float64) * 255.0 / (2 ** bits - 1)), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(frame[..., :3]))


def _fit(image: Image.Image, viewport: tuple[int, int] | None) -> Image.Image:
    if viewport is None:
        return image
    vw, vh = viewport
    scale = min(vw / image.width, vh / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.BILINEAR)


@dataclass(frozen=True)
class Rendered:
    image: bytes
    window: Window | None      # the VOI window a grey frame went through; None for colour or a VOI LUT


def render(dataset: Dataset, number: int, options: RenderOptions) -> Rendered:
    """Frame `number` (from 1) of the instance as options.media_type, with the window it went through (where a
    viewer adjusting it starts); NotAcceptable when it cannot be rendered."""
    frame = decode_frame(dataset, number)
    window = None
    try:
        if frame.ndim == 3 or str(dataset.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
            image = _colour(dataset, frame)
        else:
            image, window = _grey(dataset, frame, options.window, number - 1)
    except DECODE_ERRORS as exc:
        raise NotAcceptable(f"the instance's pixel data cannot be rendered here: {exc}") from None
    image = _fit(image, options.viewport)
    out = io.BytesIO()
    if options.media_type == "image/png":
        image.save(out, format="PNG")
    else:
        image.save(out, format="JPEG", quality=options.quality)
    return Rendered(out.getvalue(), window)
