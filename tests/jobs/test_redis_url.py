"""Redis URL parsing: percent-decoded credentials, TLS options, errors without secrets."""

from __future__ import annotations

import pytest

from jobs.connection import unavailable
from jobs.redis_url import RedisUrlError, redacted, redis_settings
from jobs.settings import SettingsError, load_settings

SECRET = "Ωs3/cr@t%"


def test_credentials_are_percent_decoded() -> None:
    settings = redis_settings("redis://ingest:%CE%A9s3%2Fcr%40t%25@cache.internal:6380/4")
    assert (settings.host, settings.port, settings.database) == ("cache.internal", 6380, 4)
    assert (settings.username, settings.password) == ("ingest", SECRET)
    assert settings.ssl is False


def test_tls_options_come_from_the_query() -> None:
    settings = redis_settings(
        "rediss://:pw@h?ssl_ca_certs=/etc/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/c.key"
        "&ssl_cert_reqs=optional&ssl_check_hostname=true&db=2"
    )
    assert settings.ssl is True
    assert (settings.ssl_ca_certs, settings.ssl_certfile, settings.ssl_keyfile) == (
        "/etc/ca.pem",
        "/c.pem",
        "/c.key",
    )
    assert (settings.ssl_cert_reqs, settings.ssl_check_hostname, settings.database) == ("optional", True, 2)
    assert redis_settings("rediss://h").ssl_cert_reqs == "required"


def test_unix_sockets() -> None:
    settings = redis_settings("unix:///run/redis/redis.sock?db=3")
    assert (settings.unix_socket_path, settings.database) == ("/run/redis/redis.sock", 3)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"redis://:{SECRET}@h:6379/0", "percent-encode it"),
        (f"redis://user:{SECRET}@h", "percent-encode it"),
        ("redis://:Ωs3cr@h:port/0", "the port must be a number"),
        ("redis://:Ωs3cr@h/zero", "database"),
        ("redis://:Ωs3cr@h?ssl_ca_certs=/ca.pem", "need(s) a rediss:// URL"),
        ("rediss://:Ωs3cr@h?ssl_cert_reqs=maybe", "ssl_cert_reqs must be one of none, optional, required"),
        ("rediss://:Ωs3cr@h?ssl_certfile=/c.pem", "go together"),
        ("rediss://:Ωs3cr@h?sslmode=require", "unknown option(s) sslmode"),
        ("http://:Ωs3cr@h", "unsupported scheme"),
    ],
)
def test_errors_say_what_is_wrong_without_any_of_the_password(url: str, problem: str) -> None:
    with pytest.raises(RedisUrlError) as error:
        redis_settings(url)
    message = str(error.value)
    assert problem in message
    assert "Ω" not in message and "s3" not in message, message
    assert f"Redis URL {redacted(url)}:" in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("redis://ingest:pw@h", "redis://ingest:***@h"),
        (f"redis://:{SECRET}@h:1/0", "redis://:***@h:1/0"),  # unencoded: cut at the last @
        ("redis://h:1/0", "redis://h:1/0"),
        ("redis://onlyuser@h", "redis://***@h"),
    ],
)
def test_redacted(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_a_connection_error_never_repeats_the_password() -> None:
    url = "redis://:%CE%A9s3%2Fcr%40t%25@h:1/0"
    error = unavailable(url, ConnectionError(f"server said: bad password {SECRET}.\nsecond line"))
    assert str(error) == "cannot reach Redis at redis://:***@h:1/0: server said: bad password ***"


@pytest.mark.parametrize(
    ("environment", "problem"),
    [
        ({"RR_JOB_TIMEOUT": "20"}, "RR_RETRY_MAX_SECONDS + RR_HTTP_TIMEOUT (90 + 60) must fit inside"),
        ({"RR_MAX_JOBS": "many"}, "RR_MAX_JOBS: Input should be a valid integer"),
    ],
)
def test_settings_errors_never_echo_the_redis_url(
    environment: dict[str, str], problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:Zs3cretpw@cache.internal:6379/0")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith("invalid settings: ") and problem in message
    assert "redis://" not in message and "Zs" not in message and "\n" not in message
