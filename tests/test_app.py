"""inpaint-app's API (reproductions/app/server.py), through Starlette's test client."""

import base64
import io
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

import helpers
from reproductions import export
from reproductions.app import server

# `trained` (conftest.py): a one-step run of every registered paper's smoke config.


def real_photo(height=150, width=202):
    """scikit-image's astronaut photo, resized to sides that are not multiples of 4."""
    import skimage.data

    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((width, height)))


def stroke_mask(height, width, top=0.35, left=0.3):
    """A white-is-hole stroke: a 9-px band with a short spur."""
    mask = np.zeros((height, width), np.uint8)
    row, col = int(top * height), int(left * width)
    mask[row:row + 9, col:col + width // 3] = 255
    mask[row:row + 30, col:col + 9] = 255
    return mask


def png(array, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def decode(entry):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(entry["png"]))).convert("RGB"))


@pytest.fixture(scope="module")
def methods(trained):
    """The classical methods and every paper's trained run, loaded once."""
    names = ["telea", "biharmonic", *(f"{paper}:{workdir}" for paper, workdir in trained.items())]
    return server.load_methods(names)


def client_for(methods, **options):
    from starlette.testclient import TestClient

    return TestClient(server.create_app(methods, **options))


def post(client, image, mask, methods=None):
    files = {"image": ("photo.png", image, "image/png"), "mask": ("mask.png", mask, "image/png")}
    return client.post("/api/inpaint", files=files,
                       data={"methods": ",".join(methods)} if methods else None)


def test_methods_are_listed_with_their_kind_and_what_they_fill(methods):
    listed = {m["name"]: m for m in client_for(methods).get("/api/methods").json()}
    assert listed["telea"] == {"name": "telea", "kind": "classical", "fills": "anywhere"}
    kinds = {name.split(":")[0]: m for name, m in listed.items()}
    assert kinds["glcic"]["kind"] == "trained" and kinds["glcic"]["fills"] == "anywhere"
    assert kinds["structural_inpainting"]["fills"].startswith("its central square only")


def test_every_method_fills_a_real_photo_and_keeps_its_known_pixels(methods):
    photo = real_photo()
    mask = stroke_mask(*photo.shape[:2])
    answer = post(client_for(methods), png(photo), png(mask))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["width"], body["height"], body["hole_pixels"]) == (202, 150, int((mask > 0).sum()))
    assert [r["method"] for r in body["results"]] == list(methods)
    hole = mask > 0
    for entry in body["results"]:
        assert entry["error"] is None and entry["seconds"] >= 0, entry
        completed = decode(entry)
        assert completed.shape == photo.shape
        difference = np.abs(completed.astype(int) - photo.astype(int))
        assert difference[~hole].max() <= 1, entry["method"]  # known pixels kept (to 1/255)
        assert difference[hole].max() > 0, entry["method"]  # the hole was filled


def test_a_centre_region_model_says_which_part_of_the_hole_it_leaves(methods):
    photo = real_photo()
    mask = stroke_mask(*photo.shape[:2], top=0.05, left=0.05)  # outside the central square
    name = next(n for n in methods if n.startswith("structural_inpainting:"))
    entry = post(client_for(methods), png(photo), png(mask), [name]).json()["results"][0]
    assert "lie outside the central region" in entry["warning"]
    telea = post(client_for(methods), png(photo), png(mask), ["telea"]).json()["results"][0]
    assert telea["warning"] is None


def test_bad_uploads_are_refused_with_a_message_naming_the_file(methods, tmp_path):
    client = client_for({"telea": methods["telea"]}, max_upload_mb=0.5)
    photo = real_photo()
    mask = stroke_mask(*photo.shape[:2])

    def refused(image, mask_file, status=400, chosen=None):
        answer = post(client, image, mask_file, chosen)
        assert answer.status_code == status, answer.text
        return answer.json()["error"]

    assert "is 202x149 (WxH) but the image is 202x150" in refused(png(photo), png(mask[:-1]))
    assert "has no hole" in refused(png(photo), png(0 * mask))
    assert "covers 9" in refused(png(photo), png(255 - mask)) and "invert it" in refused(
        png(photo), png(255 - mask))
    transparent = np.dstack([mask, mask, mask, np.full_like(mask, 128)])
    assert "transparent pixels" in refused(png(photo), png(transparent, "RGBA"))
    assert "not an image file" in refused(b"not a photo", png(mask))
    assert "unknown methods ['nope']" in refused(png(photo), png(mask), chosen=["nope"])
    big = np.random.default_rng(0).integers(0, 256, (600, 600, 3), np.uint8)  # ~1 MB as PNG
    assert "above the server's --max_upload_mb=0.5" in refused(png(big), png(mask), 413)
    missing = client.post("/api/inpaint", files={"image": ("p.png", png(photo), "image/png")})
    assert missing.status_code == 400 and "'mask'" in missing.json()["error"]


