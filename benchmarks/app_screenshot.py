r"""A screenshot of inpaint-app's page after a fill, for the README.

  python benchmarks/app_screenshot.py --methods=telea,biharmonic \
      --photo=../shared/data/faces/1_0_0_20161219140623097.jpg \
      --output=benchmarks/figures/inpaint_app.png

Serves the page on a free local port with --methods, opens it in a headless
Chromium (Debian's chromium and chromium-driver), loads --photo, paints
--stroke, presses Fill, waits for every tile and saves the window as PNG.
"""

from __future__ import annotations

import io
import os
import sys

from absl import flags
from PIL import Image

from common import cli
from common.errors import UserError
from reproductions.app import browser
from reproductions.app import server

flags.DEFINE_list("methods", ["telea", "biharmonic"], "Methods to show (as inpaint-app "
                  "--methods).")
flags.DEFINE_string("photo", None, "The photo to fill.")
flags.DEFINE_list("stroke", ["0.35", "0.55", "0.5", "0.62", "0.65", "0.55"], "The painted "
                  "stroke: x1,y1,x2,y2,... as fractions of the photo's width and height.")
flags.DEFINE_integer("brush", 18, "Brush size in screen pixels.")
flags.DEFINE_string("output", "benchmarks/figures/inpaint_app.png", "Where to save the PNG.")
FLAGS = flags.FLAGS


def parse_stroke(values: list[str]) -> list[tuple[float, float]]:
    """x1,y1,x2,y2,... (fractions in [0, 1]) as (x, y) points; a UserError naming --stroke."""
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        raise UserError(f"--stroke must be numbers x1,y1,x2,y2,..., got {values}.") from None
    if len(numbers) < 4 or len(numbers) % 2 or not all(0 <= v <= 1 for v in numbers):
        raise UserError(f"--stroke needs at least two points x,y, fractions in [0, 1], got "
                        f"{values}.")
    return list(zip(numbers[::2], numbers[1::2]))


def main(argv):
    del argv
    with cli.user_errors():
        missing = browser.missing_browser()
        if missing:
            raise UserError(f"the screenshot {missing}.")
        if not FLAGS.photo or not os.path.isfile(FLAGS.photo):
            raise UserError(f"--photo {FLAGS.photo!r} is not a file.")
        stroke = parse_stroke(FLAGS.stroke)
        methods = server.load_methods(FLAGS.methods)
    with browser.Server(server.create_app(methods)) as app:
        driver = browser.start_chromium()
        try:
            browser.open_page(driver, app.url, os.path.abspath(FLAGS.photo))
            driver.execute_script(
                "const brush = document.getElementById('brush-size');"
                f"brush.value = {FLAGS.brush}; brush.dispatchEvent(new Event('input'));")
            browser.paint_stroke(driver, stroke)
            browser.fill(driver)
            os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
            # 256 colours: a README figure stays small (a screenshot has few colours
            # outside its photos).
            screenshot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
            screenshot.quantize(256, dither=Image.Dither.NONE).save(FLAGS.output, optimize=True)
        finally:
            driver.quit()
    print(f"Wrote {FLAGS.output}")
    return 0


if __name__ == "__main__":
    cli.run_app(main, __doc__, __name__)
    sys.exit(0)
