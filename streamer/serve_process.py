"""`streamer serve` in a child process on loopback ports (benchmarks, tests): the server must
live in its own process, since mlserver and tritonclient cannot be imported into one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on loopback (bound together, so never the same one twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class ServeProcess:
    """Start, wait until the model is ready, kill, restart on the same ports."""

    def __init__(self, *args: str, log: str | Path | None = None, name: str = "sonostream"):
        self.grpc_port, self.http_port, self.metrics_port = free_ports(3)
        self.args, self.name = list(args), name
        self.log_path = Path(log) if log else None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 90.0) -> ServeProcess:
        cmd = [sys.executable, "-m", "streamer", "serve", "--name", self.name,
               "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port),
               "--metrics-port", str(self.metrics_port), *self.args]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # the child has its own copy
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.http_port}/v2/models/{self.name}/ready"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamer serve exited with {self.proc.returncode} "
                                   f"(log: {self.log_path})")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"streamer serve not ready after {timeout:.0f} s (log: {self.log_path})")

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()

    def batch_sizes(self) -> dict[str, float]:
        """Cumulative buckets of sonostream_server_batch_size, plus count and sum."""
        out = {}
        for line in self.metrics().splitlines():
            if line.startswith("sonostream_server_batch_size_"):
                key = line.split("{")[0].removeprefix("sonostream_server_batch_size_")
                if key == "bucket":
                    key = "le=" + line.split('le="')[1].split('"')[0]
                out[key] = float(line.rsplit(" ", 1)[1])
        return out

    def kill(self) -> None:
        """SIGKILL: the server dies as a crashed machine would, without closing anything."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl-C: SIGINT, then the exit status (past ``timeout``: SIGKILL and TimeoutError)."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(f"streamer serve still running {timeout:.0f} s after SIGINT "
                               f"(log: {self.log_path})") from None

    def log(self) -> str:
        """What the server printed so far (with ``log=``)."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
