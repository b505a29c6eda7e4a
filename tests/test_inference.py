"""Loading trained runs as inpainters, exporting them, and the `inpaint` command."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from reproductions import export
from reproductions import inpainters
from reproductions import papers

# `trained` (conftest.py): a one-step run of every registered paper's smoke config.


def smooth_image(height, width):
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([yy / height, xx / width, 0.5 + 0 * yy], -1).astype(np.float32)


def hole(height, width):
    mask = np.zeros((height, width), bool)
    mask[height // 3:height // 2, width // 4:width // 2] = True
    return mask


@pytest.mark.parametrize("paper", papers.PAPERS)
def test_trained_runs_complete_images_of_any_size(trained, paper):
    inpainter = inpainters.load(f"{paper}:{trained[paper]}")
    for height, width in ((70, 90), (128, 128)):
        image, mask = smooth_image(height, width), hole(height, width)
        completed = inpainter(image, mask)
        assert completed.shape == (height, width, 3) and completed.dtype == np.float32
        np.testing.assert_array_equal(completed[~mask], image[~mask])
        assert np.all((completed >= 0) & (completed <= 1))


def noisy_under_the_hole(image, mask, seed=0):
    """`image` with uniform noise in place of its hole pixels."""
    noise = np.random.default_rng(seed).uniform(0, 1, image.shape).astype(np.float32)
    return np.where(mask[..., None], noise, image)


def holes_at_the_border(height, width):
    """A box inside and a box touching the bottom-right corner, where padding reflects."""
    mask = hole(height, width)
    mask[height - 9:, width - 13:] = True
    return mask


def method_variants(trained, tmp_path_factory):
    """(name, inpainter) of every method and path: baselines, each paper's run with
    both fits and a window around the hole, and each paper's SavedModel."""
    from common import baselines

    variants = [(name, inpainters.load(name)) for name in baselines.BASELINES]
    for paper in papers.PAPERS:
        method = f"{paper}:{trained[paper]}"
        for fit in inpainters.FITS:
            variants.append((f"{method} --fit={fit}", inpainters.load(method, fit=fit)))
        if papers.get(paper).fully_convolutional:  # 6,300 px > 6,000: a window, 2 px around
            _, task = inpainters.load_task(trained[paper])
            variants.append((f"{method} window", inpainters.PaperInpainter(
                paper, task, max_megapixels=0.006, context=2)))
        saved = str(tmp_path_factory.mktemp(f"{paper}_saved") / "model")
        export.export(trained[paper], saved)
        variants.append((f"saved_model:{paper}", inpainters.load(f"saved_model:{saved}")))
    return variants


def test_no_method_sees_what_lies_under_the_hole(trained, tmp_path_factory):
    """Every method and path gives the bit-identical output whether the hole holds the
    true pixels or noise: the hole is blanked before any resize, pad or window."""
    image = smooth_image(70, 90)
    image[20:50, 10:60] = np.random.default_rng(1).uniform(0, 1, (30, 50, 3))  # texture
    mask = holes_at_the_border(70, 90)
    noisy = noisy_under_the_hole(image, mask)
    for name, inpainter in method_variants(trained, tmp_path_factory):
        clean, dirty = inpainter(image, mask), inpainter(noisy, mask)
        np.testing.assert_array_equal(clean, dirty, err_msg=name)
        np.testing.assert_array_equal(clean[~mask], image[~mask], err_msg=name)


@pytest.mark.parametrize("paper", ["glcic", "dmfn"])
def test_a_photo_of_a_few_pixels_is_refused_in_words(trained, tmp_path, paper):
    image, mask = smooth_image(3, 1), np.array([[True], [False], [False]])
    saved = str(tmp_path / "model")
    export.export(trained[paper], saved)
    for method in (f"{paper}:{trained[paper]}", f"saved_model:{saved}"):
        with pytest.raises(ValueError, match="The photo is 1x3 px; a trained model needs at "
                                             "least 8 px"):
            inpainters.load(method)(image, mask)


