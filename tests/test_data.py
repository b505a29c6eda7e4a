"""Tests of common/data.py: data specs, decoding, resize and crop, and the tf.data pipeline."""

from __future__ import annotations

import glob
import logging
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from common import data
from common import masks
from common import tfrecords

CROP = 32
BLOCK = 16

# The messy folder: constant colours chosen so that expected values are known.
GRAY_VALUE = 77
RGBA_RGB = (200, 50, 10)


def _level(value):
    """A uint8 pixel value in the pipeline's [-1, 1] range."""
    return np.asarray(value, np.float32) / 127.5 - 1.0


def example_fn(image, seed, index):
    """A minimal paper step: the image, a random block mask drawn from the seed, the index."""
    return {"image": image, "mask": masks.random_block_mask(seed, CROP, BLOCK), "index": index}


def _batches(dataset, count=None):
    """The first `count` batches (all when None) as dicts of numpy arrays."""
    if count is not None:
        dataset = dataset.take(count)
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset]


def _assert_same_batches(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _ramp(height, width, step=4):
    """uint8 image with channel 0 = step * column, channel 1 = step * row, channel 2 = 0."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([step * cols, step * rows, np.zeros_like(rows)], -1).astype(np.uint8)


def _centre_crop(array, size=CROP):
    top, left = (array.shape[0] - size) // 2, (array.shape[1] - size) // 2
    return array[top:top + size, left:left + size]


# --------------------------------------------------------------------------
# Fixtures: small folders of images written with PIL.
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory):
    """A folder of mixed images; returns (folder, dict of the arrays written)."""
    folder = tmp_path_factory.mktemp("messy")
    rng = np.random.default_rng(0)
    os.makedirs(folder / "sub")
    arrays = {}
    # A normal RGB JPEG in a nested folder (smooth content: decoders agree closely).
    rows, cols = np.mgrid[0:48, 0:64]
    photo = np.stack([3 * cols, 4 * rows, 255 - 2 * cols], -1).astype(np.uint8)
    Image.fromarray(photo).save(folder / "sub" / "photo.jpg", quality=95)
    arrays["photo"] = photo
    # Grayscale PNG with a known constant value.
    Image.fromarray(np.full((40, 40), GRAY_VALUE, np.uint8), mode="L").save(folder / "gray.png")
    # RGBA PNG: constant RGB, alpha varying from 0 to 255.
    rgba = np.zeros((36, 44, 4), np.uint8)
    rgba[..., :3] = RGBA_RGB
    rgba[..., 3] = np.linspace(0, 255, 36 * 44).reshape(36, 44).astype(np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(folder / "rgba.png")
    # Smaller than the crop: 20x30, channel 0 is a horizontal ramp 4 * column.
    small = _ramp(20, 30)
    Image.fromarray(small).save(folder / "small.png")
    arrays["small"] = small
    # A lossless WEBP with an alpha channel (TensorFlow's WebP decoder is strict about it).
    texture = rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)
    texture[..., 3] = rng.integers(1, 256, (40, 40), dtype=np.uint8)
    Image.fromarray(texture, mode="RGBA").save(folder / "texture.webp", lossless=True)
    arrays["texture"] = texture[..., :3]
    # A corrupt JPEG and a text file.
    (folder / "broken.jpg").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    (folder / "notes.txt").write_text("not an image\n")
    return str(folder), arrays


# File order of the usable images of the messy folder (sorted paths).
MESSY_ORDER = ("gray.png", "rgba.png", "small.png", "sub/photo.jpg", "texture.webp")


@pytest.fixture(scope="module")
def noise_folder(tmp_path_factory):
    """Seven random-noise PNGs of different sizes; returns (folder, arrays in file order)."""
    folder = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(1)
    arrays = []
    for i in range(7):
        array = rng.integers(0, 256, (40 + i, 48 + 2 * i, 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / f"img{i}.png")
        arrays.append(array)
    return str(folder), arrays


# --------------------------------------------------------------------------
# Data specs.
# --------------------------------------------------------------------------

def test_parse_data_spec_kinds(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(2):
        (shards / f"train-{i:05d}-of-00002.tfrecord").write_bytes(b"")
    pattern = str(shards / "train-*.tfrecord")
    single = str(shards / "train-00000-of-00002.tfrecord")

    assert data.parse_data_spec("sample") == ("sample", "")
    assert data.parse_data_spec("tfds:celeb_a") == ("tfds", "celeb_a")
    assert data.parse_data_spec("tfds:celeb_a:validation") == ("tfds", "celeb_a:validation")
    assert data.parse_data_spec(str(tmp_path)) == ("folder", str(tmp_path))
    assert data.parse_data_spec(str(shards)) == ("folder", str(shards))
    assert data.parse_data_spec(pattern) == ("tfrecord", pattern)
    assert data.parse_data_spec(single) == ("tfrecord", single)


@pytest.mark.parametrize("spec", ["", "tfds:", "tfds::train"])
def test_parse_data_spec_bad_specs(spec):
    with pytest.raises(ValueError):
        data.parse_data_spec(spec)


def test_parse_data_spec_missing_path(tmp_path):
    for spec in (str(tmp_path / "nowhere"), str(tmp_path / "train-*.tfrecord")):
        with pytest.raises(FileNotFoundError, match=re.escape(repr(spec))):
            data.parse_data_spec(spec)


# --------------------------------------------------------------------------
# CropPolicy and argument checks.
# --------------------------------------------------------------------------

def test_crop_policy_validation():
    assert data.CropPolicy(32, (32, 32)).shorter_side == (32, 32)
    with pytest.raises(ValueError, match="shorter_side"):
        data.CropPolicy(64, (40, 48))  # crop larger than the shorter side
    with pytest.raises(ValueError, match="shorter_side"):
        data.CropPolicy(32, (48, 40))  # low > high
    with pytest.raises(ValueError, match="crop_size"):
        data.CropPolicy(0)


def test_make_dataset_rejects_bad_batch_size(noise_folder):
    folder, _ = noise_folder
    for batch_size in (0, -1):
        with pytest.raises(ValueError, match="batch_size"):
            data.make_dataset(folder, batch_size=batch_size, policy=data.CropPolicy(CROP),
                              example_fn=example_fn, seed=0)


def test_element_seed():
    seed = data.element_seed(5, tf.constant(12, tf.int32))
    assert seed.dtype == tf.int64
    np.testing.assert_array_equal(seed.numpy(), [5, 12])


# --------------------------------------------------------------------------
# decode_rgb.
# --------------------------------------------------------------------------

@pytest.fixture
def encoder(tmp_path):
    """encode(array, fmt, mode, **save_options) -> file bytes; the file is kept in tmp_path."""

    def encode(array, fmt, mode=None, **kwargs):
        path = tmp_path / f"image.{fmt.lower()}"
        Image.fromarray(array, mode=mode).save(path, format=fmt, **kwargs)
        return path.read_bytes()

    encode.folder = str(tmp_path)
    return encode


def test_decode_rgb_grayscale_and_alpha(encoder):
    gray = np.arange(20 * 30, dtype=np.int64).reshape(20, 30) % 256
    decoded = data.decode_rgb(tf.constant(encoder(gray.astype(np.uint8), "PNG", "L"))).numpy()
    assert decoded.shape == (20, 30, 3) and decoded.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(decoded[..., channel], gray)

    rgba = np.random.default_rng(2).integers(0, 256, (12, 9, 4), dtype=np.uint8)
    decoded = data.decode_rgb(tf.constant(encoder(rgba, "PNG", "RGBA"))).numpy()
    np.testing.assert_array_equal(decoded, rgba[..., :3])  # alpha dropped, not blended


@pytest.mark.parametrize("alpha", [False, True])
@pytest.mark.parametrize("lossless", [False, True])
def test_decode_rgb_webp(encoder, alpha, lossless):
    """WebP with and without alpha, lossy and lossless, decode to the RGB that PIL reads."""
    array = np.random.default_rng(3).integers(0, 256, (18, 22, 4), dtype=np.uint8)
    array[..., 3] = np.where(np.arange(22) % 2, 40, 255)[None, :]
    encoded = (encoder(array, "WEBP", "RGBA", lossless=lossless) if alpha else
               encoder(array[..., :3], "WEBP", "RGB", lossless=lossless))
    decoded = data.decode_rgb(tf.constant(encoded)).numpy()
    assert decoded.shape == (18, 22, 3)
    expected = np.asarray(Image.open(os.path.join(encoder.folder, "image.webp")).convert("RGBA"))
    np.testing.assert_array_equal(decoded, expected[..., :3])
    if lossless:
        np.testing.assert_array_equal(decoded, array[..., :3])


# --------------------------------------------------------------------------
# resize_and_crop.
# --------------------------------------------------------------------------

def _resize_and_crop(array, policy, seed=(0, 0), training=False):
    return data.resize_and_crop(tf.constant(array), policy, tf.constant(seed, tf.int64),
                                training).numpy()


def test_resize_and_crop_eval_without_resize():
    # The shorter side (40) is already the low end: no resize, centre crop only.
    array = _ramp(40, 60)
    out = _resize_and_crop(array, data.CropPolicy(CROP, (40, 48)))
    assert out.shape == (CROP, CROP, 3) and out.dtype == np.float32
    k = np.arange(CROP)
    # top = (40 - 32) // 2 = 4, left = (60 - 32) // 2 = 14.
    np.testing.assert_array_equal(out[..., 0], np.broadcast_to(_level(4 * (14 + k)), (CROP, CROP)))
    np.testing.assert_array_equal(out[..., 1], np.broadcast_to(_level(4 * (4 + k))[:, None],
                                                               (CROP, CROP)))
    np.testing.assert_array_equal(out[..., 2], _level(0) * np.ones((CROP, CROP)))

    # Native policy: no resize either; centre crop of 50x70 is rows 9..40, columns 19..50.
    array = _ramp(50, 70, step=3)
    out = _resize_and_crop(array, data.CropPolicy(CROP))
    np.testing.assert_array_equal(out, _level(array[9:41, 19:51]))


def test_resize_and_crop_eval_upscale():
    # 20x30 -> shorter side 40: scale 2, 40x60. Output pixel j samples input x = j / 2 - 0.25,
    # so a ramp 4 * x becomes 2j - 1. The centre crop starts at row 4 and column 14.
    out = _resize_and_crop(_ramp(20, 30), data.CropPolicy(CROP, (40, 48)))
    k = np.arange(CROP)
    np.testing.assert_allclose(out[..., 0], np.broadcast_to(_level(2 * (14 + k) - 1), (CROP, CROP)),
                               atol=1e-4)
    np.testing.assert_allclose(out[..., 1], np.broadcast_to(_level(2 * (4 + k) - 1)[:, None],
                                                            (CROP, CROP)), atol=1e-4)


def test_resize_and_crop_eval_downscale():
    # 80x120 -> shorter side 40: scale 1/2, 40x60. Output pixel j is centred on input
    # x = 2j + 0.5, so a ramp 2 * x becomes 4j + 1 (the antialiasing kernel is symmetric).
    out = _resize_and_crop(_ramp(80, 120, step=2), data.CropPolicy(CROP, (40, 48)))
    k = np.arange(CROP)
    np.testing.assert_allclose(out[..., 0], np.broadcast_to(_level(4 * (14 + k) + 1), (CROP, CROP)),
                               atol=1e-4)
    np.testing.assert_allclose(out[..., 1], np.broadcast_to(_level(4 * (4 + k) + 1)[:, None],
                                                            (CROP, CROP)), atol=1e-4)


def test_resize_and_crop_native_upscales_small_images():
    # 20x30 with crop 32 and native policy: scale 32 / 20 = 1.6, 32x48, centre crop at
    # column 8. Output column j samples x = (j + 0.5) / 1.6 - 0.5: ramp 4x = 2.5j - 0.75.
    out = _resize_and_crop(_ramp(20, 30), data.CropPolicy(CROP))
    k = np.arange(CROP)
    np.testing.assert_allclose(out[..., 0], np.broadcast_to(_level(2.5 * (8 + k) - 0.75),
                                                            (CROP, CROP)), atol=1e-4)
    # All 20 rows were stretched to 32: the row ramp spans the whole crop.
    np.testing.assert_allclose(np.diff(out[1:-1, 0, 1]) * 127.5, 2.5, atol=1e-3)


def _find_window(big, small):
    """Whether `small` equals (to float tolerance) some window of `big`."""
    size = small.shape[0]
    for top in range(big.shape[0] - size + 1):
        for left in range(big.shape[1] - size + 1):
            if np.allclose(big[top:top + size, left:left + size], small, atol=1e-5):
                return True
    return False


def test_resize_and_crop_training_respects_range_and_seed():
    array = _ramp(20, 30)
    policy = data.CropPolicy(CROP, (40, 48), flip=True)
    shorter_sides, flipped = set(), set()
    outputs = []
    for i in range(12):
        out = _resize_and_crop(array, policy, seed=(i, 3), training=True)
        assert out.shape == (CROP, CROP, 3)
        np.testing.assert_array_equal(out, _resize_and_crop(array, policy, (i, 3), True))
        outputs.append(out)
        # The row ramp 4r is stretched by s / 20: its slope is 80 / s levels per pixel.
        slope = np.median(np.diff(out[:, 0, 1])) * 127.5
        shorter = int(round(80 / slope))
        assert 40 <= shorter <= 48 and abs(80 / shorter - slope) < 1e-3
        shorter_sides.add(shorter)
        # Flipped crops have a decreasing column ramp.
        column_slope = np.median(np.diff(out[0, :, 0]))
        flipped.add(bool(column_slope < 0))
        unflipped = out[:, ::-1] if column_slope < 0 else out
        # The crop is a window of the image resized to shorter side s.
        width = int(np.round(30 * shorter / 20))
        resized = tf.image.resize(tf.constant(array, tf.float32), [shorter, width],
                                  antialias=True).numpy() / 127.5 - 1.0
        assert _find_window(resized, unflipped), f"seed {i}: crop not found (s={shorter})"
    assert len(shorter_sides) > 1, shorter_sides
    assert flipped == {True, False}
    assert any(not np.array_equal(outputs[0], other) for other in outputs[1:])


# --------------------------------------------------------------------------
# Folder source.
# --------------------------------------------------------------------------

def _records_naming(caplog, name):
    return [r for r in caplog.records if name in r.getMessage()]


def test_messy_folder_eval(messy_folder, caplog):
    folder, arrays = messy_folder
    with caplog.at_level(logging.INFO):
        dataset = data.make_dataset(folder, batch_size=len(MESSY_ORDER),
                                    policy=data.CropPolicy(CROP), example_fn=example_fn,
                                    seed=0, training=False)
        batches = _batches(dataset)
    # The corrupt file is named in exactly one log record; the text file in none.
    assert len(_records_naming(caplog, "broken.jpg")) == 1
    assert not _records_naming(caplog, "notes.txt")

    assert len(batches) == 1
    images = batches[0]["image"]
    assert images.shape == (5, CROP, CROP, 3) and images.dtype == np.float32
    assert batches[0]["mask"].shape == (5, CROP, CROP, 1)
    assert images.min() >= -1.0 and images.max() <= 1.0
    gray, rgba, small, photo, texture = images
    # Grayscale: three equal channels of the known value.
    np.testing.assert_allclose(gray, _level(GRAY_VALUE), atol=1e-6)
    # RGBA: RGB kept as is (not blended with alpha), alpha dropped.
    np.testing.assert_allclose(rgba, np.broadcast_to(_level(RGBA_RGB), rgba.shape), atol=1e-6)
    # The 20x30 image was scaled up to 32x48 (see test_resize_and_crop_native_upscales...).
    k = np.arange(CROP)
    np.testing.assert_allclose(small[..., 0], np.broadcast_to(_level(2.5 * (8 + k) - 0.75),
                                                              (CROP, CROP)), atol=1e-4)
    # The JPEG: its centre crop, as PIL decodes it (decoders may differ by a few levels).
    pil_photo = np.asarray(Image.open(os.path.join(folder, "sub", "photo.jpg")).convert("RGB"))
    np.testing.assert_allclose(photo, _level(_centre_crop(pil_photo)), atol=6 / 127.5)
    # The lossless WEBP (with alpha): its exact centre crop.
    np.testing.assert_array_equal(texture, _level(_centre_crop(arrays["texture"])))


def test_messy_folder_source_description(messy_folder):
    folder, _ = messy_folder
    source = data.make_source(folder, seed=0, training=False)
    assert source.size == 5
    assert "5 images" in source.description and "1 skipped" in source.description


def test_messy_folder_training_with_resize_and_flip(messy_folder):
    folder, _ = messy_folder
    policy = data.CropPolicy(CROP, shorter_side=(40, 48), flip=True)
    dataset = data.make_dataset(folder, batch_size=5, policy=policy, example_fn=example_fn, seed=3)
    batches = _batches(dataset, 3)
    for batch in batches:
        assert batch["image"].shape == (5, CROP, CROP, 3) and batch["image"].dtype == np.float32
        assert batch["mask"].shape == (5, CROP, CROP, 1)
        assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0
    # Each epoch is a permutation of the 5 usable files: the constant images appear once.
    for batch in batches:
        images = batch["image"]
        is_gray = [np.allclose(image, _level(GRAY_VALUE), atol=1e-5) for image in images]
        is_rgba = [np.allclose(image, _level(RGBA_RGB), atol=1e-5) for image in images]
        assert sum(is_gray) == 1 and sum(is_rgba) == 1
        # The small image (channel 0 = 4 * column, channel 1 = 4 * row, channel 2 = 0),
        # resized to shorter side s in [40, 48], i.e. 20 rows -> s, 30 columns -> round(1.5 s).
        ramps = [image for image in images
                 if np.allclose(image[..., 2], -1.0)
                 and np.allclose(image[..., 0], image[:1, :, 0], atol=1e-5)
                 and np.allclose(image[..., 1], image[:, :1, 1], atol=1e-5)]
        assert len(ramps) == 1
        row_slope = np.median(np.diff(ramps[0][:, 0, 1])) * 127.5
        column_slope = abs(np.median(np.diff(ramps[0][0, :, 0]))) * 127.5  # flips negate it
        shorter = int(round(80 / row_slope))
        assert 40 <= shorter <= 48 and abs(80 / shorter - row_slope) < 1e-3
        np.testing.assert_allclose(column_slope, 120 / np.round(1.5 * shorter), atol=1e-3)


def test_empty_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path))):
        data.make_dataset(str(tmp_path), batch_size=2, policy=data.CropPolicy(CROP),
                          example_fn=example_fn, seed=0)


def test_folder_with_only_corrupt_files(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a JPEG")
    with pytest.raises(ValueError, match="No usable image"):
        data.make_dataset(str(tmp_path), batch_size=2, policy=data.CropPolicy(CROP),
                          example_fn=example_fn, seed=0)


# --------------------------------------------------------------------------
# Determinism, resuming, evaluation.
# --------------------------------------------------------------------------

def test_same_seed_same_batches(noise_folder):
    folder, _ = noise_folder
    policy = data.CropPolicy(CROP, (40, 48), flip=True)

    def run(seed):
        return _batches(data.make_dataset(folder, batch_size=3, policy=policy,
                                          example_fn=example_fn, seed=seed), 3)

    first, again, other = run(7), run(7), run(8)
    _assert_same_batches(first, again)
    for key in ("image", "mask"):
        assert not all(np.array_equal(a[key], b[key]) for a, b in zip(first, other)), key
    # Indices count examples from the start of the stream, and every example draws its own mask.
    np.testing.assert_array_equal(np.concatenate([b["index"] for b in first]), np.arange(9))
    assert len({mask.tobytes() for batch in first for mask in batch["mask"]}) > 1


@pytest.mark.parametrize("source", ["folder", "sample"])
def test_resume_with_start_index(noise_folder, source):
    spec = noise_folder[0] if source == "folder" else "sample"
    batch_size = 3
    policy = data.CropPolicy(CROP, (40, 48), flip=True)

    def run(start_index, count):
        return _batches(data.make_dataset(spec, batch_size=batch_size, policy=policy,
                                          example_fn=example_fn, seed=11,
                                          start_index=start_index), count)

    full = run(0, 4)
    resumed = run(2 * batch_size, 2)
    _assert_same_batches(full[2:4], resumed)
    np.testing.assert_array_equal(resumed[0]["index"], [6, 7, 8])


def test_eval_mode(noise_folder):
    folder, arrays = noise_folder

    def run(**kwargs):
        return data.make_dataset(folder, batch_size=2, policy=data.CropPolicy(CROP),
                                 example_fn=example_fn, seed=5, training=False, **kwargs)

    dataset = run(num_examples=5)
    first = _batches(dataset)
    assert len(first) == 5 // 2  # finite; the last partial batch is dropped
    # File order, centre crops at native size.
    images = np.concatenate([b["image"] for b in first])
    for image, array in zip(images, arrays[:4]):
        np.testing.assert_array_equal(image, _level(_centre_crop(array)))
    np.testing.assert_array_equal(np.concatenate([b["index"] for b in first]), np.arange(4))
    assert len({mask.tobytes() for batch in first for mask in batch["mask"]}) > 1
    # Same images and masks at every evaluation, and from a rebuilt pipeline.
    _assert_same_batches(first, _batches(dataset))
    _assert_same_batches(first, _batches(run(num_examples=5)))
    # Without num_examples: the whole folder, 7 // 2 batches.
    assert len(_batches(run())) == 3


def test_first_batch(noise_folder):
    folder, arrays = noise_folder
    dataset = data.make_dataset(folder, batch_size=2, policy=data.CropPolicy(CROP),
                                example_fn=example_fn, seed=0, training=False)
    batch = data.first_batch(dataset)
    assert isinstance(batch["image"], np.ndarray) and batch["image"].shape == (2, CROP, CROP, 3)
    np.testing.assert_array_equal(batch["image"][1], _level(_centre_crop(arrays[1])))
    # An evaluation stream with fewer examples than one batch is refused when it is
    # built, naming the data, before anything runs.
    with pytest.raises(ValueError, match=r"gives 1 image\(s\), fewer than one batch of 2"):
        data.make_dataset(folder, batch_size=2, policy=data.CropPolicy(CROP),
                          example_fn=example_fn, seed=0, training=False, num_examples=1)
    with pytest.raises(ValueError, match="empty"):
        data.first_batch(tf.data.Dataset.from_tensor_slices({"image": np.zeros((0, 2))}))


# --------------------------------------------------------------------------
# TFRecord source.
# --------------------------------------------------------------------------

def test_tfrecord_source(noise_folder, tmp_path):
    folder, arrays = noise_folder
    prefix = str(tmp_path / "records" / "train")
    summary = tfrecords.build_tfrecords(folder, prefix, num_shards=3, num_workers=1)
    assert summary["images"] == 7
    pattern = prefix + "-*.tfrecord"
    assert len(glob.glob(pattern)) == 3
    assert data.parse_data_spec(pattern) == ("tfrecord", pattern)

    # Evaluation: every image once (PNG is lossless: exact centre crops).
    dataset = data.make_dataset(pattern, batch_size=7, policy=data.CropPolicy(CROP),
                                example_fn=example_fn, seed=0, training=False)
    batches = _batches(dataset)
    assert len(batches) == 1
    read = sorted(image.tobytes() for image in batches[0]["image"])
    expected = sorted(_level(_centre_crop(array)).tobytes() for array in arrays)
    assert read == expected

    # Training: deterministic per seed.
    def run(seed):
        return _batches(data.make_dataset(pattern, batch_size=4, policy=data.CropPolicy(CROP, (40, 48)),
                                          example_fn=example_fn, seed=seed, shuffle_buffer=16), 3)

    first = run(1)
    for batch in first:
        assert batch["image"].shape == (4, CROP, CROP, 3)
    _assert_same_batches(first, run(1))
    assert not all(np.array_equal(a["image"], b["image"]) for a, b in zip(first, run(2)))


# --------------------------------------------------------------------------
# TensorFlow Datasets source (offline, mocked).
# --------------------------------------------------------------------------

def test_tfds_source_mocked():
    tfds = pytest.importorskip("tensorflow_datasets")
    policy = data.CropPolicy(CROP, (40, 48))
    with tfds.testing.mock_data(num_examples=6):
        dataset = data.make_dataset("tfds:celeb_a", batch_size=2, policy=policy,
                                    example_fn=example_fn, seed=0)
        batches = _batches(dataset, 2)
        for batch in batches:
            assert batch["image"].shape == (2, CROP, CROP, 3)
            assert batch["image"].dtype == np.float32
            assert batch["mask"].shape == (2, CROP, CROP, 1)
            assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0

        evaluation = data.make_dataset("tfds:celeb_a:validation", batch_size=4, policy=policy,
                                       example_fn=example_fn, seed=0, training=False)
        assert len(_batches(evaluation)) == 6 // 4

        with pytest.raises(ValueError, match="no_such_dataset_xyz"):
            data.make_dataset("tfds:no_such_dataset_xyz", batch_size=2, policy=policy,
                              example_fn=example_fn, seed=0)


def build_local_tfds_dataset(data_dir, num_images=6):
    """Prepares a tiny image dataset, "local_photos_test", in `data_dir` with a TFDS
    builder defined here (nothing is downloaded): what `tfds:NAME` reads once a
    dataset has been prepared, by `tfds build` or by a first `tfds.load`."""
    import tensorflow_datasets as tfds

    class LocalPhotosTest(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(None, None, 3))}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0), "validation": self._generate_examples(1)}

        def _generate_examples(self, seed):
            rng = np.random.default_rng(seed)
            for i in range(num_images):
                yield i, {"image": rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)}

    LocalPhotosTest(data_dir=str(data_dir)).download_and_prepare()
    return "local_photos_test"


def test_a_locally_prepared_tfds_dataset_trains(tmp_path):
    """The documented `--train_data=tfds:NAME` path end to end, on a dataset prepared in
    TFDS_DATA_DIR: tfds.load must import and read it, and a run trains two steps."""
    import helpers

    name = build_local_tfds_dataset(tmp_path / "tfds")
    workdir = tmp_path / "run"
    result = helpers.run_cli(
        "context_encoder", f"--flagfile={helpers.configs_dir('context_encoder')}/smoke.cfg",
        f"--workdir={workdir}", f"--train_data=tfds:{name}", f"--eval_data=tfds:{name}",
        "--max_steps=2", "--batch_size=2", "--eval_examples=2",
        env={"TFDS_DATA_DIR": str(tmp_path / "tfds")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"training data: tfds:{name}:train" in result.stderr
    assert [r["step"] for r in helpers.train_records(workdir)] == [2]


# --------------------------------------------------------------------------
# Sample source.
# --------------------------------------------------------------------------

def test_sample_source():
    source = data.make_source("sample", seed=0, training=False)
    assert source.size == len(data.SAMPLE_PHOTOS) == 7

    evaluation = data.make_dataset("sample", batch_size=7, policy=data.CropPolicy(CROP, (40, 48)),
                                   example_fn=example_fn, seed=0, training=False)
    batches = _batches(evaluation)
    assert len(batches) == 1
    images = batches[0]["image"]
    assert images.shape == (7, CROP, CROP, 3) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert len({image.tobytes() for image in images}) == 7  # seven different photos

    training = data.make_dataset("sample", batch_size=4, policy=data.CropPolicy(CROP),
                                 example_fn=example_fn, seed=0)
    for batch in _batches(training, 3):  # crosses the end of the first epoch
        assert batch["image"].shape == (4, CROP, CROP, 3)
        assert batch["mask"].shape == (4, CROP, CROP, 1)


def test_animated_webp_is_skipped_by_name(tmp_path):
    from PIL import Image

    from common import image_files

    frames = [Image.new("RGB", (40, 40), color) for color in ("red", "blue")]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:])
    Image.new("RGB", (40, 40), "green").save(tmp_path / "still.webp")
    scanned = image_files.scan_image_folder(str(tmp_path))
    assert [os.path.basename(p) for p in scanned.files] == ["still.webp"]
    assert scanned.skipped == ((str(tmp_path / "anim.webp"), "animated WebP is not supported"),)


def test_central_crop_policy_crops_the_centre_in_training_too():
    # Columns encode their index, so the crop's first column tells where it was cut.
    ramp = np.tile(np.arange(100, dtype=np.uint8)[None, :, None], (40, 1, 3))
    policy = data.CropPolicy(crop_size=40, random_crop=False)
    crops = [data.resize_and_crop(tf.constant(ramp), policy, tf.constant([s, 0], tf.int64),
                                  training=True).numpy() for s in range(4)]
    for crop in crops:
        np.testing.assert_allclose((crop[0, :, 0] + 1) * 127.5, np.arange(30, 70), atol=1e-3)


# --------------------------------------------------------------------------
# Data that would otherwise fail late or silently.
# --------------------------------------------------------------------------

def _write_photos(folder, names):
    os.makedirs(folder, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(_ramp(40, 40, step=i + 1)).save(os.path.join(folder, name))


def test_a_symlink_loop_lists_each_image_once(tmp_path):
    _write_photos(tmp_path / "photos", ["a.png", "b.png"])
    os.symlink(tmp_path / "photos", tmp_path / "photos" / "loop")  # points at its parent
    os.makedirs(tmp_path / "photos" / "sub")
    os.symlink(tmp_path / "photos" / "sub", tmp_path / "photos" / "sub" / "again")
    source = data.make_source(str(tmp_path / "photos"), seed=0, training=False)
    assert source.size == 2


def test_a_file_name_that_is_not_utf8_is_read(tmp_path):
    folder = tmp_path / "photos"
    _write_photos(folder, ["plain.png"])
    odd = os.path.join(os.fsencode(folder), b"caf\xe9.png")  # Latin-1, not UTF-8
    with open(os.path.join(os.fsencode(folder), b"plain.png"), "rb") as f, open(odd, "wb") as g:
        g.write(f.read())
    dataset = data.make_dataset(str(folder), batch_size=2, policy=data.CropPolicy(crop_size=CROP),
                                example_fn=example_fn, seed=0, training=False)
    assert len(_batches(dataset)) == 1


def test_an_image_file_given_as_data_is_named(tmp_path):
    _write_photos(tmp_path, ["photo.png"])
    with pytest.raises(ValueError, match="is an image file, not a data set"):
        data.parse_data_spec(str(tmp_path / "photo.png"))


def test_a_truncated_tfrecord_shard_is_named_at_start(tmp_path):
    photos = tmp_path / "photos"
    _write_photos(photos, [f"{i}.png" for i in range(6)])
    prefix = str(tmp_path / "records" / "train")
    tfrecords.build_tfrecords(str(photos), prefix, 2, num_workers=1)
    first, second = tfrecords.shard_paths(prefix, 2)
    assert tfrecords.framing_problem(first) is None
    with open(second, "r+b") as f:
        f.truncate(os.path.getsize(second) - 10)
    assert "record 2 at byte" in tfrecords.framing_problem(second)
    with pytest.raises(ValueError, match=re.escape(second)):
        data.make_source(prefix + "-*", seed=0, training=True)
    (tmp_path / "photo.jpg").write_bytes(open(photos / "0.png", "rb").read())
    assert "not a TFRecord file" in tfrecords.framing_problem(str(tmp_path / "photo.jpg"))