def test_one_failing_method_leaves_the_others(methods):
    def broken(image, mask):
        raise RuntimeError("out of memory")

    served = {"telea": methods["telea"],
              "broken": server.Method("broken", "trained", "anywhere", broken)}
    photo = real_photo()
    body = post(client_for(served), png(photo), png(stroke_mask(*photo.shape[:2]))).json()
    telea, failed = body["results"]
    assert telea["error"] is None and telea["png"]
    assert failed["png"] is None and failed["error"] == "RuntimeError: out of memory"


def test_requests_at_the_same_time_get_their_own_results(methods):
    """Two uploads of different photos and holes, sent at once to the same methods (a
    trained one included), get what each gets alone."""
    chosen = ["telea", next(n for n in methods if n.startswith("dmfn:"))]
    client = client_for(methods)
    photos = [real_photo(), real_photo()[::-1].copy()]
    masks = [stroke_mask(150, 202), stroke_mask(150, 202, top=0.6, left=0.5)]
    alone = [post(client, png(p), png(m), chosen).json() for p, m in zip(photos, masks)]
    together = [None, None]
    barrier = threading.Barrier(2)

    def send(i):
        barrier.wait()
        together[i] = post(client, png(photos[i]), png(masks[i]), chosen).json()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    for first, second in zip(alone, together):
        for a, b in zip(first["results"], second["results"]):
            np.testing.assert_array_equal(decode(a), decode(b), err_msg=a["method"])


def test_the_page_and_the_samples_are_served(methods):
    client = client_for({"telea": methods["telea"]})
    page = client.get("/")
    assert page.status_code == 200 and 'id="mask-canvas"' in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    assert "http" not in client.get("/static/app.js").text  # nothing from elsewhere
    samples = client.get("/api/samples").json()
    assert "astronaut" in samples
    photo = Image.open(io.BytesIO(client.get("/api/samples/astronaut").content))
    assert photo.size == (512, 512) and photo.mode == "RGB"
    assert client.get("/api/samples/nope").status_code == 404


def test_runs_and_exports_are_found_under_the_runs_folder(trained, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(trained["glcic"], runs / "study" / "glcic_run")
    export.export(trained["dmfn"], str(runs / "exported"))
    (runs / "unfinished").mkdir()
    (runs / "unfinished" / "config.json").write_text('{"paper": "dmfn"}')
    (runs / "unfinished" / "checkpoints").mkdir()
    assert server.find_runs(str(runs)) == [f"glcic:{runs / 'study' / 'glcic_run'}",
                                           f"saved_model:{runs / 'exported'}"]
    assert server.method_names(None, str(tmp_path / "none")) == ["telea", "ns", "biharmonic",
                                                                  "mean_fill"]
    assert server.method_names(["telea"], str(runs)) == ["telea"]


def test_inpaint_app_help_and_bad_flags():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "reproductions.app.server"]
    shown = subprocess.run(command + ["--help"], capture_output=True, text=True, timeout=120,
                           cwd=helpers.REPO, env=env)
    assert shown.returncode == 0
    for flag in ("--methods", "--runs_dir", "--host", "--port", "--max_upload_mb"):
        assert flag in shown.stdout
    for bad, message in (("--port=0", "--port must be in 1..65535"),
                         ("--methods=nope", "Unknown method 'nope'")):
        result = subprocess.run(command + [bad], capture_output=True, text=True, timeout=120,
                                cwd=helpers.REPO, env=env)
        assert result.returncode == 1 and message in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
