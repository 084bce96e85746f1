"""A real headless Chromium for the page tests (Debian's chromium + chromium-driver, selenium):
``needs_browser`` skips a module cleanly where they are missing."""

from __future__ import annotations

import contextlib
import shutil

import pytest

CHROMEDRIVER, CHROMIUM = shutil.which("chromedriver"), shutil.which("chromium")
needs_browser = pytest.mark.skipif(CHROMEDRIVER is None or CHROMIUM is None,
                                   reason="needs Debian's chromium and chromium-driver")


@contextlib.contextmanager
def headless_chromium(width: int, height: int):
    """A driver with a window of width x height, quit on leaving."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
