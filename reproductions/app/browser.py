"""The comparison page in a headless Chromium (Debian's `chromium` and
`chromium-driver`), driven by Selenium: for its test and its README screenshot.

Nothing here downloads a browser: the driver is the system's chromedriver, and a
missing one is named with the packages that provide it.
"""

from __future__ import annotations

import base64
import io
import shutil
import socket
import tempfile
import threading
import time

import numpy as np

# Chromium's own background traffic (updates, sync, field trials) fails, many
# connections at a time, on a machine without a network: switched off.
CHROMIUM_ARGUMENTS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                      "--no-first-run", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync",
                      "--disable-dev-shm-usage", "--window-size=1400,1000")
MISSING = ("needs Debian's chromium and chromium-driver (sudo apt-get install chromium "
           "chromium-driver) and the selenium package (the suite's dev extra)")


def missing_browser() -> str:
    """Why the page cannot be driven here, or "" when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return MISSING
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return MISSING
    return ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """The app served by uvicorn in a thread of this process, on a free local port."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the app did not start on {self.url}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def start_chromium():
    """A headless Chromium driven through the system's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in CHROMIUM_ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}")
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def wait_for(driver, script: str, timeout: float = 120.0):
    """Polls `return SCRIPT` in the page until it is truthy; returns that value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"the page never satisfied {script!r} within {timeout:.0f} s")


def open_page(driver, url: str, photo_path: str) -> None:
    """Loads the page and the photo (through its file input)."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait_for(driver, "document.body.dataset.ready === 'true'", 60)
    driver.find_element(By.ID, "photo-file").send_keys(photo_path)
    wait_for(driver, "!document.getElementById('drop-zone').classList.contains('empty')", 30)


def paint_stroke(driver, points: list[tuple[float, float]]) -> None:
    """Drags the pointer over the mask canvas through `points`, given as fractions
    (x, y) of the canvas's width and height."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, "mask-canvas")
    width, height = canvas.size["width"], canvas.size["height"]
    # Offsets are from the element's centre.
    offsets = [(round((x - 0.5) * width), round((y - 0.5) * height)) for x, y in points]
    chain = ActionChains(driver).move_to_element_with_offset(canvas, *offsets[0]).click_and_hold()
    for (x0, y0), (x1, y1) in zip(offsets, offsets[1:]):
        chain = chain.move_by_offset(x1 - x0, y1 - y0)
    chain.release().perform()


def fill(driver, timeout: float = 300.0) -> None:
    """Presses Fill and waits until every tile has its result or error."""
    from selenium.webdriver.common.by import By

    before = driver.execute_script("return Number(document.body.dataset.filled || 0)")
    driver.find_element(By.ID, "fill").click()
    wait_for(driver, f"Number(document.body.dataset.filled || 0) > {before}", timeout)


def tile_images(driver) -> dict[str, np.ndarray]:
    """method -> the result image each tile shows, as uint8 HxWx3."""
    from PIL import Image

    sources = driver.execute_script(
        "return [...document.querySelectorAll('.tile')].map(t => [t.dataset.method, "
        "(t.querySelector('img.result') || {}).src || null])")
    images = {}
    for method, source in sources:
        if source:
            data = base64.b64decode(source.split(",", 1)[1])
            images[method] = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return images