def test_blank_hole_sets_the_hole_to_the_known_mean():
    from common import masks

    image = np.zeros((2, 2, 2, 3), np.float32)
    image[0, :, :, 0] = [[0.2, 0.4], [0.9, 0.6]]
    mask = np.zeros((2, 2, 2, 1), np.float32)
    mask[0, 1, 0] = 1.0  # the 0.9 is the hole: known mean (0.2 + 0.4 + 0.6) / 3 = 0.4
    mask[1] = 1.0  # no known pixel: 0
    blanked = masks.blank_hole(image + mask * 7.0, mask).numpy()
    np.testing.assert_allclose(blanked[0, :, :, 0], [[0.2, 0.4], [0.4, 0.6]], atol=1e-7)
    np.testing.assert_array_equal(blanked[1], 0.0)


def test_center_model_fills_its_central_hole(trained):
    inpainter = inpainters.load(f"context_encoder:{trained['context_encoder']}")
    image = smooth_image(128, 128)
    mask = np.zeros((128, 128), bool)
    mask[36:92, 36:92] = True
    completed = inpainter(image, mask)
    assert not np.allclose(completed[mask], image[mask])


def test_center_models_count_the_hole_pixels_they_leave_unfilled(trained, tmp_path):
    inpainter = inpainters.load(f"context_encoder:{trained['context_encoder']}")
    # The centre region of a 200x100 photo: rows 50..149, columns 25..74.
    centre = np.zeros((200, 100), bool)
    centre[60:140, 30:70] = True
    corner = np.zeros((200, 100), bool)
    corner[:40, :20] = True  # 800 pixels, all outside
    both = centre | corner
    assert inpainter.unfilled_hole(centre).sum() == 0
    assert inpainter.unfilled_hole(corner).sum() == 800
    np.testing.assert_array_equal(inpainter.unfilled_hole(both), corner)
    assert inpainters.unfilled_warning("ce", inpainter, centre) == ""
    warning = inpainters.unfilled_warning("ce", inpainter, both)
    assert warning.startswith("800 of the 4,000 hole")
    # It points at the registry's fully convolutional papers.
    assert warning.endswith("glcic, dmfn or a classical method fill holes anywhere.")
    # The corner keeps the grey fill: the model cannot reach it.
    completed = inpainter(smooth_image(200, 100), corner)
    np.testing.assert_allclose(completed[corner], 0.5, atol=0.02)
    # Fully convolutional models fill any hole; baselines have no such limit.
    assert inpainters.load(f"glcic:{trained['glcic']}").unfilled_hole(corner).sum() == 0
    assert inpainters.unfilled_warning("telea", inpainters.load("telea"), corner) == ""


def test_loading_errors(trained, tmp_path):
    with pytest.raises(ValueError, match="Unknown method"):
        inpainters.load("photoshop")
    with pytest.raises(ValueError, match="holds a dmfn run"):
        inpainters.load(f"glcic:{trained['dmfn']}")
    with pytest.raises(FileNotFoundError, match="config.json"):
        inpainters.load(f"glcic:{tmp_path}")
    with pytest.raises(ValueError, match="mask must have shape"):
        inpainters.load("telea")(smooth_image(10, 10), np.zeros((9, 10), bool))
    with pytest.raises(ValueError, match="mask is 9x10 but the image is 10x10"):
        inpainters.PaperInpainter("dmfn", task=None)(smooth_image(10, 10),
                                                      np.zeros((9, 10), bool))


LOAD_WITHOUT_THE_SUITE = """
import sys
import numpy as np
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
image = np.load(sys.argv[2]); mask = np.load(sys.argv[3])
print("modules:", any(m.startswith(("common", "reproductions")) for m in sys.modules))
np.save(sys.argv[4], model.serve(tf.constant(image[None]), tf.constant(mask[None])).numpy()[0])
"""


