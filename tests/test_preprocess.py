"""The bad-input set: every file gives a prediction or a clear ValueError — nothing else, no hang."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from inference.preprocess import load_image, prepare_image, preprocess_image


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _photo(width=64, height=48, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (and no real pixel data)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def _exif_rotated_jpeg() -> bytes:
    """A 60x20 landscape picture stored with EXIF orientation 6 (rotate 90° clockwise to view)."""
    image = Image.new("RGB", (60, 20), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, 30, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(image, "JPEG", exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [Image.new("P", (40, 40), i * 40) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def _sixteen_bit_png() -> bytes:
    values = (np.linspace(0, 65535, 32 * 32).reshape(32, 32)).astype(np.uint16)
    return _save(Image.fromarray(values, "I;16"), "PNG")


BAD_INPUTS = {
    "zero_bytes.jpg": (b"", "empty"),
    "text_renamed.jpg": (b"hello, I am a text file\n" * 20, "not a picture"),
    "truncated.jpg": (_save(_photo(256, 256), "JPEG")[:700], "truncated or corrupt"),
    "bomb_header.png": (_png_header_claiming(50_000, 50_000), "megapixels"),
    "drawing.svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
                    "not a picture"),
}
GOOD_INPUTS = {
    "one_pixel.png": _save(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"),
    "animated.gif": _animated_gif(),
    "cmyk.jpg": _save(Image.new("CMYK", (40, 30), (0, 128, 255, 0)), "JPEG"),
    "sixteen_bit.png": _sixteen_bit_png(),
    "rgba.png": _save(Image.new("RGBA", (40, 40), (255, 0, 0, 128)), "PNG"),
    "palette.png": _save(_photo().convert("P"), "PNG"),
    "exif_rotated.jpg": _exif_rotated_jpeg(),
    "grayscale.jpg": _save(_photo().convert("L"), "JPEG"),
    "webp.webp": _save(_photo(), "WEBP"),
    "bmp.bmp": _save(_photo(), "BMP"),
    "tiff.tif": _save(_photo(), "TIFF"),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gives_a_clear_value_error(name, classifier):
    data, message = BAD_INPUTS[name]
    with pytest.raises(ValueError, match=message):
        classifier.predict(data, name=name)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", sorted(GOOD_INPUTS))
def test_unusual_but_valid_pictures_get_a_prediction(name, classifier):
    prediction = classifier.predict(GOOD_INPUTS[name], name=name)
    assert 0.0 <= prediction.p_fake <= 1.0
    assert prediction.label in ("REAL", "FAKE", "UNCERTAIN")


def test_every_upload_becomes_32x32_uint8_rgb():
    for data in GOOD_INPUTS.values():
        pixels = preprocess_image(data)
        assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8


def test_exif_orientation_is_applied():
    image, _ = load_image(_exif_rotated_jpeg())
    assert image.size == (20, 60)  # portrait after rotation
    prepared = prepare_image(_exif_rotated_jpeg())
    assert prepared.original_size == (20, 60)
    # rotated 90° clockwise: the blue left half ends up on top
    assert prepared.pixels[2, 16, 2] > prepared.pixels[2, 16, 0]
    assert prepared.pixels[29, 16, 0] > prepared.pixels[29, 16, 2]


def test_alpha_is_composited_on_white():
    transparent = _save(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), "PNG")
    assert preprocess_image(transparent).min() == 255


def test_sixteen_bit_keeps_its_range():
    pixels = preprocess_image(_sixteen_bit_png())
    assert pixels.min() < 20 and pixels.max() > 235


def test_animated_gif_uses_the_first_frame():
    pixels = preprocess_image(_animated_gif())
    first = preprocess_image(_save(Image.new("P", (40, 40), 0), "GIF"))
    np.testing.assert_array_equal(pixels, first)


def test_cifake_sized_jpeg_passes_through_unresized(sample_paths):
    path = sample_paths["REAL"][0]
    pixels = preprocess_image(path)
    np.testing.assert_array_equal(pixels, np.asarray(Image.open(path).convert("RGB")))


def test_large_photo_is_shrunk_with_antialiasing():
    stripes = np.zeros((3000, 4000, 3), np.uint8)
    stripes[:, ::2] = 255  # 1-pixel stripes: aliasing would give a black or white picture
    pixels = preprocess_image(_save(Image.fromarray(stripes), "PNG"))
    assert 100 < pixels.mean() < 155


def test_arrays_are_accepted_and_wrong_dtypes_refused():
    assert preprocess_image(np.zeros((64, 64, 3), np.uint8)).shape == (32, 32, 3)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_image(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        preprocess_image(np.zeros((64, 64, 5), np.uint8))


def test_missing_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        preprocess_image(tmp_path / "nope.jpg")
