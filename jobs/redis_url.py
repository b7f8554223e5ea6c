"""Redis URLs: parsed into arq's ``RedisSettings`` without ever echoing a secret.

    redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?db=N]
    rediss://...?ssl_ca_certs=CA.pem&ssl_certfile=CERT.pem&ssl_keyfile=KEY.pem&ssl_cert_reqs=required
    unix:///path/to/redis.sock[?db=N]

User name and password are percent-decoded (a ``/`` in a password is written ``%2F``, ``@``
``%40``, ``%`` ``%25``), as redis-py does and arq's own DSN parser does not.  Errors name what
is wrong and show the URL only with its credentials replaced.
"""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from arq.connections import RedisSettings

__all__ = ["CERT_REQS", "OPTIONS", "SCHEMES", "TLS_OPTIONS", "RedisUrlError", "redacted", "redis_settings"]

SCHEMES = ("redis", "rediss", "unix")
CERT_REQS = ("none", "optional", "required")
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
OPTIONS = ("db", *TLS_OPTIONS)
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class RedisUrlError(ValueError):
    """A Redis URL that cannot be used; the message never contains its credentials."""


def _split_credentials(url: str) -> tuple[str, str | None, str]:
    """(``scheme://``, the raw user-info or None, the rest), cutting at the *last* ``@`` so an
    unencoded ``@`` or ``/`` in a password can never leak into the part shown."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", None, url
    if "@" not in rest:
        return f"{scheme}://", None, rest
    at = rest.rindex("@")
    return f"{scheme}://", rest[:at], rest[at + 1 :]


def redacted(url: str) -> str:
    """The URL with its password (and anything that could be part of it) replaced by ``***``."""
    prefix, userinfo, rest = _split_credentials(url)
    if userinfo is None:
        return url
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***" if colon and "/" not in user else "***"
    return f"{prefix}{shown}@{rest}"


class _Problem(ValueError):
    """What is wrong with a URL, without the URL (the caller adds it, redacted)."""


def _flag(name: str, value: str) -> bool:
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise _Problem(f"{name} must be true or false")


def _check_credentials(url: str, parts: SplitResult) -> None:
    _, userinfo, _ = _split_credentials(url)
    parsed = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else None
    if userinfo != parsed or (parsed and any(c in parsed for c in "?#[]")):
        raise _Problem(
            "the user name or password contains a reserved character (/ ? # @ [ ]); "
            "percent-encode it: / as %2F, @ as %40, ? as %3F, # as %23, % as %25"
        )


def _options(parts: SplitResult) -> dict[str, str]:
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise _Problem("the query string is malformed") from None
    if unknown := sorted(set(query) - set(OPTIONS)):
        raise _Problem(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    options = {name: values[-1] for name, values in query.items()}
    if parts.scheme != "rediss" and (given := sorted(set(options) & set(TLS_OPTIONS))):
        raise _Problem(f"{', '.join(given)} need(s) a rediss:// URL")
    return options


def _database(parts: SplitResult, options: dict[str, str]) -> int:
    text = options.get("db") or (parts.path.lstrip("/") if parts.scheme != "unix" else "") or "0"
    if not text.isdigit():
        raise _Problem("the database (path or ?db=) must be a non-negative integer")
    return int(text)


def _set_address(settings: RedisSettings, parts: SplitResult) -> None:
    if parts.scheme == "unix":
        if not parts.path:
            raise _Problem("unix:// needs a socket path, e.g. unix:///run/redis.sock")
        settings.unix_socket_path = unquote(parts.path)
        return
    try:
        port = parts.port
    except ValueError:
        raise _Problem("the port must be a number from 1 to 65535") from None
    settings.host = parts.hostname or "localhost"
    settings.port = port or 6379


def _set_tls(settings: RedisSettings, options: dict[str, str]) -> None:
    cert_reqs = options.get("ssl_cert_reqs", "required").lower()
    if cert_reqs not in CERT_REQS:
        raise _Problem(f"ssl_cert_reqs must be one of {', '.join(CERT_REQS)}")
    settings.ssl_cert_reqs = cert_reqs
    settings.ssl_ca_certs = options.get("ssl_ca_certs") or None
    settings.ssl_certfile = options.get("ssl_certfile") or None
    settings.ssl_keyfile = options.get("ssl_keyfile") or None
    if "ssl_check_hostname" in options:
        settings.ssl_check_hostname = _flag("ssl_check_hostname", options["ssl_check_hostname"])
    if bool(settings.ssl_certfile) != bool(settings.ssl_keyfile):
        raise _Problem("ssl_certfile and ssl_keyfile go together (a client certificate and its key)")


def _parse(url: str) -> RedisSettings:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise _Problem("unsupported scheme; use redis://, rediss:// (TLS) or unix://")
    _check_credentials(url, parts)
    options = _options(parts)
    settings = RedisSettings(
        database=_database(parts, options),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        ssl=parts.scheme == "rediss",
    )
    _set_address(settings, parts)
    if settings.ssl:
        _set_tls(settings, options)
    return settings


def redis_settings(url: str) -> RedisSettings:
    """``RedisSettings`` for a ``redis://``, ``rediss://`` or ``unix://`` URL; raises RedisUrlError."""
    try:
        return _parse(url)
    except _Problem as problem:
        raise RedisUrlError(f"Redis URL {redacted(url)}: {problem}") from None
