"""The one preprocessing path: any picture -> the (32, 32, 3) uint8 RGB array the model sees.

Training, evaluation, the CLI and the app all call `preprocess_image`. Scaling to [0, 1] is *not*
done here: it lives inside the model graph (`Rescaling(1/255)`), so the model takes 0-255 pixels.

Decisions, each chosen to resemble how CIFAKE's images were made:
- The whole picture is resized to 32x32 without cropping (aspect ratio is not kept), as in the
  80 Million Tiny Images collection that CIFAR-10 comes from; Stable Diffusion's images were square.
- Shrinking is antialiased (Pillow LANCZOS after a box `reduce` for large pictures; JPEGs are
  DCT-downscaled while decoding). `bench/robustness.py --compare-resample` measures the choices.
- EXIF orientation is applied; the first frame of animated files is used; alpha is composited on
  white; grayscale, palette, CMYK and 16-bit pictures become 8-bit RGB.
"""
from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
MAX_FILE_BYTES = 50 * 1024 * 1024  # larger uploads are refused before decoding
MAX_PIXELS = 50_000_000  # ~ a 8660x5773 picture; above this we refuse (decompression bombs)
MAX_SIDE = 20_000  # absurd dimensions (e.g. 1x100000 strips) are refused too
MODEL_SIZE = (32, 32)  # (width, height); the metadata overrides it when it says otherwise
LARGE_PIXELS = 12_000_000  # pictures above this are decoded one at a time ...
WORKING_SIDE = 2048  # ... and box-reduced to about this longer side right after decoding
DECODE_BUDGET_BYTES = 512 * 2**20  # decoded pixels of all pictures being decoded at once (every size)
DECODE_COPIES = 3  # decoded buffer + alpha composite / mode conversion copies alive at the peak
_EXIF_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                   4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                   7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
RESAMPLE_METHODS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
}
DEFAULT_RESAMPLE = "lanczos"

ImageSource = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray]


@dataclass(frozen=True)
class PreparedImage:
    """What the model sees plus what the explanation needs to know about the original."""

    pixels: np.ndarray  # (32, 32, 3) uint8 RGB, the model input for one picture
    display: Image.Image  # the decoded original as 8-bit RGB (orientation applied)
    original_size: tuple[int, int]  # (width, height) of the original picture
    original_format: str  # "JPEG", "PNG", ..., or "array"

    @property
    def shrink_factor(self) -> float:
        """How many times larger than the model input the original's longer side was."""
        return max(self.original_size) / max(self.pixels.shape[:2])


