r"""Serves a page that fills a hole you paint on a photo with every method at once.

  inpaint-app --runs_dir=runs            # then open http://127.0.0.1:8000

The methods are those `inpaint` takes (--methods), by default the classical ones
and every trained run (and exported SavedModel) found under --runs_dir; each is
loaded once, at start. The page sends the photo and the painted mask to the API,
one request per method, and shows each result as it arrives. The API, for scripts:

  GET  /api/methods   [{"name", "kind", "fills"}]
  GET  /api/samples   names of the bundled sample photos; /api/samples/NAME is a PNG
  POST /api/inpaint   multipart: image, mask (PNG or JPEG files; mask white = hole,
                      the photo's size as shown), methods (comma-separated; default
                      all). Returns {"width", "height", "hole_pixels", "results":
                      [{"method", "png" (base64 PNG of the composite), "seconds",
                      "error", "warning"}]}; a bad upload is a 4xx with {"error"}.

Everything is served from this machine: no CDN, no build step.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import os
import threading
import time
from typing import Callable

import numpy as np
from absl import flags
from absl import logging
from PIL import Image

from common import baselines
from common import cli
from common import experiment
from common import image_files
from common import run_dir
from common.errors import UserError
from reproductions import inpaint
from reproductions import inpainters

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# Folders of a work directory that hold no run of their own: not searched.
NOT_RUNS = {"checkpoints", "damaged", "train", "eval", "samples", "variables", "assets"}
MAX_UPLOAD_MB = 25
# The hole of a mask above this share of the photo: most likely inverted (black =
# hole), as the folder loaders judge it (common.masks.load_mask_folder).
MAX_HOLE_SHARE = inpaint.INVERTED_COVERAGE


@dataclasses.dataclass
class Method:
    """One method as the page and the API see it."""

    name: str
    kind: str  # "classical", "trained" or "saved_model"
    fills: str  # where it fills a hole
    inpainter: inpainters.Inpainter
    # One call at a time per method: a model's state is not shared across threads.
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "fills": self.fills}


def find_runs(runs_dir: str) -> list[str]:
    """Method names of every trained run (`PAPER:WORKDIR`, a folder with config.json and
    a readable checkpoint) and exported model (`saved_model:PATH`) under `runs_dir`,
    sorted."""
    found = []
    for folder, subfolders, files in os.walk(runs_dir):
        subfolders[:] = sorted(d for d in subfolders if d not in NOT_RUNS)
        if "saved_model.pb" in files:
            found.append(f"saved_model:{folder}")
            subfolders[:] = []
        elif "config.json" in files and os.path.isdir(run_dir.checkpoint_dir(folder)):
            if run_dir.newest_readable(run_dir.checkpoint_dir(folder), repair=False) is None:
                logging.warning("%s has no readable checkpoint: not served.", folder)
                continue
            paper, _ = experiment.read_paper_config(folder)
            found.append(f"{paper}:{folder}")
    return sorted(found)


def load_methods(names: list[str], fit: str = "pad", postprocess: bool = True,
                 max_megapixels: float = inpainters.MAX_MEGAPIXELS) -> dict[str, Method]:
    """Each named method loaded once (the names `inpaint --method` takes), in order."""
    methods = {}
    for name in names:
        start = time.perf_counter()
        inpainter = inpainters.load(name, postprocess=postprocess, fit=fit,
                                    max_megapixels=max_megapixels)
        kind = ("classical" if name in baselines.BASELINES else
                "saved_model" if name.startswith("saved_model:") else "trained")
        fills = "anywhere"
        if getattr(inpainter, "center_only", False):
            fills = "its central square only (the middle half of the photo each way)"
        methods[name] = Method(name, kind, fills, inpainter)
        where = "" if kind == "classical" else f" ({kind}, {time.perf_counter() - start:.1f} s)"
        logging.info("Loaded %s%s: fills %s.", name, where, fills)
    return methods


def read_upload(image: bytes, mask: bytes, image_name: str = "image",
                mask_name: str = "mask") -> tuple[np.ndarray, np.ndarray]:
    """(photo float32 HxWx3 in [0, 1], bool HxW hole) of two uploaded files, checked as
    `inpaint` checks its files; a UserError says what is wrong."""
    photo = image_files.read_photo(image_name, "the image", image)
    hole = inpaint.check_mask(image_files.read_mask_file(mask_name, "the mask", mask),
                              photo.shape[:2], f"the mask {mask_name!r}")
    share = float(hole.mean())
    if share > MAX_HOLE_SHARE:
        raise UserError(f"the hole of the mask {mask_name!r} covers {share:.0%} of the photo, "
                        f"more than {MAX_HOLE_SHARE:.0%}: white is the hole; if your mask marks "
                        "the hole in black, invert it.")
    return photo, hole


def png_base64(image: np.ndarray) -> str:
    """An image in [0, 1] as a base64 PNG (8-bit, lossless)."""
    buffer = io.BytesIO()
    Image.fromarray(image_files.to_uint8(image), "RGB").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def run_method(method: Method, photo: np.ndarray, hole: np.ndarray) -> dict:
    """One method's result entry: the composite as PNG and its time, or its error."""
    entry = {"method": method.name, "png": None, "seconds": None, "error": None,
             "warning": inpainters.unfilled_warning(method.name, method.inpainter, hole) or None}
    try:
        with method.lock:
            start = time.perf_counter()
            completed = method.inpainter(photo, hole)
            entry["seconds"] = round(time.perf_counter() - start, 3)
        entry["png"] = png_base64(completed)
    except Exception as error:  # one method's failure is shown in its tile, not the page's
        logging.exception("%s failed", method.name)
        entry["error"] = f"{type(error).__name__}: {error}" if not isinstance(
            error, UserError) else str(error)
    return entry


