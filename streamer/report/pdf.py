"""The report page printed to PDF by headless Chromium (Debian's ``chromium``), the same page a
browser shows; a PDF that does not start with ``%PDF`` or has no page is refused."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from engines.atomic import write_atomic
from streamer.errors import UserError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 120.0
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def find_chromium(given: str | None = None) -> str:
    """The browser to print with: ``given``, else the first of BROWSERS on the PATH."""
    found = shutil.which(given) if given else next(filter(None, map(shutil.which, BROWSERS)), None)
    if found is None:
        raise UserError(f"--pdf needs Chromium: {given or 'chromium'} is not on the PATH "
                        f"(Debian: apt-get install chromium; or name it with --chromium PATH)")
    return found


def pdf_pages(data: bytes) -> int:
    """Pages in a PDF, 0 when it is not one."""
    return len(_PAGE.findall(data)) if data.startswith(b"%PDF") else 0


def print_pdf(browser: str, html: Path, out: Path, timeout: float = TIMEOUT_S) -> int:
    """Print ``html`` to ``out`` (written whole or not at all); the number of pages."""
    with tempfile.TemporaryDirectory(prefix="sonostream-report-") as profile:
        tmp = Path(profile) / "report.pdf"
        cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-extensions",
               "--no-first-run", "--no-pdf-header-footer", f"--user-data-dir={profile}/profile",
               f"--print-to-pdf={tmp}", html.resolve().as_uri()]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise UserError(f"{browser} did not print {html} within {timeout:g} s") from None
        data = tmp.read_bytes() if tmp.is_file() else b""
        pages = pdf_pages(data)
        if not pages:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            raise UserError(f"{browser} printed no PDF of {html} (exit {done.returncode}"
                            f"{': ' + said[-1][:200] if said else ''})")
        write_atomic(out, data)
        return pages