@pytest.mark.parametrize("paper", papers.PAPERS)
def test_export_round_trip_matches_the_in_process_model(trained, tmp_path, paper):
    output = str(tmp_path / "saved")
    assert export.export(trained[paper], output) == paper
    image, mask = smooth_image(70, 90), hole(70, 90)
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "mask.npy", mask[..., None].astype(np.float32))
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_THE_SUITE, output, str(tmp_path / "image.npy"),
         str(tmp_path / "mask.npy"), str(tmp_path / "out.npy")],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "modules: False" in result.stdout  # loaded with TensorFlow alone
    served = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(served[~mask], image[~mask])
    expected = inpainters.load(f"{paper}:{trained[paper]}", postprocess=False)(image, mask)
    np.testing.assert_allclose(served, expected, atol=2e-3)
    loaded = inpainters.load(f"saved_model:{output}", postprocess=False)
    np.testing.assert_allclose(loaded(image, mask), served, atol=1e-6)
    # GLCIC's Poisson post-processing runs outside the graph: `inpaint` applies it to an
    # export as to the run itself, and leaves the other papers' exports as they are.
    with open(os.path.join(output, inpainters.EXPORT_INFO)) as f:
        assert json.load(f) == {"paper": paper, "postprocess_outside_graph": paper == "glcic"}
    blended = inpainters.load(f"saved_model:{output}")(image, mask)
    in_process = inpainters.load(f"{paper}:{trained[paper]}")(image, mask)
    np.testing.assert_allclose(blended, in_process, atol=3e-3)
    if paper == "glcic":
        assert np.abs(blended - served).max() > 1e-3


def save(array, path):
    Image.fromarray(array).save(path)
    return str(path)


def test_inpaint_command_and_its_errors(tmp_path):
    image = (smooth_image(60, 80) * 255).astype(np.uint8)
    mask = np.zeros((60, 80), np.uint8)
    mask[20:30, 30:50] = 255
    image_path = save(image, tmp_path / "photo.png")
    mask_path = save(mask, tmp_path / "mask.png")
    output = tmp_path / "out.png"

    def run(*args):
        # The console script sits beside the interpreter of the environment it was installed in.
        script = os.path.join(os.path.dirname(sys.executable), "inpaint")
        return subprocess.run([script, *args], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})

    result = run("--method=telea", f"--image={image_path}", f"--mask={mask_path}",
                 f"--output={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    completed = np.asarray(Image.open(output))
    np.testing.assert_array_equal(completed[mask == 0], image[mask == 0])
    assert np.abs(completed[mask > 0].astype(int) - image[mask > 0]).mean() < 10

    # An existing output is kept unless --overwrite says otherwise.
    result = run("--method=telea", f"--image={image_path}", f"--mask={mask_path}",
                 f"--output={output}")
    assert result.returncode == 1 and "exists; pass --overwrite" in result.stderr
    result = run("--method=ns", f"--image={image_path}", f"--mask={mask_path}",
                 f"--output={output}", "--overwrite")
    assert result.returncode == 0, result.stderr[-2000:]
    output = tmp_path / "out2.png"
    result = run("--method=telea", f"--image={tmp_path}/missing.jpg", f"--mask={mask_path}",
                 f"--output={output}")
    assert result.returncode == 1 and "missing.jpg" in result.stderr
    small = save(mask[:50], tmp_path / "small.png")
    result = run("--method=telea", f"--image={image_path}", f"--mask={small}",
                 f"--output={output}")
    assert result.returncode == 1 and "must have the photo's size" in result.stderr
    empty = save(np.zeros((60, 80), np.uint8), tmp_path / "empty.png")
    result = run("--method=telea", f"--image={image_path}", f"--mask={empty}",
                 f"--output={output}")
    assert result.returncode == 1 and "has no hole" in result.stderr


def test_inpaint_output_is_checked_before_any_work(tmp_path):
    from reproductions import inpaint

    photo = tmp_path / "photo.png"
    photo.write_bytes(b"x")
    cases = {str(photo): "is one of the input files",
             str(tmp_path / "missing" / "out.png"): "does not exist",
             str(tmp_path / "out.unknown"): "unsupported extension '.unknown'",
             str(tmp_path / "out.pdf"): "unsupported extension '.pdf'",
             str(tmp_path / "out.gif"): "unsupported extension '.gif'",
             str(tmp_path / "out"): "unsupported extension '(none)'",
             str(tmp_path / "out.jpg"): "is lossy and would change the known pixels"}
    for output, message in cases.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            inpaint.check_output(output, (str(photo),), overwrite=True)
    assert inpaint.check_output(str(tmp_path / "out.jpg"), (str(photo),), overwrite=False,
                                lossy=True) == {"quality": 95}
    assert inpaint.check_output(str(tmp_path / "out.webp"), (str(photo),),
                                overwrite=False) == {"lossless": True}


@pytest.mark.parametrize("extension", [".png", ".webp", ".bmp", ".tif"])
def test_lossless_outputs_keep_every_known_pixel(tmp_path, extension):
    from common import image_files

    image = np.random.default_rng(0).uniform(0, 1, (20, 30, 3)).astype(np.float32)
    image = np.round(image * 255) / 255
    path = str(tmp_path / f"out{extension}")
    image_files.save_rgb(image, path, image_files.check_output_extension(path, lossy=False))
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")),
                                  np.round(image * 255).astype(np.uint8))