def _open_bytes(data: bytes, name: str) -> Image.Image:
    if len(data) == 0:
        raise ValueError(f"{name} is empty (0 bytes): there is no picture to look at.")
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(
            f"{name} is {len(data) / 1e6:.0f} MB; files up to {MAX_FILE_BYTES // 2**20} MB are accepted."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(
            f"{name} claims to be larger than {MAX_PIXELS / 1e6:.0f} megapixels (a decompression bomb or an "
            "absurdly large picture); smaller pictures are accepted."
        ) from err
    except UnidentifiedImageError as err:
        raise ValueError(
            f"{name} is not a picture this app can read (accepted: JPEG, PNG, WebP, GIF, BMP, TIFF)."
        ) from err
    except (OSError, SyntaxError) as err:  # Pillow raises these for malformed headers
        raise ValueError(f"{name} looks like a picture but its header is damaged: {err}") from err
    return image


def _check_dimensions(image: Image.Image, name: str) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise ValueError(f"{name} has no pixels ({width}x{height}).")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ValueError(
            f"{name} claims to be {width}x{height} pixels; pictures up to {MAX_PIXELS / 1e6:.0f} "
            f"megapixels and {MAX_SIDE} pixels a side are accepted."
        )


def _to_rgb8(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. Alpha is composited on white; 16-bit keeps its top 8 bits."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image)  # (H, W) 0..65535 (or int32); scaled in row blocks to bound memory
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        scaled = np.empty(values.shape, np.uint8)
        for start in range(0, values.shape[0], 512):
            block = values[start:start + 512].astype(np.float64)
            scaled[start:start + 512] = np.clip(block / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        del values
        image = Image.fromarray(scaled, "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def load_image(source: ImageSource, name: str | None = None) -> tuple[Image.Image, str]:
    """Decode `source` into 8-bit RGB; see `decode_image`. Returns (image, format name)."""
    image, fmt, _ = decode_image(source, name)
    return image, fmt


def decode_image(source: ImageSource, name: str | None = None) -> tuple[Image.Image, str, tuple[int, int]]:
    """Decode `source` into an 8-bit RGB Pillow image with EXIF orientation applied.

    Accepts a path, raw bytes, a Pillow image or a uint8/uint16 array of shape (H, W), (H, W, 3) or
    (H, W, 4) in RGB(A) order. Raises ValueError, naming the problem, for anything unusable.
    Returns (image, format name, (width, height) of the original after orientation).
    """
    if isinstance(source, np.ndarray):
        image = _array_to_image(source)
        return image, "array", image.size
    if isinstance(source, Image.Image):
        image, fmt = source, source.format or "PIL"
        name = name or "the image"
    else:
        if isinstance(source, (bytes, bytearray)):
            data, name = bytes(source), name or "the upload"
        else:
            path = Path(source)
            name = name or path.name
            if not path.is_file():
                raise ValueError(f"{path} does not exist or is not a file.")
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"{name} is larger than {MAX_FILE_BYTES // 2**20} MB.")
            data = path.read_bytes()
        image = _open_bytes(data, name)
        fmt = image.format or "unknown"
    _check_dimensions(image, name)
    width, height = image.size
    large = width * height > LARGE_PIXELS
    try:
        orientation = image.getexif().get(0x0112, 1)
        if orientation in (5, 6, 7, 8):  # EXIF says: rotated by 90 degrees
            width, height = height, width
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)  # animated GIF/WebP/TIFF: the first frame
        if fmt == "JPEG" and max(image.size) > 8 * max(MODEL_SIZE):
            image.draft("RGB", (4 * MODEL_SIZE[0], 4 * MODEL_SIZE[1]))  # DCT downscale: fast, antialiased
        with DECODE_BUDGET.reserve(_decode_cost(image, large)):
            image.load()
            if large:  # formats that cannot decode reduced (PNG, TIFF, ...): shrink before anything else
                image = _to_rgb8(image)
                factor = max(1, max(image.size) // WORKING_SIDE)
                image = image.reduce(factor) if factor > 1 else image
                if orientation in _EXIF_TRANSPOSE:
                    image = image.transpose(_EXIF_TRANSPOSE[orientation])
                _give_back_memory()
            else:
                image = ImageOps.exif_transpose(image)
                image = _to_rgb8(image)
    except ValueError:
        raise
    except (OSError, SyntaxError, Image.DecompressionBombError, EOFError) as err:
        raise ValueError(f"{name} could not be decoded (truncated or corrupt data): {err}") from err
    return image, fmt, (width, height)


class DecodeBudget:
    """A budget of bytes shared by concurrent decodes: each waits until its estimated cost fits.

    One picture larger than the whole budget still runs, alone. Thread-safe; `peak` is the most ever
    reserved at once (for tests)."""

    def __init__(self, total_bytes: int):
        self.total = total_bytes
        self.reserved = self.peak = 0
        self._free = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, cost: int):
        cost = min(cost, self.total)
        with self._free:
            self._free.wait_for(lambda: self.reserved + cost <= self.total)
            self.reserved += cost
            self.peak = max(self.peak, self.reserved)
        try:
            yield
        finally:
            with self._free:
                self.reserved -= cost
                self._free.notify_all()


DECODE_BUDGET = DecodeBudget(DECODE_BUDGET_BYTES)


def _decode_cost(image: Image.Image, large: bool) -> int:
    """Estimated peak bytes of decoding `image` (after any JPEG draft); a large picture takes the
    whole budget, so large ones are still decoded one at a time."""
    if large:
        return DECODE_BUDGET.total
    bands = len(image.getbands())
    sample_bytes = 4 if image.mode in ("I", "F") else 2 if image.mode.startswith("I;16") else 1
    return image.size[0] * image.size[1] * max(bands, 3) * sample_bytes * DECODE_COPIES


def _give_back_memory() -> None:
    """Return the freed buffers of a large decode to the system (glibc keeps them otherwise)."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM = None


def _array_to_image(array: np.ndarray) -> Image.Image:
    if array.dtype == np.uint16:
        array = (array.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    if array.dtype != np.uint8:
        raise ValueError(f"Arrays must be uint8 (0-255) or uint16; got dtype {array.dtype}.")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"Arrays must have shape (H, W), (H, W, 3) or (H, W, 4); got {array.shape}.")
    image = Image.fromarray(np.ascontiguousarray(array))
    _check_dimensions(image, "the array")
    return _to_rgb8(image)


def resize_to_model_input(
    image: Image.Image, size: tuple[int, int] = MODEL_SIZE, resample: str = DEFAULT_RESAMPLE
) -> np.ndarray:
    """RGB Pillow image of any size -> (H, W, 3) uint8 array of `size` = (width, height)."""
    if resample not in RESAMPLE_METHODS:
        raise ValueError(f"resample must be one of {sorted(RESAMPLE_METHODS)}; got {resample!r}.")
    if image.size != tuple(size):
        # reducing_gap: a box reduce first for large pictures, then the chosen kernel (fast, antialiased)
        image = image.resize(size, RESAMPLE_METHODS[resample], reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8)


def prepare_image(
    source: ImageSource,
    name: str | None = None,
    size: tuple[int, int] = MODEL_SIZE,
    resample: str = DEFAULT_RESAMPLE,
) -> PreparedImage:
    """Decode and shrink one picture; keep the decoded original for display and explanation."""
    image, fmt, original_size = decode_image(source, name)
    return PreparedImage(resize_to_model_input(image, size, resample), image, original_size, fmt)


def preprocess_image(
    source: ImageSource,
    name: str | None = None,
    size: tuple[int, int] = MODEL_SIZE,
    resample: str = DEFAULT_RESAMPLE,
) -> np.ndarray:
    """Any picture -> (32, 32, 3) uint8 RGB array, pixel values 0-255. Raises ValueError if unusable."""
    image, _ = load_image(source, name)
    return resize_to_model_input(image, size, resample)
