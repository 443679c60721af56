"""Augmentation functions: shapes, ranges, and that they really change pictures the way uploads do."""
import numpy as np
import pytest
from PIL import Image

from training.augment import (RedeliveryConfig, add_noise, epoch_images, flip_and_shift, make_variants, redeliver,
                              reencode, resample_round_trip)
from conftest import synthetic_image


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return np.stack([synthetic_image(i % 2, rng) for i in range(16)])


def test_redeliver_keeps_shape_and_dtype_and_changes_pixels(images):
    rng = np.random.default_rng(1)
    always = RedeliveryConfig(p_resample=1.0, p_jpeg=1.0, p_webp=0.0, p_blur=1.0, p_noise=1.0, p_colour=1.0)
    out = redeliver(images[0], rng, always)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - images[0]).mean() > 2


def test_redeliver_with_all_probabilities_zero_is_identity(images):
    never = RedeliveryConfig(p_resample=0, p_jpeg=0, p_webp=0, p_blur=0, p_noise=0, p_colour=0)
    np.testing.assert_array_equal(redeliver(images[3], np.random.default_rng(0), never), images[3])


def test_resample_round_trip_returns_the_original_size(images):
    out = resample_round_trip(Image.fromarray(images[1]), np.random.default_rng(2))
    assert out.size == (32, 32)


def test_jpeg_reencoding_at_low_quality_loses_detail(images):
    noisy = images[0]  # a REAL-like noisy texture
    low = np.asarray(reencode(Image.fromarray(noisy), "JPEG", 30), int)
    high = np.asarray(reencode(Image.fromarray(noisy), "JPEG", 95), int)
    assert np.abs(low - noisy).mean() > np.abs(high - noisy).mean()


def test_noise_is_clipped_to_the_pixel_range():
    out = add_noise(np.full((32, 32, 3), 255, np.uint8), 50.0, np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.max() == 255 and out.min() < 255


def test_flip_and_shift_moves_pixels_by_whole_steps():
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[0, 16, 10] = 255
    rng = np.random.default_rng(5)
    for _ in range(20):
        out = flip_and_shift(image, rng, max_shift=2)
        ys, xs = np.nonzero(out[0, :, :, 0])
        assert len(ys) == 1  # integer shifts: the dot stays one pixel, never smeared
        assert abs(ys[0] - 16) <= 2 and (abs(xs[0] - 10) <= 2 or abs(xs[0] - 21) <= 2)


def test_variants_are_deterministic_and_cached(images, tmp_path):
    first = make_variants(images, 2, seed=0, workers=1, cache_dir=tmp_path)
    second = make_variants(images, 2, seed=0, workers=1, cache_dir=tmp_path)
    assert first.shape == (2, 16, 32, 32, 3)
    np.testing.assert_array_equal(first, second)
    assert len(list(tmp_path.glob("variants-*.npy"))) == 1


def test_epoch_images_mix_clean_and_variants(images):
    variants = np.stack([255 - images, 255 - images])
    out = epoch_images(images, variants, np.random.default_rng(0), p_clean=0.5)
    assert out.shape == images.shape and out.dtype == np.uint8


def test_epoch_images_say_which_copy_each_image_is(images):
    variants = np.stack([255 - images, images // 2])
    out, choice = epoch_images(images, variants, np.random.default_rng(3), p_clean=0.4, max_shift=0, return_choice=True)
    same = epoch_images(images, variants, np.random.default_rng(3), p_clean=0.4, max_shift=0)
    np.testing.assert_array_equal(out, same)  # asking for the choice draws nothing more
    copies = np.concatenate([images[None], variants])  # 0 = clean, v + 1 = variant v
    assert set(choice) <= {0, 1, 2} and len(set(choice)) > 1
    for i, c in enumerate(choice):
        assert np.array_equal(out[i], copies[c, i]) or np.array_equal(out[i], copies[c, i, :, ::-1])
