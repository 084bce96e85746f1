"""OpenIGTLink read back with pyigtl's own client: the IMAGE (downscaled, spacing in mm when
known), one POINT per present region at its peak with its score, the STRING summary; loopback
unless allowed; a client that leaves and one that comes; and `streamer run --igtl-port` end to end
(with the viewer beside it)."""

from __future__ import annotations

import dataclasses
import threading
import time
import urllib.request

import numpy as np
import pytest

from streamer.sinks.igtl_sink import IgtlOptions, IgtlSink
from tests.streamer.test_client_cli import in_thread
from tests.streamer.test_viewer import feed, free_port
from tests.streamer.viewer_fixtures import PEAK, viewer_result

pyigtl = pytest.importorskip("pyigtl")


def client_messages(port: int, devices=("SonostreamImage", "SonostreamPoints",
                                        "SonostreamSummary"), timeout: float = 15.0) -> dict:
    client = pyigtl.OpenIGTLinkClient("127.0.0.1", port)
    try:
        return {d: client.wait_for_message(d, timeout=timeout) for d in devices}
    finally:
        client.stop()


def test_image_points_and_summary_through_pyigtl_client():
    stop = threading.Event()
    with IgtlSink(port=0, width=200) as sink:
        original = sink._publish
        sink._publish = lambda r: original(dataclasses.replace(r, mm_per_px=(0.2, 0.25)))
        feed(sink, stop)
        try:
            got = client_messages(sink.port)
        finally:
            stop.set()
    image, points, text = got.values()
    assert image.image.shape == (1, 150, 200) and image.image.dtype == np.uint8  # 400×300 halved
    assert abs(int(image.image[0, 75, 100]) - 90) <= 1  # the grey frame
    assert np.allclose(np.diag(image.ijk_to_world_matrix)[:2], [0.4, 0.5])  # mm per IMAGE pixel
    assert list(points.names) == ["head"] and list(points.groups) == ["0.930"]  # spine is absent
    assert np.allclose(np.asarray(points.positions).reshape(-1, 3)[0], [PEAK[0] * 0.2, PEAK[1] * 0.25, 0])
    assert text.string.startswith("seq ") and text.string.endswith(": head 0.93 at (150, 100)")


def test_loopback_unless_allowed_and_a_busy_port():
    with pytest.raises(ValueError, match="not a loopback address"):
        IgtlOptions(host="0.0.0.0")
    assert IgtlOptions(host="0.0.0.0", allow_remote=True).host == "0.0.0.0"
    with IgtlSink(port=0) as sink, pytest.raises(ValueError, match="cannot serve OpenIGTLink"):
        IgtlSink(port=sink.port).open()


def test_nothing_queued_without_a_client_and_a_second_client_is_served():
    stop = threading.Event()
    with IgtlSink(port=0) as sink:
        for seq in range(20):
            sink.publish(viewer_result(seq))
        time.sleep(0.3)
        assert sink.sent == 0  # no client: nothing built, nothing waiting to go stale
        feed(sink, stop, first_seq=100)
        try:
            first = client_messages(sink.port, ("SonostreamSummary",))["SonostreamSummary"]
            second = client_messages(sink.port, ("SonostreamSummary",))["SonostreamSummary"]
        finally:
            stop.set()
    assert first is not None and second is not None
    assert int(second.string.split()[1].rstrip(":")) >= 100


@pytest.mark.slow
def test_streamer_run_with_igtl_and_viewer():
    igtl, view = free_port(), free_port()
    run, box = in_thread(["run", "--source", "sim", "--metrics-port", "0", "--publish", "",
                          "--igtl-port", str(igtl), "--view-port", str(view), "--duration", "20"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the model loads first
        try:
            page = urllib.request.urlopen(f"http://127.0.0.1:{view}/", timeout=2).read()
            break
        except OSError:
            assert run.is_alive(), box
            time.sleep(0.5)
    assert b"sonostream" in page
    got = client_messages(igtl, ("SonostreamImage", "SonostreamSummary"), timeout=30)
    assert got["SonostreamImage"].image.shape == (1, 180, 320)  # 1920×1080 sim screen
    assert got["SonostreamSummary"].string.startswith("seq ")
    run.join(40)
    assert box.get("rc") == 0
