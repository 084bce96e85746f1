"""streamer label in a real headless Chromium (Debian's chromium + chromium-driver, selenium):
keys pressed on the page → the exact labels.csv written; reopened, the page continues from it.
Takes a screenshot: to tmp, or to docs/label.png (docs/labeling.md's) with
SONOSTREAM_UPDATE_SCREENSHOT=1."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from streamer.labeling.session import LabelSession
from tests.browser import headless_chromium, needs_browser

pytest.importorskip("selenium.webdriver")
pytest.importorskip("aiohttp")
pytest.importorskip("pydicom")
pytestmark = needs_browser
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "label.png"  # rewritten only when asked: tests leave the tree alone
HEADER = "file,frames,head,spine,thorax,abdomen,limbs,placenta\n"
A, B = 12, 8  # frames of the two loops
SETTLED = "labeler.ready && labeler.pending === 0 && labeler.shown === labeler.frame"


@pytest.fixture(scope="module")
def browser():
    with headless_chromium(1100, 780) as driver:
        yield driver


@pytest.fixture
def exam(tmp_path):
    from engines.simulator.dicom_export import simulated_cine, write_dicom

    cine = simulated_cine(A, seed=4)
    write_dicom(tmp_path / "a.dcm", cine.frames, regions=cine.regions)
    write_dicom(tmp_path / "b.dcm", cine.frames[:B], regions=cine.regions)
    return tmp_path


class Page:
    """The labelling page of DATA served in this process, as `streamer label` serves it."""

    def __init__(self, browser, data: str):
        from streamer.labeling.labeler import open_labeler
        from streamer.labeling.server import LabelServer

        self.browser = browser
        self.labeler = open_labeler(data).start()
        self.server = LabelServer(self.labeler, port=0).open()
        browser.get(self.server.url)
        self.wait(SETTLED)

    def wait(self, script: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.browser.execute_script("const labeler = window.labeler; return " + script)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {script}: "
                             f"{self.browser.execute_script('return window.labeler')}")

    def keys(self, *keys: str) -> None:
        """Pressed one after another, as fast as the browser takes them; then settled."""
        from selenium.webdriver import ActionChains
        from selenium.webdriver.common.keys import Keys

        chain = ActionChains(self.browser)
        for key in keys:
            if key.startswith("shift+"):
                chain.key_down(Keys.SHIFT).send_keys(getattr(Keys, key[6:])).key_up(Keys.SHIFT)
            else:
                chain.send_keys(getattr(Keys, key, key))
        chain.perform()
        self.wait(SETTLED)

    def get(self, name: str):
        return self.browser.execute_script(f"return window.labeler.{name}")

    def close(self) -> None:
        self.server.close()
        self.labeler.close()


def test_keys_write_the_exact_labels_and_a_reopened_page_continues(browser, exam):
    path = exam / "labels.csv"
    page = Page(browser, f"dicom:{exam}")
    try:
        right = ("ARROW_RIGHT",)
        page.keys(*right * 3, "1",  # head on from frame 3
                  *right * 4, "1",  # head off from 7
                  "2", "z",  # spine on from 7, undone
                  "ARROW_LEFT", "3")  # thorax on from 6
        assert page.get("frame") == 6
        assert path.read_text() == (HEADER + "a.dcm,3-5,1,0,0,0,0,0\n"
                                    "a.dcm,6,1,0,1,0,0,0\n"
                                    f"a.dcm,7-{A - 1},0,0,1,0,0,0\n")
        assert page.labeler.suggestions.wait(60)
        page.wait(f"labeler.done === {A}")  # every frame scored and shown: still not written
        assert path.read_text().count("\n") == 4
        shot = (SCREENSHOT if os.environ.get("SONOSTREAM_UPDATE_SCREENSHOT") == "1"
                else Path(os.environ.get("TMPDIR", "/tmp")) / "sonostream-label.png")
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        page.keys("shift+ARROW_LEFT", "a")  # frame 0 (6 - 10, clamped): accept the suggestion
        assert page.get("frame") == 0
        want = LabelSession(page.labeler.session.classes, {"a.dcm": A, "b.dcm": B})
        for frame, cls in ((3, 0), (7, 0), (6, 2)):
            want.toggle("a.dcm", frame, cls)
        first, last = want.accept("a.dcm", 0, page.labeler.suggestions.vectors(0))
        assert first == 0 and last >= 0
        page.keys("n", *right * 2, "2", "s")  # loop b: spine on from 2
        want.toggle("b.dcm", 2, 1)
        rows = "".join(f"{r.file},{r.text()},{','.join(map(str, r.labels))}\n"
                       for r in want.rows(want.classes))
        assert path.read_text() == HEADER + rows
        assert rows.endswith(f"b.dcm,2-{B - 1},0,1,0,0,0,0\n")
    finally:
        page.close()

    page = Page(browser, f"dicom:{exam}")  # reopened: the page starts from the file
    try:
        assert page.get("runs") == [[a, b, list(v)] for a, b, v in want.runs("a.dcm")]
        page.keys("n")
        assert page.get("runs") == [[2, B - 1, [0, 1, 0, 0, 0, 0]]]
        page.keys(*right * 4, "2")  # spine off from 4
        assert path.read_text().endswith("b.dcm,2-3,0,1,0,0,0,0\n"
                                          f"b.dcm,4-{B - 1},0,0,0,0,0,0\n")
        assert path.read_text().startswith(HEADER + rows.split("b.dcm")[0])  # loop a unchanged
        page.keys("p", "z")  # undo from loop a: the change was in b, which comes up, undone
        assert page.get("loop") == 1 and page.get("runs") == [[2, B - 1, [0, 1, 0, 0, 0, 0]]]
        assert path.read_text().endswith(f"b.dcm,2-{B - 1},0,1,0,0,0,0\n")
    finally:
        page.close()


def test_clicking_the_timeline_seeks_and_space_plays_to_the_end(browser, exam):
    from selenium.webdriver import ActionChains

    page = Page(browser, f"dicom:{exam}")
    try:
        timeline = browser.find_element("id", "timeline")
        width = timeline.size["width"]
        left = 72  # the row names' column (LEFT in page.js)
        x = left + (9 + 0.5) * (width - left) / A  # the middle of frame 9's column
        chain = ActionChains(browser).move_to_element_with_offset(timeline, int(x - width / 2), 0)
        chain.click().perform()
        page.wait(SETTLED)
        assert page.get("frame") == 9
        assert browser.find_element("id", "frameno").text == f"9 / {A - 1}"
        page.keys(" ")  # plays on from 9 and stops at the last frame
        page.wait(f"!labeler.playing && labeler.frame === {A - 1}")
        page.wait(SETTLED)
    finally:
        page.close()
