"""Redis URLs as production uses them, against real redis-server processes: a ``requirepass``
password with reserved characters, an ACL user, a TLS port with certificates made for the test;
and what every command says (one line, exit code 4, no secret) when Redis is unreachable or
refuses the credentials."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from tests.e2e import run_batch
from tests.redis_servers import free_port, make_certificates, redis_with, tls_redis_server
from tests.support import run_script, synthetic_lines, write_dataset

pytestmark = pytest.mark.integration

PASSWORD = "Ωpa/ss@w%rd:1"
"""Reserved URL characters (/ @ % :) and a first character that appears nowhere else."""
ENCODED = quote(PASSWORD, safe="")
EXIT_REDIS = 4


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
        assert secret[:2] not in text and secret[-3:] not in text, text


def run_everything(url: str, tmp_path: Path) -> None:
    """enqueue.py, a burst worker.py and batch.py results, all through ``url``."""
    lines = synthetic_lines(6)
    results, errors = run_batch(url, lines, tmp_path, {})
    assert errors == []
    assert [r["id"] for r in results] == [line["id"] for line in lines]


def commands(url: str, dataset: Path) -> dict[str, tuple[str, ...]]:
    return {
        "enqueue": ("enqueue.py", str(dataset), "--redis-url", url, "--no-progress"),
        "batch": ("batch.py", "--redis-url", url, "list"),
        "worker": ("worker.py", "--redis-url", url, "--burst"),
    }


def test_a_requirepass_password_with_reserved_characters_works_percent_encoded(tmp_path: Path) -> None:
    with redis_with(tmp_path / "redis", "--requirepass", PASSWORD) as port:
        run_everything(f"redis://:{ENCODED}@127.0.0.1:{port}/0", tmp_path)
        unencoded = run_script(
            "batch.py", "--redis-url", f"redis://:{PASSWORD}@127.0.0.1:{port}/0", "list", env={}
        )
    assert unencoded.returncode == 2
    assert "percent-encode it" in unencoded.stderr
    assert_no_secret(unencoded.stderr, PASSWORD)


def test_an_acl_user_works_and_a_wrong_password_is_refused_in_one_line(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "d.jsonl", synthetic_lines(2))
    acl = ("--user", "default", "off", "--user", "ingest", "on", f">{PASSWORD}", "~*", "&*", "+@all")
    with redis_with(tmp_path / "redis", *acl) as port:
        run_everything(f"redis://ingest:{ENCODED}@127.0.0.1:{port}/0", tmp_path)
        wrong = f"redis://ingest:{quote('Ωwrong/guess', safe='')}@127.0.0.1:{port}/0"
        for name, args in commands(wrong, dataset).items():
            done = run_script(*args, env={}, timeout=60)
            assert done.returncode == EXIT_REDIS, (name, done.stderr)
            message = done.stderr.strip().splitlines()
            assert message[-1].startswith(f"error: Redis at redis://ingest:***@127.0.0.1:{port}/0 refused"), (
                name
            )
            assert "Traceback" not in done.stderr, name
            assert_no_secret(done.stdout + done.stderr, PASSWORD, "Ωwrong/guess")


def test_an_unreachable_redis_is_one_line_and_exit_code_4(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "d.jsonl", synthetic_lines(2))
    port = free_port()  # nothing listens there
    url = f"redis://:{ENCODED}@127.0.0.1:{port}/0"
    for name, args in commands(url, dataset).items():
        done = run_script(*args, env={}, timeout=60)
        assert done.returncode == EXIT_REDIS, (name, done.stderr)
        assert "Traceback" not in done.stderr, name
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith(f"error: cannot reach Redis at redis://:***@127.0.0.1:{port}/0: "), name
        assert_no_secret(done.stdout + done.stderr, PASSWORD)
        if name == "enqueue":
            assert done.stderr.rstrip().endswith("run the same command again to resume")
            assert "checked 2 lines" in done.stdout  # validation ran first, then Redis was needed


def test_rediss_with_a_ca_file_and_a_client_certificate(tmp_path: Path) -> None:
    binary = tls_redis_server()
    certs = make_certificates(tmp_path / "certs")
    dataset = write_dataset(tmp_path / "d.jsonl", synthetic_lines(2))
    tls = (
        "--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
        "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "yes", "--requirepass", PASSWORD,
    )  # fmt: skip
    client = {"ssl_certfile": str(certs.client_cert), "ssl_keyfile": str(certs.client_key)}
    with redis_with(tmp_path / "redis", *tls, binary=binary, tls_port=True) as port:
        base = f"rediss://:{ENCODED}@127.0.0.1:{port}/0"
        run_everything(f"{base}?{urlencode({'ssl_ca_certs': str(certs.ca), **client})}", tmp_path)

        untrusted = f"{base}?{urlencode(client)}"  # the system CAs do not know the test CA
        for name, args in commands(untrusted, dataset).items():
            done = run_script(*args, env={}, timeout=60)
            assert done.returncode == EXIT_REDIS, (name, done.stderr)
            assert "certificate verify failed" in done.stderr.lower(), done.stderr
            assert "Traceback" not in done.stderr
            assert_no_secret(done.stderr, PASSWORD)

        unverified = run_script(
            "batch.py", "--redis-url", f"{untrusted}&ssl_cert_reqs=none", "list", env={}, timeout=60
        )
        assert unverified.returncode == 0, unverified.stderr
        assert "e2e" in unverified.stdout.split()  # the batch run_everything left there