def inpaint_upload(methods: dict[str, Method], chosen: list[str], image: bytes, mask: bytes,
                   image_name: str = "image", mask_name: str = "mask") -> dict:
    """The API's answer to one upload: every chosen method on the same photo and mask."""
    unknown = [name for name in chosen if name not in methods]
    if unknown:
        raise UserError(f"unknown methods {unknown}; GET /api/methods lists {list(methods)}.")
    photo, hole = read_upload(image, mask, image_name, mask_name)
    return {"width": photo.shape[1], "height": photo.shape[0],
            "hole_pixels": int(hole.sum()),
            "results": [run_method(methods[name], photo, hole) for name in chosen]}


def sample_photos() -> dict[str, Callable[[], np.ndarray]]:
    """The bundled sample photos (scikit-image's colour photos), by name."""
    import skimage.data

    from common import data

    return {name: (lambda name=name: getattr(skimage.data, name)()[..., :3])
            for name in data.SAMPLE_PHOTOS}


def create_app(methods: dict[str, Method], max_upload_mb: float = MAX_UPLOAD_MB):
    """The Starlette application: the page (static files) and the API."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    samples = sample_photos()
    limit = int(max_upload_mb * 1024 * 1024)

    async def page(request):
        return FileResponse(os.path.join(STATIC, "index.html"))

    async def list_methods(request):
        return JSONResponse([method.describe() for method in methods.values()])

    async def list_samples(request):
        return JSONResponse(list(samples))

    async def sample(request):
        name = request.path_params["name"]
        if name not in samples:
            return JSONResponse({"error": f"no sample photo {name!r}; GET /api/samples "
                                          f"lists {list(samples)}."}, status_code=404)
        buffer = io.BytesIO()
        Image.fromarray(samples[name]()).save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png")

    async def inpaint_request(request):
        length = request.headers.get("content-length")
        if length is None:
            return JSONResponse({"error": "the request needs a Content-Length header."},
                                status_code=411)
        if int(length) > limit:  # refused before reading, let alone decoding
            return JSONResponse({"error": f"the upload is {int(length) / 2**20:.1f} MB, above "
                                          f"the server's --max_upload_mb={max_upload_mb:g}."},
                                status_code=413)
        async with request.form(max_files=2, max_fields=1, max_part_size=limit) as form:
            files = {}
            for field in ("image", "mask"):
                upload = form.get(field)
                if upload is None or isinstance(upload, str):
                    return JSONResponse({"error": f"the form needs a file field {field!r}."},
                                        status_code=400)
                files[field] = (await upload.read(), upload.filename or field)
            chosen = [m.strip() for m in str(form.get("methods") or "").split(",") if m.strip()]
        try:
            answer = await run_in_threadpool(
                inpaint_upload, methods, chosen or list(methods), files["image"][0],
                files["mask"][0], files["image"][1], files["mask"][1])
        except UserError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(answer)

    routes = [Route("/", page), Route("/api/methods", list_methods),
              Route("/api/samples", list_samples), Route("/api/samples/{name}", sample),
              Route("/api/inpaint", inpaint_request, methods=["POST"]),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    return Starlette(routes=routes)


def define_flags() -> None:
    """The command's flags; defined only when it runs."""
    flags.DEFINE_list("methods", None, "Methods to serve (as `inpaint --method` takes them: "
                      "telea, ns, biharmonic, mean_fill, PAPER:WORKDIR, saved_model:PATH); "
                      "default the classical ones and every run found under --runs_dir.")
    flags.DEFINE_string("runs_dir", "runs", "Folder searched for trained runs and exported "
                        "models when --methods is not given.")
    flags.DEFINE_string("host", "127.0.0.1", "Address to serve on (0.0.0.0: every interface).")
    flags.DEFINE_integer("port", 8000, "Port to serve on.")
    flags.DEFINE_float("max_upload_mb", MAX_UPLOAD_MB, "Uploads (photo and mask together) "
                       "above this size are refused before they are read.")
    flags.DEFINE_float("max_megapixels", inpainters.MAX_MEGAPIXELS, "GLCIC and DMFN: photos "
                       "above this size are completed in a window around the hole, as "
                       "`inpaint` does.")
    flags.DEFINE_enum("fit", "pad", list(inpainters.FITS), "GLCIC and DMFN: reflect-pad to a "
                      "multiple of 4, or resize to the nearest one, as `inpaint --fit`.")
    flags.DEFINE_boolean("postprocess", True, "GLCIC: the paper's fast marching + Poisson "
                         "blending.")


