"""A real run's report in a real headless Chromium (Debian's chromium + chromium-driver,
selenium): `streamer run --source sim:realtime=0,frames=120 --record FILE`, a keyframes folder of
its best frames, then `streamer report --pdf`: the page renders, every image loads, the timeline
has one row per region, nothing is fetched from outside the page, and the PDF has pages. The
screenshot goes to tmp, or to docs/report.png with SONOSTREAM_UPDATE_SCREENSHOT=1."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from streamer.cli import main
from streamer.report.pdf import pdf_pages
from tests.browser import headless_chromium, needs_browser
from tests.streamer.report_fixtures import keyframes_from_record

pytest.importorskip("selenium.webdriver")
pytestmark = needs_browser
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "report.png"  # rewritten only when asked: tests leave the tree alone
SIM = {"seed": 0, "width": 640, "height": 360}


@pytest.fixture(scope="module")
def exam(tmp_path_factory):
    """A real record of 120 frames, its keyframes folder, and the report's page and PDF."""
    d = tmp_path_factory.mktemp("report_e2e")
    record = d / "run.jsonl"
    source = "sim:realtime=0,frames=120," + ",".join(f"{k}={v}" for k, v in SIM.items())
    assert main(["run", "--source", source, "--record", str(record), "--publish",
                 "tcp://127.0.0.1:*", "--metrics-port", "0"]) == 0
    keyframes_from_record(record, d / "keyframes", "exam1", SIM)
    html, pdf = d / "report.html", d / "report.pdf"
    assert main(["report", str(record), "--keyframes", str(d / "keyframes"), "--out", str(html),
                 "--pdf", str(pdf)]) == 0
    first = json.loads(record.read_text().splitlines()[0])
    return {"record": record, "html": html, "pdf": pdf, "classes": list(first["classes"])}


@pytest.fixture(scope="module")
def browser():
    with headless_chromium(1040, 1500) as driver:
        yield driver


def test_the_page_renders_every_image_and_a_timeline_row_per_region(exam, browser):
    browser.get(exam["html"].as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")
    assert len(images) >= 3, images  # the best frames of the regions the run saw
    assert all(done and width > 0 for done, width, _ in images), images
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg.timeline g.row'))"
        ".map(g => [g.dataset.region, g.getBoundingClientRect().height])")
    assert [name for name, _ in rows] == exam["classes"]
    assert all(height > 20 for _, height in rows), rows  # drawn, not collapsed
    coverage = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.coverage tr[data-region]'))"
        ".map(r => r.dataset.region)")
    assert coverage == exam["classes"]
    assert "120 results, seq 0 to 119" in browser.find_element("tag name", "body").text
    shot = (SCREENSHOT if os.environ.get("SONOSTREAM_UPDATE_SCREENSHOT") == "1"
            else Path(os.environ.get("TMPDIR", "/tmp")) / "sonostream-report.png")
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_the_page_needs_nothing_from_outside(exam):
    page = exam["html"].read_text()
    assert re.search(r"https?://", page) is None
    assert re.search(r"""(src|href)=["'](?!data:|#)""", page) is None  # only data: URIs
    assert "<script" not in page


def test_the_pdf_of_the_page_is_printed(exam):
    data = exam["pdf"].read_bytes()
    assert data.startswith(b"%PDF") and pdf_pages(data) >= 1


def test_pdf_without_chromium_is_one_line_and_writes_nothing(exam, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on it
    out = tmp_path / "r.html"
    code = main(["report", str(exam["record"]), "--out", str(out), "--pdf", str(tmp_path / "r.pdf")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [
        "streamer report: error: --pdf needs Chromium: chromium is not on the PATH (Debian: "
        "apt-get install chromium; or name it with --chromium PATH)"]
    assert list(tmp_path.iterdir()) == []
