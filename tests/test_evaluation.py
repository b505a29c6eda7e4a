"""Tests of the shared evaluation protocol and the classical baselines."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from common import baselines
from common import evaluation
from common import masks as common_masks

SIZE = 64


def save_rgb(path, array):
    """Saves float [0, 1] or uint8 HxWx3 as an image file (format from the extension)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = np.clip(np.round(array * 255), 0, 255).astype(np.uint8)
    Image.fromarray(array).save(path)
    return path


def random_photo(seed, height, width):
    """A smooth-ish random colour image, uint8."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
    noise = rng.integers(-20, 21, (height, width, 3))
    return np.clip(np.asarray(image, int) + noise, 0, 255).astype(np.uint8)


def read_json(path):
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------
# Hand-computed metrics.
# --------------------------------------------------------------------------

def test_constant_fill_matches_hand_computation(tmp_path):
    """A 0.5 hole on a constant 77/255 image...: fill = value + 0.2, so l1_hole 0.2, l2_hole 0.04."""
    value = 77 / 255  # about 0.3, exactly representable in 8 bits
    images = tmp_path / "images"
    for name in ("one", "two"):
        save_rgb(str(images / f"{name}.png"), np.full((SIZE, SIZE, 3), 77, np.uint8))

    def plus_point_two(image, mask):
        return np.where(mask[..., None], np.float32(value + 0.2), image).astype(np.float32)

    out = tmp_path / "out"
    results = evaluation.evaluate(plus_point_two, str(images), "center", SIZE, str(out))

    assert results == read_json(out / "metrics.json")
    assert results["method"] == "plus_point_two"
    assert (results["images"], results["masks"], results["image_size"]) == (str(images), "center", SIZE)
    assert results["count"] == 2 and results["skipped"] == []
    overall = results["overall"]
    # Centre square of side 32 in 64: a quarter of the image is hole.
    assert overall["l1_hole"] == pytest.approx(0.2, abs=1e-5)
    assert overall["l2_hole"] == pytest.approx(0.04, abs=1e-5)
    assert overall["l1"] == pytest.approx(0.2 * 0.25, abs=1e-5)
    # MSE over the whole image = 0.04 * 0.25 = 0.01 -> 20 dB.
    assert overall["psnr"] == pytest.approx(20.0, abs=1e-3)
    assert 0.0 < overall["ssim"] < 1.0
    assert list(results["by_hole_area"]) == ["20-30%"]
    assert results["by_hole_area"]["20-30%"]["count"] == 2
    assert results["by_hole_area"]["20-30%"]["l1_hole"] == pytest.approx(0.2, abs=1e-5)
    first = results["per_image"][0]
    assert first["name"] == "one" and first["file"] == "one.png"
    assert first["hole_area"] == 0.25 and first["hole_area_bin"] == "20-30%"
    assert first["l2"] == pytest.approx(0.01, abs=1e-6)


def test_no_method_is_given_the_pixels_under_the_hole(tmp_path):
    """Returning its input is no oracle: the hole arrives blanked to the known pixels'
    mean, so such a method scores exactly as the mean fill does."""
    images = tmp_path / "images"
    save_rgb(str(images / "photo.png"), random_photo(0, SIZE, SIZE))
    seen = []

    def peeking(image, mask):
        seen.append(image[mask])
        return image

    results = evaluation.evaluate(peeking, str(images), "bbox", SIZE, str(tmp_path / "out"),
                                  method="peeking")
    mean_fill = evaluation.evaluate(baselines.mean_fill, str(images), "bbox", SIZE,
                                    str(tmp_path / "mean"))
    assert results["method"] == "peeking"
    assert results["overall"] == pytest.approx(mean_fill["overall"], rel=1e-5)
    assert results["overall"]["psnr"] < 40
    target = evaluation.load_image(str(images / "photo.png"), SIZE)
    mask = evaluation.mask_for("photo", "bbox", SIZE)
    np.testing.assert_allclose(seen[0], np.broadcast_to(target[~mask].mean(axis=0),
                                                        seen[0].shape), atol=1e-6)


class LeftHalfOnly:
    """An oracle that, like a centre-region model, declares part of each hole unfilled."""

    def __call__(self, image, mask):
        return image

    def unfilled_hole(self, mask):
        return mask & (np.arange(mask.shape[1]) >= mask.shape[1] // 2)[None, :]


def test_unfilled_hole_pixels_are_counted_in_metrics_json(tmp_path):
    images = tmp_path / "images"
    for i in range(3):
        save_rgb(str(images / f"p{i}.png"), random_photo(i, SIZE, SIZE))
    results = evaluation.evaluate(LeftHalfOnly(), str(images), "center", SIZE,
                                  str(tmp_path / "out"), method="half")
    # The centre hole is 32x32: its right half, 512 pixels, in each of the 3 images.
    assert results["unfilled_hole"] == {"images": 3, "pixels": 3 * 512, "hole_pixels": 3 * 1024}
    assert [r["unfilled_hole_pixels"] for r in results["per_image"]] == [512] * 3
    assert read_json(tmp_path / "out" / "metrics.json")["unfilled_hole"]["pixels"] == 1536
    # Methods without the notion record nothing.
    plain = evaluation.evaluate(lambda image, mask: image, str(images), "center", SIZE,
                                str(tmp_path / "plain"))
    assert "unfilled_hole" not in plain


# --------------------------------------------------------------------------
# Masks paired with images by name.
# --------------------------------------------------------------------------

@pytest.fixture
def mask_folder(tmp_path):
    """Five distinct mask files (white = hole), some larger than the image size."""
    folder = tmp_path / "masks"
    folder.mkdir()
    for k in range(5):
        mask = np.zeros((128, 128), np.uint8)
        mask[10 * k:10 * k + 30, 5 + 15 * k:40 + 15 * k] = 255
        Image.fromarray(mask).save(folder / f"{k:03d}.png")
    return str(folder)


def test_masks_are_a_function_of_the_name(mask_folder):
    sources = evaluation.MASK_SOURCES + (mask_folder,)
    for source in sources:
        first = evaluation.mask_for("kodim01", source, SIZE)
        again = evaluation.mask_for("kodim01", source, SIZE)
        assert first.dtype == bool and first.shape == (SIZE, SIZE), source
        assert np.array_equal(first, again), source
        assert 0 < first.sum() < first.size, source
    files = sorted(os.path.join(mask_folder, f) for f in os.listdir(mask_folder))
    listed = evaluation.mask_for("kodim01", mask_folder, SIZE, mask_files=files[::-1])
    assert np.array_equal(listed, evaluation.mask_for("kodim01", mask_folder, SIZE))

    names = [f"image{k}" for k in range(8)]
    for source in ("bbox", "irregular-thin", "irregular-medium", "irregular-thick"):
        masks = [evaluation.mask_for(n, source, SIZE) for n in names]
        distinct = {m.tobytes() for m in masks}
        assert len(distinct) == len(names), source
    assert len({evaluation.mask_for(n, mask_folder, SIZE).tobytes() for n in names}) > 1


def test_center_and_bbox_geometry():
    center = evaluation.mask_for("any", "center", SIZE)
    assert center[16:48, 16:48].all() and center.sum() == 32 * 32
    # The hole Context Encoders blanks: the centre square less its 2 px ring at 64.
    inner = evaluation.mask_for("any", "center-overlap", SIZE)
    assert inner[18:46, 18:46].all() and inner.sum() == 28 * 28
    # At 128 it is exactly the training mask of Context Encoders and Structural Inpainting.
    np.testing.assert_array_equal(evaluation.mask_for("any", "center-overlap", 128),
                                  common_masks.center_mask(128, 64, 4).numpy()[..., 0] > 0.5)
    for k in range(20):
        top, left, height, width = evaluation.bbox_for(f"n{k}", SIZE)
        assert 16 <= height <= 32 and 16 <= width <= 32
        assert 0 <= top <= SIZE - height and 0 <= left <= SIZE - width
        assert evaluation.mask_for(f"n{k}", "bbox", SIZE).sum() == height * width
        top, left, height, width = evaluation.bbox_for(f"n{k}", SIZE, "bbox-large")
        assert 24 <= height <= 32 and 24 <= width <= 32
        assert 0 <= top <= SIZE - height and 0 <= left <= SIZE - width
        assert evaluation.mask_for(f"n{k}", "bbox-large", SIZE).sum() == height * width
    # Pinned: a SHA-256 of the name, not Python's per-process hash; results
    # published with these masks stay comparable.
    assert evaluation.bbox_for("kodim01", 256) == (1, 73, 113, 78)


def test_bad_mask_sources(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for source in ("centre", "irregular-huge", str(tmp_path / "missing")):
        with pytest.raises(ValueError, match="center, center-overlap, bbox, bbox-large"):
            evaluation.mask_for("x", source, SIZE)
    with pytest.raises(ValueError, match="No mask image"):
        evaluation.mask_for("x", str(empty), SIZE)
    images = tmp_path / "images"
    save_rgb(str(images / "a.png"), random_photo(1, SIZE, SIZE))
    with pytest.raises(ValueError, match="Unknown mask source 'boxes'"):
        evaluation.evaluate(baselines.mean_fill, str(images), "boxes", SIZE, str(tmp_path / "out"))
    with pytest.raises(ValueError, match="No mask image"):
        evaluation.evaluate(baselines.mean_fill, str(images), str(empty), SIZE, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_hole_area_bins():
    def mask_with(percent):
        mask = np.zeros((100, 100), bool)
        mask.flat[:percent * 100] = True
        return mask

    expected = {5: "0-10%", 15: "10-20%", 55: "50-60%", 70: "60-100%",
                0: "0-10%", 10: "10-20%", 50: "50-60%", 60: "50-60%", 61: "60-100%", 100: "60-100%"}
    for percent, name in expected.items():
        assert evaluation.hole_area_bin(mask_with(percent)) == name, percent


# --------------------------------------------------------------------------
# Baselines.
# --------------------------------------------------------------------------

def test_baselines_keep_known_pixels():
    rng = np.random.default_rng(0)
    image = rng.random((40, 48, 3), dtype=np.float32)
    masks = {"random": rng.random((40, 48)) < 0.3, "empty": np.zeros((40, 48), bool),
             "all": np.ones((40, 48), bool), "single": np.zeros((40, 48), bool)}
    masks["single"][20, 20] = True
    border = np.zeros((40, 48), bool)
    border[:12, :15] = True  # touches the top-left corner
    border[-3:, :] = True  # a whole bottom band
    masks["border"] = border
    for name, inpainter in baselines.BASELINES.items():
        for mask_name, mask in masks.items():
            given = np.where(mask[..., None], np.float32(np.nan), image)  # hole pixels: anything
            result = inpainter(given, mask[..., None] if mask_name == "border" else mask)
            label = f"{name} / {mask_name}"
            assert result.dtype == np.float32 and result.shape == image.shape, label
            assert np.array_equal(result[~mask], image[~mask]), label
            assert np.all(np.isfinite(result)) and result.min() >= 0 and result.max() <= 1, label
        assert np.all(inpainter(image, masks["all"]) == 0.5), name
    assert np.allclose(baselines.mean_fill(image, masks["single"])[20, 20],
                       image.reshape(-1, 3)[np.arange(40 * 48) != 20 * 48 + 20].mean(axis=0))


def test_baselines_reject_bad_arguments():
    image = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="mask must have shape"):
        baselines.telea(image, np.zeros((8, 9), bool))
    with pytest.raises(ValueError, match="HxWx3"):
        baselines.mean_fill(np.zeros((8, 8), np.float32), np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match="float"):
        baselines.biharmonic(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        baselines.navier_stokes(image - 1.0, np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match="radius"):
        baselines.telea(image, np.zeros((8, 8), bool), radius=0)


def test_classical_baselines_beat_mean_fill_on_a_smooth_image():
    y, x = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    image = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * (x - y)], axis=-1).astype(np.float32)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[24:40, 20:36] = True

    def l1_hole(inpainter):
        return np.abs(inpainter(image, mask) - image)[mask].mean()

    reference = l1_hole(baselines.mean_fill)
    for name in ("telea", "ns", "biharmonic"):
        assert l1_hole(baselines.BASELINES[name]) < 0.5 * reference, name


# --------------------------------------------------------------------------
# The evaluation run on a messy folder.
# --------------------------------------------------------------------------

def test_load_image_crops_the_centre_and_names_bad_files(tmp_path):
    thirds = np.zeros((30, 90, 3), np.uint8)
    thirds[:, :30] = (255, 0, 0)
    thirds[:, 30:60] = (0, 255, 0)
    thirds[:, 60:] = (0, 0, 255)
    path = save_rgb(str(tmp_path / "wide.png"), thirds)
    assert np.array_equal(evaluation.load_image(path, 30), np.broadcast_to([0.0, 1.0, 0.0], (30, 30, 3)))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match="bad.jpg"):
        evaluation.load_image(str(bad), SIZE)


def test_evaluate_on_a_folder_of_varied_photos(tmp_path):
    images = tmp_path / "images"
    save_rgb(str(images / "a.jpg"), random_photo(1, 60, 90))
    save_rgb(str(images / "small.png"), random_photo(2, 40, 50))  # scaled up
    os.makedirs(images / "sub")
    Image.fromarray(random_photo(3, 70, 70)[..., 0]).save(images / "gray.png")
    Image.fromarray(np.dstack([random_photo(4, 80, 64), np.full((80, 64), 128, np.uint8)]),
                    "RGBA").save(images / "rgba.png")
    save_rgb(str(images / "sub" / "a.png"), random_photo(5, 100, 64))  # same stem as a.jpg
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")

    out = tmp_path / "out"
    results = evaluation.evaluate(baselines.mean_fill, str(images), "irregular-thin", SIZE, str(out))
    names = ["a", "gray", "rgba", "small", "sub__a"]
    assert [r["name"] for r in results["per_image"]] == names
    assert results["count"] == 5
    assert [os.path.basename(s["path"]) for s in results["skipped"]] == ["corrupt.jpg"]
    for name in names:
        for kind in ("target", "mask", "input", "composite"):
            with Image.open(out / f"{name}_{kind}.png") as png:
                assert png.size == (SIZE, SIZE), (name, kind)
                assert png.mode == ("L" if kind == "mask" else "RGB"), (name, kind)
        mask = evaluation.mask_for(name, "irregular-thin", SIZE)
        assert np.array_equal(np.asarray(Image.open(out / f"{name}_mask.png")) == 255, mask)
        shown = np.asarray(Image.open(out / f"{name}_input.png"))
        assert np.all(shown[mask] == 255)
        target = np.asarray(Image.open(out / f"{name}_target.png"))
        composite = np.asarray(Image.open(out / f"{name}_composite.png"))
        assert np.array_equal(shown[~mask], target[~mask])
        assert np.array_equal(composite[~mask], target[~mask])
    gray = np.asarray(Image.open(out / "gray_target.png"))
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 0], gray[..., 2])
    assert sum(b["count"] for b in results["by_hole_area"].values()) == 5
    assert read_json(out / "metrics.json") == results

    limited = evaluation.evaluate(baselines.mean_fill, str(images), "irregular-thin", SIZE,
                                  str(tmp_path / "out2"), limit=2)
    assert limited["per_image"] == results["per_image"][:2]


def test_broken_inpainter_is_caught(tmp_path):
    images = tmp_path / "images"
    save_rgb(str(images / "victim.png"), random_photo(6, SIZE, SIZE))

    def brightens_everything(image, mask):
        return np.clip(image + 0.1, 0, 1)

    with pytest.raises(RuntimeError, match="known pixel.*'victim'"):
        evaluation.evaluate(brightens_everything, str(images), "center", SIZE, str(tmp_path / "out"))
    with pytest.raises(RuntimeError, match="'victim' has shape"):
        evaluation.evaluate(lambda image, mask: image[:-1], str(images), "center", SIZE,
                            str(tmp_path / "out"))


def test_markdown_table():
    results = [{"method": "telea", "count": 24, "overall": {
        "psnr": 25.123, "ssim": 0.81234, "l1_hole": 0.0712, "l2_hole": 0.0123, "l1": 0.0101}},
        {"method": "mean_fill", "count": 24, "overall": {
            "psnr": 18.5, "ssim": 0.7, "l1_hole": 0.15, "l2_hole": None, "l1": 0.02}}]
    lines = evaluation.markdown_table(results).splitlines()
    assert lines[0] == "| method | images | PSNR (dB) | SSIM | L1 hole | L2 hole | L1 |"
    assert lines[2] == "| telea | 24 | 25.12 | 0.8123 | 0.0712 | 0.0123 | 0.0101 |"
    assert lines[3] == "| mean_fill | 24 | 18.50 | 0.7000 | 0.1500 | n/a | 0.0200 |"
    with pytest.raises(ValueError, match="lacks"):
        evaluation.markdown_table([{"method": "x", "count": 1, "overall": {}}])


# --------------------------------------------------------------------------
# Real data, when the shared folder is there.
# --------------------------------------------------------------------------

def test_kodak_with_nvidia_masks(shared_data, tmp_path):
    images = os.path.join(shared_data, "eval", "kodak24")
    masks = os.path.join(shared_data, "masks", "nvidia_irregular")
    if not (os.path.isdir(images) and os.path.isdir(masks)):
        pytest.skip(f"needs {images} and {masks}")
    results = evaluation.evaluate(baselines.telea, images, masks, 256, str(tmp_path), limit=2)
    assert [r["name"] for r in results["per_image"]] == ["kodim01", "kodim02"]
    assert 15 < results["overall"]["psnr"] < 60
    assert 0 < results["overall"]["l1_hole"] < 0.3
    assert all(0 < r["hole_area"] < 0.6 for r in results["per_image"])


def test_masks_pair_with_file_names_that_are_not_utf8(tmp_path):
    """A name with bytes that are not UTF-8 (decoded by Python with surrogateescape) gets a
    mask like any other, from its own bytes."""
    images = tmp_path / "images"
    images.mkdir()
    raw = os.path.join(os.fsencode(images), b"caf\xe9.png")
    Image.fromarray(random_photo(0, SIZE, SIZE)).save(raw.decode("utf-8", "surrogateescape"))
    results = evaluation.evaluate(baselines.telea, str(images), "bbox", SIZE,
                                  str(tmp_path / "out"))
    assert results["count"] == 1
    name = results["per_image"][0]["name"]
    assert evaluation.name_hash(name, "top") != evaluation.name_hash("cafe", "top")
    assert 0 < results["per_image"][0]["hole_area"] < 1