def method_names(given: list[str] | None, runs_dir: str) -> list[str]:
    """--methods, or the classical methods and every run under --runs_dir."""
    if given:
        return given
    runs = find_runs(runs_dir) if os.path.isdir(runs_dir) else []
    if not runs:
        logging.info("No trained run under %r: serving the classical methods only.", runs_dir)
    return [*baselines.BASELINES, *runs]


def main(argv):
    from absl import app

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    with cli.user_errors():
        if not 0 < values.port < 65536:
            raise UserError(f"--port must be in 1..65535, got {values.port}.")
        if not values.max_upload_mb > 0:
            raise UserError(f"--max_upload_mb must be positive, got {values.max_upload_mb}.")
        methods = load_methods(method_names(values.methods, values.runs_dir), values.fit,
                               values.postprocess, values.max_megapixels)
    import uvicorn

    print(f"Serving {len(methods)} methods on http://{values.host}:{values.port} "
          "(Ctrl-C stops).", flush=True)
    uvicorn.run(create_app(methods, values.max_upload_mb), host=values.host, port=values.port,
                log_level="warning")
    return 0


def run() -> None:
    """Console-script entry point (`inpaint-app`)."""
    define_flags()
    cli.run_app(main, __doc__, __name__)


if __name__ == "__main__":
    run()