def test_photos_are_read_as_shown(tmp_path):
    """EXIF orientation applied; 16-bit gray rescaled, not clipped; gray with alpha kept."""
    from common import image_files

    stored = (smooth_image(40, 60) * 255).astype(np.uint8)  # 40 rows, 60 columns as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to show": a phone's portrait
    Image.fromarray(stored).save(tmp_path / "portrait.jpg", exif=exif, quality=100)
    shown = image_files.read_photo(str(tmp_path / "portrait.jpg"))
    assert shown.shape == (60, 40, 3)
    np.testing.assert_allclose(shown, np.rot90(stored, k=-1) / 255.0, atol=0.03)

    sixteen = (np.linspace(0, 65535, 12 * 10).reshape(12, 10)).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "sixteen.png")
    assert Image.open(tmp_path / "sixteen.png").mode.startswith("I")
    gray = image_files.read_photo(str(tmp_path / "sixteen.png"))
    np.testing.assert_allclose(gray[..., 0], np.round(sixteen / 65535 * 255) / 255, atol=1e-6)
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])

    la = np.stack([stored[..., 1], np.full_like(stored[..., 1], 7)], -1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    read = image_files.read_photo(str(tmp_path / "la.png"))
    np.testing.assert_array_equal(read[..., 0], stored[..., 1] / np.float32(255))


def test_masks_with_transparency_are_refused_and_inverted_ones_warned(tmp_path):
    from common import image_files
    from reproductions import inpaint

    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = 255
    opaque = tmp_path / "opaque.png"
    Image.fromarray(rgba, "RGBA").save(opaque)
    assert image_files.read_mask_file(str(opaque)).all()  # opaque RGBA: white = hole
    rgba[5:10, 5:10, 3] = 0  # an eraser's hole
    erased = tmp_path / "erased.png"
    Image.fromarray(rgba, "RGBA").save(erased)
    with pytest.raises(ValueError, match="has transparent pixels"):
        image_files.read_mask_file(str(erased))
    mask = np.ones((20, 30), bool)
    mask[:4] = False  # 80 % hole
    assert "covers 80% of the photo" in inpaint.inverted_mask_warning("m.png", mask)
    assert inpaint.inverted_mask_warning("m.png", ~mask) == ""


def test_export_refuses_to_write_over_a_file(tmp_path):
    existing = tmp_path / "model"
    existing.write_text("something")
    with pytest.raises(ValueError, match="exists and is not an empty folder"):
        export.export("unused", str(existing))


def test_hole_window_is_the_hole_box_with_context_clipped_to_the_image():
    mask = np.zeros((100, 200), bool)
    mask[40:50, 10:30] = True
    assert inpainters.hole_window(mask, 16) == (24, 66, 0, 46)
    assert inpainters.hole_window(mask, 100) == (0, 100, 0, 130)


def test_large_photos_are_completed_in_a_window_around_the_hole(trained):
    image, mask = smooth_image(120, 160), np.zeros((120, 160), bool)
    mask[50:60, 70:84] = True
    _, task = inpainters.load_task(trained["dmfn"])
    bounded = inpainters.PaperInpainter("dmfn", task, max_megapixels=0.005, context=16)
    completed = bounded(image, mask)
    top, bottom, left, right = inpainters.hole_window(mask, 16)
    window = inpainters.PaperInpainter("dmfn", task)(image[top:bottom, left:right],
                                                    mask[top:bottom, left:right])
    np.testing.assert_array_equal(completed[top:bottom, left:right], window)
    np.testing.assert_array_equal(completed[~mask], image[~mask])
    mask[5:115, 5:155] = True  # the window now exceeds the limit: refused, with the flag
    with pytest.raises(ValueError, match="above --max_megapixels=0.005"):
        bounded(image, mask)


def test_inpaint_eval_command_for_a_baseline_and_a_trained_run(trained, tmp_path):
    import json

    images = tmp_path / "photos"
    images.mkdir()
    for i, (height, width) in enumerate(((60, 80), (90, 70), (64, 64))):
        save((smooth_image(height, width) * 255).astype(np.uint8), images / f"p{i}.png")
    script = os.path.join(os.path.dirname(sys.executable), "inpaint-eval")
    results = {}
    for method in ("telea", f"glcic:{trained['glcic']}"):
        output = tmp_path / method.split(":")[0]
        result = subprocess.run(
            [script, f"--method={method}", f"--images={images}", "--masks=bbox",
             "--image_size=32", f"--output={output}"], capture_output=True, text=True,
            timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        assert result.returncode == 0, result.stderr[-2000:]
        with open(output / "metrics.json") as f:
            results[method] = json.load(f)
        assert results[method]["count"] == 3
        assert {"psnr", "ssim", "l1_hole", "l2_hole", "l1"} <= set(results[method]["overall"])
        assert sorted(os.listdir(output))[:4] == ["metrics.json", "p0_composite.png",
                                                  "p0_input.png", "p0_mask.png"]
    # Both methods met the same masks.
    masks = [[r["hole_area"] for r in results[m]["per_image"]] for m in results]
    assert masks[0] == masks[1]
    result = subprocess.run([script, "--method=telea", f"--images={images}", "--masks=stars",
                             f"--output={tmp_path}/x"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1 and "stars" in result.stderr

    def telea_into(output, *extra):
        return subprocess.run([script, "--method=telea", f"--images={images}", "--masks=bbox",
                               "--image_size=32", f"--output={output}", *extra],
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})

    # A folder that holds an evaluation is replaced only when asked, and then wholly.
    output = tmp_path / "telea"
    (output / "notes.txt").write_text("mine")
    result = telea_into(output, "--limit=1")
    assert result.returncode == 1 and "is not empty; pass --overwrite" in result.stderr
    assert "Traceback" not in result.stderr
    result = telea_into(output, "--limit=1", "--overwrite")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(output)) == ["metrics.json", "notes.txt", "p0_composite.png",
                                          "p0_input.png", "p0_mask.png", "p0_target.png"]
    for limit in ("0", "-2"):
        result = telea_into(tmp_path / "y", f"--limit={limit}")
        assert result.returncode == 1 and "--limit must be at least 1" in result.stderr
        assert "Traceback" not in result.stderr
