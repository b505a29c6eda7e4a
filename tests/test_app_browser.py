"""inpaint-app's page in a real headless Chromium: draw, fill, and the result grid.

Needs Debian's chromium and chromium-driver (`.ci/run` installs them with apt);
skipped, saying so, where they are missing.
"""

import numpy as np
import pytest
from PIL import Image

from reproductions.app import browser
from reproductions.app import server

pytestmark = pytest.mark.skipif(bool(browser.missing_browser()),
                                reason=f"the browser test {browser.MISSING}")

# The stroke, in fractions of the canvas: a bend across the middle of the photo.
STROKE = [(0.3, 0.45), (0.45, 0.52), (0.6, 0.45)]


def test_the_page_paints_a_hole_fills_it_with_every_method_and_shows_the_grid(trained, tmp_path):
    import skimage.data

    photo = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((202, 150)))
    photo_path = tmp_path / "astronaut.png"
    Image.fromarray(photo).save(photo_path)

    def broken(image, mask):
        raise RuntimeError("this method fails on purpose")

    methods = server.load_methods(["telea", "biharmonic", f"dmfn:{trained['dmfn']}",
                                   f"structural_inpainting:{trained['structural_inpainting']}"])
    methods["broken"] = server.Method("broken", "trained", "anywhere", broken)
    with browser.Server(server.create_app(methods)) as app:
        driver = browser.start_chromium()
        try:
            browser.open_page(driver, app.url, str(photo_path))
            browser.paint_stroke(driver, STROKE)
            browser.fill(driver)
            status = driver.execute_script("return document.getElementById('status').textContent")
            assert "4 of 5 methods filled the hole (1 failed" in status
            error = driver.execute_script(
                "return document.querySelector('.tile[data-method=broken] .error').textContent")
            assert error == "RuntimeError: this method fails on purpose"
            notes = driver.execute_script(
                "return [...document.querySelectorAll('.tile')].map(t => [t.dataset.method, "
                "t.querySelector('.fills').hidden ? '' : t.querySelector('.fills').textContent])")
            for method, note in notes:  # the centre-region model says what it fills
                assert note.startswith("Fills its central square only") == method.startswith(
                    "structural_inpainting:"), (method, note)
            images = browser.tile_images(driver)
            assert set(images) == set(methods) - {"broken"}
            # The stroke's middle point is in the hole; the top-left corner is far from it.
            x, y = (round(f * (s - 1)) for f, s in zip(STROKE[1], (202, 150)))
            for method, completed in images.items():
                assert completed.shape == photo.shape, method
                np.testing.assert_array_equal(completed[:20, :20], photo[:20, :20], method)
                hole_change = np.abs(completed[y - 2:y + 3, x - 2:x + 3].astype(int) - photo[
                    y - 2:y + 3, x - 2:x + 3]).max()
                assert hole_change > 0, method
            # The outline toggle, and a result shown large.
            driver.find_element("id", "show-outline").click()
            assert driver.execute_script("return document.body.classList.contains('no-outline')")
            driver.find_element("css selector", ".tile[data-method=telea] .frame").click()
            assert driver.execute_script("return !document.getElementById('viewer').hidden")
            caption = driver.find_element("id", "viewer-caption").text
            assert caption.startswith("telea, ") and caption.endswith(" s")
        finally:
            driver.quit()
