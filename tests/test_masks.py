"""Tests of common/masks.py: shapes, polarity (1 = hole), exact sizes, ranges,
determinism and graph mode."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from common import masks
from reproductions.glcic.masks import glcic_hole_and_local_box
from reproductions.dmfn.masks import dmfn_box_mask
from reproductions.context_encoder.masks import random_region_mask

NVIDIA_MASKS = "/work/shared/data/masks/nvidia_irregular"


def seed(i, j=0):
    return tf.constant([i, j], tf.int64)


def assert_binary_mask(mask, image_hw):
    assert mask.dtype == tf.float32
    assert tuple(mask.shape) == (*image_hw, 1)
    assert set(np.unique(mask.numpy())) <= {0.0, 1.0}


def hole_box(mask):
    """(top, left, height, width) of the bounding box of the holes, and their count."""
    rows, cols = np.nonzero(mask.numpy()[..., 0])
    box = (rows.min(), cols.min(), rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    return box, len(rows)


def assert_box_inside(inner, outer):
    top, left, height, width = (int(v) for v in inner)
    out_top, out_left, out_height, out_width = (int(v) for v in outer)
    assert out_top <= top and top + height <= out_top + out_height
    assert out_left <= left and left + width <= out_left + out_width


# --- Context Encoders centre region -------------------------------------------------

def test_center_box_defaults():
    assert masks.center_box() == (32, 32, 64)
    assert masks.center_box((100, 200), 50) == (25, 75, 50)


def test_center_mask_blanks_inner_56_square():
    mask = masks.center_mask()
    assert_binary_mask(mask, (128, 128))
    assert mask.numpy().sum() == 56 * 56
    assert hole_box(mask)[0] == (36, 36, 56, 56)
    m = mask.numpy()[..., 0]
    assert m[64, 64] == 1 and m[36, 36] == 1 and m[91, 91] == 1
    # The overlap ring (rows/cols 32..35 and 92..95) and the outside stay known.
    assert m[32, 64] == 0 and m[35, 64] == 0 and m[92, 64] == 0 and m[0, 0] == 0


def test_overlap_weights_ring():
    weights = masks.overlap_weights().numpy()
    assert weights.shape == (64, 64, 1) and weights.dtype == np.float32
    assert weights.sum() == 10 * (64 ** 2 - 56 ** 2) + 56 ** 2
    assert weights[0, 0, 0] == 10 and weights[3, 30, 0] == 10 and weights[4, 4, 0] == 1


@pytest.mark.parametrize("kwargs", [
    dict(image_size=128, hole_size=129),
    dict(image_size=128, hole_size=64, overlap=32),
    dict(image_size=128, hole_size=64, overlap=-1),
    dict(image_size=0),
])
def test_center_mask_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        masks.center_mask(**kwargs)


# --- Rectangles -------------------------------------------------------------------

def test_box_to_mask():
    mask = masks.box_to_mask(tf.constant([2, 3, 4, 5]), (10, 12))
    assert_binary_mask(mask, (10, 12))
    assert hole_box(mask) == ((2, 3, 4, 5), 20)


def test_random_block_mask_size_and_margin():
    for i in range(20):
        mask = masks.random_block_mask(seed(i), (64, 80), (16, 24), margin=5)
        assert_binary_mask(mask, (64, 80))
        (top, left, height, width), count = hole_box(mask)
        assert (height, width, count) == (16, 24, 16 * 24)
        assert 5 <= top <= 64 - 5 - 16 and 5 <= left <= 80 - 5 - 24


def test_random_block_mask_too_large():
    with pytest.raises(ValueError, match="block_size"):
        masks.random_block_mask(seed(0), 64, 60, margin=4)


def test_glcic_hole_sizes_and_local_box():
    heights, widths = set(), set()
    for i in range(50):
        mask, local_box = glcic_hole_and_local_box(seed(i))
        assert_binary_mask(mask, (256, 256))
        assert local_box.dtype == tf.int32 and local_box.shape == (4,)
        (top, left, height, width), count = hole_box(mask)
        assert count == height * width  # one rectangle
        assert 96 <= height <= 128 and 96 <= width <= 128
        assert local_box.numpy()[2:].tolist() == [128, 128]
        assert_box_inside(local_box.numpy(), (0, 0, 256, 256))
        assert_box_inside((top, left, height, width), local_box.numpy())
        heights.add(height)
        widths.add(width)
    assert len(heights) > 5 and len(widths) > 5  # drawn, not fixed


def test_glcic_bad_hole_range():
    with pytest.raises(ValueError, match="hole_range"):
        glcic_hole_and_local_box(seed(0), hole_range=(128, 96))
    with pytest.raises(ValueError, match="local_size"):
        glcic_hole_and_local_box(seed(0), hole_range=(96, 160))


def test_dmfn_box_shrinks_symmetrically():
    sides = set()
    for i in range(50):
        mask, box = dmfn_box_mask(seed(i))
        assert_binary_mask(mask, (256, 256))
        box = box.numpy()
        assert box[2:].tolist() == [128, 128]
        (top, left, height, width), count = hole_box(mask)
        assert count == height * width
        assert 128 - 2 * 16 <= height <= 128 and 128 - 2 * 16 <= width <= 128
        # Same shrink on opposite sides.
        assert top - box[0] == box[0] + box[2] - (top + height)
        assert left - box[1] == box[1] + box[3] - (left + width)
        assert_box_inside((top, left, height, width), box)
        sides.update((height, width))
    assert len(sides) > 5


def test_dmfn_center_without_shrink():
    mask, box = dmfn_box_mask(seed(3), position="center", max_delta=0)
    assert box.numpy().tolist() == [64, 64, 128, 128]
    assert hole_box(mask) == ((64, 64, 128, 128), 128 * 128)


def test_dmfn_bad_position():
    with pytest.raises(ValueError, match="position"):
        dmfn_box_mask(seed(0), position="middle")


# --- Context Encoders random region -------------------------------------------------

def test_random_region_coverage_in_range():
    dataset = tf.data.Dataset.range(50).map(lambda i: random_region_mask(tf.stack([i, 7])))
    coverages = []
    for mask in dataset:
        assert_binary_mask(mask, (128, 128))
        coverages.append(mask.numpy().mean())
    assert all(0.2 < c < 0.3 for c in coverages)
    assert len(set(coverages)) > 40


def test_random_region_fallback_lands_in_range():
    # Windows of 25 % noise hardly ever cover 90 %: the fallback is used.
    mask = random_region_mask(seed(1), image_size=64, min_coverage=0.9, max_coverage=0.95,
                                    max_tries=1)
    assert_binary_mask(mask, (64, 64))
    assert 0.9 < mask.numpy().mean() < 0.95


@pytest.mark.parametrize("kwargs", [
    dict(min_coverage=0.3, max_coverage=0.2),
    dict(min_coverage=-0.1),
    dict(max_coverage=1.5),
    dict(max_tries=0),
])
def test_random_region_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        random_region_mask(seed(0), **kwargs)


# --- Free-form strokes ------------------------------------------------------------

def test_irregular_presets_ordering():
    mean_coverage = {}
    for preset in ("thin", "medium", "thick"):
        coverages = []
        for i in range(24):
            mask = masks.irregular_mask(seed(i), 128, preset)
            coverages.append(mask.numpy().mean())
        mean_coverage[preset] = np.mean(coverages)
    assert 0 < mean_coverage["thin"] < mean_coverage["medium"] < mean_coverage["thick"] < 1


def test_irregular_mask_shape_and_custom_params():
    params = masks.StrokeParams(min_strokes=1, max_strokes=1, max_vertices=1, min_length=0,
                                max_length=0, min_width=10, max_width=10)
    mask = masks.irregular_mask(seed(5), (48, 64), params)
    assert_binary_mask(mask, (48, 64))
    # A zero-length stroke is a disc of diameter 10 * 48 / 256 = 1.875 px, at least one pixel.
    assert 1 <= mask.numpy().sum() <= 9


def test_irregular_strokes_are_connected():
    # One stroke of several segments, round joints: a single connected blob.
    ndimage = pytest.importorskip("scipy.ndimage")
    params = masks.StrokeParams(min_strokes=1, max_strokes=1, max_vertices=6, min_length=30,
                                max_length=60, min_width=6, max_width=10, max_angle=3.0)
    for i in range(10):
        mask = masks.irregular_mask(seed(i), 128, params).numpy()[..., 0]
        _, num_components = ndimage.label(mask)
        assert num_components == 1


def test_strokes_by_area_cover_the_nvidia_bins_evenly():
    # 120 masks at 64 px: the hole area is uniform over 1-60 %, so each of the six
    # 10 % bins gets about 20 (at least 10 here), and none goes far beyond 60 %.
    areas = np.array([masks.strokes_by_area_mask(seed(i), 64).numpy().mean()
                      for i in range(120)])
    counts, _ = np.histogram(areas, bins=[0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0])
    assert counts[:6].min() >= 10 and counts[6] <= 3, counts
    # The same seed gives the same mask; a chosen range is kept to.
    first = masks.strokes_by_area_mask(seed(3), (48, 64))
    assert_binary_mask(first, (48, 64))
    np.testing.assert_array_equal(first, masks.strokes_by_area_mask(seed(3), (48, 64)))
    narrow = [masks.strokes_by_area_mask(seed(i), 64, (0.3, 0.35)).numpy().mean()
              for i in range(8)]
    assert all(0.25 < a < 0.42 for a in narrow), narrow
    with pytest.raises(ValueError, match="area_range"):
        masks.strokes_by_area_mask(seed(0), 64, (0.5, 0.2))


def test_hole_depth_by_hand():
    # A band 4 rows deep across the image: its rows are 1, 2, 2, 1 px from the
    # nearest known row, a mean of 1.5; a one-pixel line is 1 deep.
    band = np.zeros((16, 16, 1), np.float32)
    band[6:10] = 1
    assert masks.hole_depth(band) == pytest.approx(1.5)
    line = np.zeros((16, 16), np.float32)
    line[:, 3] = 1
    assert masks.hole_depth(line) == pytest.approx(1.0)
    assert np.isnan(masks.hole_depth(np.zeros((8, 8))))


def test_depth_matched_strokes_are_thin_when_small_and_thick_when_large():
    # The same areas as plain strokes, but the widths grow with the area: at
    # 128 px the small holes are shallower than plain strokes' and the large
    # ones deeper (NVIDIA's 0-10 % and 50-60 % bins: 2.0 and 8.1 px deep).
    def depths(depth_matched, area_range):
        return np.mean([masks.hole_depth(masks.strokes_by_area_mask(
            seed(i), 128, area_range, depth_matched=depth_matched).numpy())
            for i in range(12)])
    small, large = (0.02, 0.1), (0.5, 0.6)
    assert depths(True, small) < 2.4 < depths(False, small)
    assert depths(True, large) > 6.5 > depths(False, large)
    matched = masks.strokes_by_area_mask(seed(5), 128, large, depth_matched=True)
    assert_binary_mask(matched, (128, 128))
    assert 0.45 < float(np.mean(matched)) < 0.65


def test_irregular_unknown_preset():
    with pytest.raises(ValueError, match="preset"):
        masks.irregular_mask(seed(0), 64, "huge")
    with pytest.raises(ValueError, match="max_strokes"):
        masks.StrokeParams(min_strokes=3, max_strokes=2, max_vertices=1, min_length=1,
                           max_length=2, min_width=1, max_width=2)


# --- Determinism and graph mode -----------------------------------------------------

GENERATORS = {
    "block": lambda s: masks.random_block_mask(s, 64, 16),
    "region": lambda s: random_region_mask(s, 64),
    "glcic": lambda s: glcic_hole_and_local_box(s, 96, (24, 40), 48)[0],
    "dmfn": lambda s: dmfn_box_mask(s, 96, 48, 16)[0],
    "irregular": lambda s: masks.irregular_mask(s, 64, "medium"),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_seed_same_mask(name):
    generate = GENERATORS[name]
    first = generate(seed(11, 3)).numpy()
    assert np.array_equal(first, generate(tf.constant([11, 3], tf.int32)).numpy())
    others = [generate(seed(i, 3)).numpy() for i in range(12, 16)]
    assert any(not np.array_equal(first, other) for other in others)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_graph_mode_matches_eager(name):
    generate = GENERATORS[name]
    dataset = tf.data.Dataset.range(8).map(lambda i: generate(tf.stack([i, tf.constant(5, tf.int64)])),
                                           num_parallel_calls=2, deterministic=True)
    graph = [m.numpy() for m in dataset]
    eager = [generate(seed(i, 5)).numpy() for i in range(8)]
    for g, e in zip(graph, eager):
        assert g.shape == e.shape and g.dtype == np.float32
        assert np.array_equal(g, e)


# --- Mask folders -----------------------------------------------------------------

def write_mask(path, size, box, hole_value=255, mode="L"):
    """A mask image of `size` (h, w) with a rectangle of hole_value in box (top, left, h, w)."""
    array = np.full(size, 255 - hole_value, np.uint8)
    top, left, height, width = box
    array[top:top + height, left:left + width] = hole_value
    image = Image.fromarray(array)
    if mode != "L":
        image = image.convert(mode)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path)


@pytest.fixture
def mask_dir(tmp_path):
    write_mask(str(tmp_path / "a.png"), (40, 40), (0, 0, 10, 20))
    write_mask(str(tmp_path / "sub" / "b.png"), (40, 40), (20, 20, 20, 20), mode="RGB")
    write_mask(str(tmp_path / "c.bmp"), (40, 40), (10, 10, 10, 10))
    (tmp_path / "notes.txt").write_text("not a mask")
    return tmp_path


def test_mask_folder_lists_and_loads(mask_dir):
    folder = masks.load_mask_folder(str(mask_dir))
    assert [os.path.basename(f) for f in folder.files] == ["a.png", "c.bmp", "b.png"]
    mask = folder.load(0, 20)  # 40 -> 20, nearest neighbour
    assert_binary_mask(mask, (20, 20))
    assert hole_box(mask) == ((0, 0, 5, 10), 50)
    assert masks.load_mask_folder(str(mask_dir)).load(2, (40, 40)).numpy().sum() == 400


def test_mask_folder_resize_keeps_binary(mask_dir):
    folder = masks.load_mask_folder(str(mask_dir))
    for size in [(33, 57), 128]:
        assert_binary_mask(folder.load(1, size), (size, size) if isinstance(size, int) else size)


def test_mask_folder_sample_in_graph(mask_dir):
    folder = masks.load_mask_folder(str(mask_dir))
    dataset = tf.data.Dataset.range(16).map(lambda i: folder.sample(tf.stack([i, 0]), 40))
    sums = {float(m.numpy().sum()) for m in dataset}
    assert sums <= {200.0, 100.0, 400.0} and len(sums) > 1
    first = folder.sample(seed(4), 40).numpy()
    assert np.array_equal(first, folder.sample(seed(4), 40).numpy())


def test_mask_augmentation_off_is_the_resized_file():
    holes = np.zeros((16, 16, 1), bool)
    holes[2:5, 3:10] = True
    still = masks.MaskAugmentation(min_crop=1.0, max_rotation=0.0, max_dilation=0, flips=False)
    np.testing.assert_array_equal(still(seed(1), holes, 16).numpy()[..., 0] > 0.5, holes[..., 0])
    doubled = still(seed(1), holes, 32).numpy()[..., 0]  # nearest: each pixel 2x2
    assert doubled.sum() == 4 * holes.sum() and doubled[4:10, 6:20].all()


def test_mask_augmentation_dilates_by_up_to_max_dilation_pixels():
    dot = np.zeros((16, 16, 1), bool)
    dot[8, 8] = True
    grow = masks.MaskAugmentation(min_crop=1.0, max_rotation=0.0, max_dilation=2, flips=False)
    areas = {int(grow(seed(i), dot, 16).numpy().sum()) for i in range(40)}
    assert areas == {1, 9, 25}  # (2k + 1)^2 for k = 0, 1, 2 steps of 3x3


def test_mask_augmentation_rotates_about_the_centre_and_flips():
    image = np.zeros((1, 5, 5, 1), np.float32)
    image[0, 0, 2] = 1.0  # top middle
    turned = masks._rotate(tf.constant(image), tf.constant(np.pi / 2)).numpy()[0, ..., 0]
    assert np.argwhere(turned > 0.5).tolist() == [[2, 0]]  # a quarter turn: left middle
    corner = np.zeros((8, 8, 1), bool)
    corner[0:2, 0:3] = True
    flip = masks.MaskAugmentation(min_crop=1.0, max_rotation=0.0, max_dilation=0, flips=True)
    boxes = {hole_box(flip(seed(i), corner, 8))[0] for i in range(40)}
    # Every combination of the two flips: the 2x3 box in each corner.
    assert boxes == {(0, 0, 2, 3), (0, 5, 2, 3), (6, 0, 2, 3), (6, 5, 2, 3)}


def test_mask_augmentation_is_seeded_binary_and_keeps_a_hole(mask_dir):
    folder = masks.load_mask_folder(str(mask_dir))
    augment = masks.MaskAugmentation()
    dataset = tf.data.Dataset.range(24).map(lambda i: folder.sample(tf.stack([i, 0]), 40, augment))
    plain = {float(m.numpy().sum()) for m in
             tf.data.Dataset.range(24).map(lambda i: folder.sample(tf.stack([i, 0]), 40))}
    sums = []
    for mask in dataset:
        assert_binary_mask(mask, (40, 40))
        sums.append(float(mask.numpy().sum()))
    assert all(0 < total < 1600 for total in sums)
    assert len(set(sums) - plain) > 10  # changed, not only the files' own masks
    again = folder.sample(seed(3), 40, augment).numpy()
    np.testing.assert_array_equal(again, folder.sample(seed(3), 40, augment).numpy())
    with pytest.raises(ValueError, match="min_crop"):
        masks.MaskAugmentation(min_crop=0.0)
    with pytest.raises(ValueError, match="max_dilation"):
        masks.MaskAugmentation(max_dilation=-1)


def test_mask_folder_inverted_polarity(tmp_path):
    for i in range(3):  # black = hole: most of each image is white.
        write_mask(str(tmp_path / f"{i}.png"), (32, 32), (i, i, 8, 8), hole_value=0)
    with pytest.raises(ValueError, match="pass --invert_masks=true"):
        masks.load_mask_folder(str(tmp_path))
    with pytest.raises(ValueError, match="make white the hole in the files"):
        masks.load_mask_folder(str(tmp_path), invert_flag=None)  # a tool without the flag
    folder = masks.load_mask_folder(str(tmp_path), invert=True)
    mask = folder.load(1, 32)
    assert hole_box(mask) == ((1, 1, 8, 8), 64)
    assert mask.numpy()[4, 4, 0] == 1 and mask.numpy()[20, 20, 0] == 0


def test_mask_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        masks.load_mask_folder(str(tmp_path / "missing"))
    (tmp_path / "readme.txt").write_text("no masks here")
    with pytest.raises(ValueError, match=str(tmp_path)):
        masks.load_mask_folder(str(tmp_path))
    write_mask(str(tmp_path / "ok.png"), (16, 16), (0, 0, 4, 4))
    write_mask(str(tmp_path / "ok2.png"), (16, 16), (0, 0, 4, 4))
    write_mask(str(tmp_path / "blank.png"), (16, 16), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="blank.png"):
        masks.load_mask_folder(str(tmp_path))
    (tmp_path / "blank.png").unlink()
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="broken.png"):
        masks.load_mask_folder(str(tmp_path))
    (tmp_path / "broken.png").unlink()
    # PIL reads 1-bit BMP, TensorFlow does not: caught now, not during training.
    write_mask(str(tmp_path / "one_bit.bmp"), (16, 16), (0, 0, 4, 4), mode="1")
    with pytest.raises(ValueError, match="one_bit.bmp"):
        masks.load_mask_folder(str(tmp_path))


def test_all_white_masks_are_not_called_inverted(tmp_path):
    for i in range(3):
        write_mask(str(tmp_path / f"{i}.png"), (16, 16), (0, 0, 16, 16))
    with pytest.raises(ValueError, match="is all hole") as error:
        masks.load_mask_folder(str(tmp_path))
    assert "invert" not in str(error.value)


def test_every_mask_file_is_checked_not_only_the_decoded_ones(tmp_path):
    # 200 files: only 64 are decoded in full, but the headers of all are read.
    for i in range(200):
        write_mask(str(tmp_path / f"{i:03d}.png"), (16, 16), (2, 2, 4, 4))
    decoded = {round(i) for i in np.linspace(0, 199, 64)}
    spared = next(i for i in range(200) if i not in decoded)
    (tmp_path / f"{spared:03d}.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=f"1 of the 200 mask files .*{spared:03d}.png"):
        masks.load_mask_folder(str(tmp_path))


@pytest.mark.skipif(not os.path.isdir(NVIDIA_MASKS), reason=f"{NVIDIA_MASKS} is absent")
def test_nvidia_irregular_masks():
    folder = masks.load_mask_folder(NVIDIA_MASKS)
    assert len(folder.files) == 1200
    mask = folder.sample(seed(0), 256)
    assert_binary_mask(mask, (256, 256))
    assert 0 < mask.numpy().mean() < 0.7


# --- Filling ----------------------------------------------------------------------

def test_apply_fill_rgb_and_batch():
    image = tf.random.stateless_uniform([2, 8, 8, 3], seed(0), -1, 1)
    mask = masks.box_to_mask((2, 2, 3, 3), 8)
    filled = masks.apply_fill(image, mask, masks.IMAGENET_MEAN_FILL).numpy()
    np.testing.assert_allclose(filled[1, 3, 3], masks.IMAGENET_MEAN_FILL, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(filled[:, 0, 0], image.numpy()[:, 0, 0])
    np.testing.assert_allclose(masks.IMAGENET_MEAN_FILL, (-0.0824, -0.1843, -0.0353), atol=1e-4)
    gray = masks.apply_fill(image, mask[tf.newaxis], masks.GRAY_FILL).numpy()
    assert (gray[:, 2:5, 2:5] == 0).all() and np.array_equal(gray[:, 6:], image.numpy()[:, 6:])


def test_apply_fill_bad_fill():
    with pytest.raises(ValueError, match="fill"):
        masks.apply_fill(tf.zeros([4, 4, 3]), tf.zeros([4, 4, 1]), (0.0, 0.0))
