"""What a batch is: the identity of a run, computed from its content before anything is enqueued.

Two runs are the same batch only when everything that can change a score is the same: the
valid lines as enqueued (query, documents, per-line parameters, line numbers; hashed while
streaming the file), and what each model name the run uses resolves to (for a model list's
name: each deployment's provider and wire model, base URL and non-secret settings, and its
fallbacks; for a raw ``provider/model``: the base URL and settings from this environment).
Keys, rate limits and prices change no score and are left out; no secret is ever part of it.

The digest is stored in the batch hash (``run``), in every job payload and in every record:
a worker skips a job whose batch now holds another run, the record write refuses a record of
another run, and the export skips one, so a batch never exports scores of other content.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from jobs.dataset import MAX_LINE_BYTES, LongLine, read_lines
from jobs.model_list import config_document
from jobs.validation import ValidationReport
from providers.adapters import local
from providers.deployment import Credentials, split_model_name
from providers.registry import LOCAL_PROVIDER

__all__ = [
    "HASH_CHUNK_BYTES",
    "HASH_QUEUE_DEPTH",
    "IDENTITY_VERSION",
    "SECRET_WORDS",
    "SHORT_CHARS",
    "UNSCORED_PARAMS",
    "LinesDigest",
    "RunIdentity",
    "default_batch_name",
    "describe_models",
    "run_identity",
    "slug",
]

IDENTITY_VERSION = 1
"""Bumped whenever what the identity covers changes, so old batches never look the same."""
SHORT_CHARS = 10
HASH_CHUNK_BYTES = 4 << 20
HASH_QUEUE_DEPTH = 4
"""Lines are hashed 4 MB at a time, at most four such chunks waiting: 20 MB at most held."""
UNSCORED_PARAMS = frozenset(
    {"api_key", "rpm", "tpm", "max_parallel_requests", "timeout", "stream_timeout", "max_retries"}
)
"""``litellm_params`` that change how a model is reached or paced, never what it scores."""
SECRET_WORDS = ("key", "secret", "token", "password", "credentials", "authorization", "signature")


def _secret(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_WORDS)


@dataclass(frozen=True)
class RunIdentity:
    digest: str
    """Hex digest over everything below: the batch's ``run``."""
    lines: int
    lines_digest: str
    default_model: str
    models: Mapping[str, Any]
    """Each model name the run can use (fallbacks included) -> what it resolves to."""
    corpus: str | None = None
    """Digest of the ``--corpus`` file the lines' document ids were looked up in."""

    @property
    def short(self) -> str:
        return self.digest[:SHORT_CHARS]

    def summary(self) -> dict[str, Any]:
        """What the batch hash keeps (``identity``) to explain a later mismatch; no secrets."""
        return {
            "version": IDENTITY_VERSION,
            "lines": self.lines,
            "lines_digest": self.lines_digest,
            "default_model": self.default_model,
            "models": dict(self.models),
            "corpus": self.corpus,
        }

    def differences(self, stored: Mapping[str, Any] | None) -> list[str]:
        """How this run differs from a stored summary, in words."""
        if not stored or stored.get("version") != IDENTITY_VERSION:
            return ["the batch was made by another version of rerank-runner (its content is unknown)"]
        found = []
        if stored.get("lines_digest") != self.lines_digest:
            found.append(f"the lines differ ({stored.get('lines')} lines then, {self.lines} now)")
        if stored.get("default_model") != self.default_model:
            found.append(f"the model differs ({stored.get('default_model')} then, {self.default_model} now)")
        elif stored.get("models") != dict(self.models):
            found.append("what a model name resolves to differs (provider, wire model, base or settings)")
        if stored.get("corpus") != self.corpus:
            found.append("the --corpus differs")
        return found or ["the run identity differs"]


def _plain(value: Any) -> Any:
    """A config value as written (``os.environ/NAME`` stays a reference), JSON-safe."""
    return orjson.loads(orjson.dumps(value, default=str))


def _listed_entry(params: Mapping[str, Any], headers: Any) -> dict[str, Any]:
    kept = {k: _plain(v) for k, v in sorted(params.items()) if k not in UNSCORED_PARAMS and not _secret(k)}
    kept.pop("headers", None)
    if isinstance(headers, dict):
        shown = {str(k).lower(): _plain(v) for k, v in headers.items() if not _secret(str(k))}
        if shown:
            kept["headers"] = dict(sorted(shown.items()))
    if str(params.get("model", "")).startswith(f"{LOCAL_PROVIDER}/"):
        kept["scorer"] = local.VERSION
    return kept


def _raw_entry(model: str, credentials: Mapping[str, Credentials]) -> dict[str, Any]:
    provider, wire_model = split_model_name(model)
    found = credentials.get(provider, Credentials())
    params = {k: _plain(v) for k, v in sorted(found.params.items()) if not _secret(k)}
    entry = {"model": f"{provider}/{wire_model}", "api_base": found.api_base, **params}
    if provider == LOCAL_PROVIDER:  # a local model's scores change with its code, not its settings
        entry["scorer"] = local.VERSION
    return entry


def describe_models(
    names: Iterable[str], config: Path | None, credentials: Mapping[str, Credentials]
) -> dict[str, Any]:
    """Each name (and, transitively, its fallbacks) -> the sorted deployments it resolves to."""
    document: Any = config_document(config) if config else None
    document = document if isinstance(document, dict) else {}
    listed: dict[str, list[dict[str, Any]]] = {}
    for entry in document.get("model_list") or []:
        if isinstance(entry, dict) and isinstance(entry.get("litellm_params"), dict):
            params = entry["litellm_params"]
            listed.setdefault(str(entry.get("model_name")), []).append(
                _listed_entry(params, params.get("headers"))
            )
    fallbacks: dict[str, list[str]] = {}
    router = document.get("router_settings")
    for item in (router.get("fallbacks") or []) if isinstance(router, dict) else []:
        if isinstance(item, dict):
            for source, targets in item.items():
                fallbacks[str(source)] = [
                    str(t) for t in (targets if isinstance(targets, list) else [targets])
                ]
    described: dict[str, Any] = {}
    pending = sorted(set(names))
    while pending:
        name = pending.pop()
        if name in described:
            continue
        if name in listed:
            deployments = sorted(listed[name], key=lambda d: orjson.dumps(d, option=orjson.OPT_SORT_KEYS))
        else:
            deployments = [_raw_entry(name, credentials)]
        described[name] = {"deployments": deployments, "fallbacks": fallbacks.get(name, [])}
        pending.extend(fallbacks.get(name, []))
    return dict(sorted(described.items()))


class LinesDigest:
    """The valid lines' part of the identity, fed one line at a time: by validation as it goes
    (so enqueue reads the file once more, not twice), or by :func:`run_identity` itself.

    The hashing runs on a thread of its own, a few megabytes at a time: blake2b lets go of the
    GIL while it hashes, so it takes the other core while this one parses the next lines
    (a quarter of validation's time otherwise).  The digest is the same as hashing line by line."""

    def __init__(self) -> None:
        self.count = 0
        self.names: set[str] = set()
        self._hash = hashlib.blake2b(digest_size=16)
        self._pending = bytearray()
        self._hasher: ThreadPoolExecutor | None = None
        """One thread, so the chunks are hashed in order; it ends with the digest, or with this
        object when nobody asks for one (validation refused the file)."""
        self._handed: deque[Future[None]] = deque()
        self._digest: str | None = None

    def add(self, line_no: int, raw: bytes, obj: Mapping[str, Any]) -> None:
        self.count += 1
        self._pending += b"%d %d\n" % (line_no, len(raw))
        self._pending += raw
        if len(self._pending) >= HASH_CHUNK_BYTES:
            self._hand_over()
        model = obj.get("model")
        if isinstance(model, str):
            self.names.add(model)

    def _hand_over(self) -> None:
        if self._hasher is None:
            self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lines-digest")
        while len(self._handed) >= HASH_QUEUE_DEPTH:
            self._handed.popleft().result()
        self._handed.append(self._hasher.submit(self._hash.update, self._pending))
        self._pending = bytearray()

    def hexdigest(self) -> str:
        """The digest of every line added (no line may be added after)."""
        if self._digest is None:
            while self._handed:
                self._handed.popleft().result()
            if self._hasher is not None:
                self._hasher.shutdown()
            self._hash.update(self._pending)
            self._digest = self._hash.hexdigest()
        return self._digest


def _stream(path: Path, report: ValidationReport, max_line_bytes: int) -> LinesDigest:
    lines = LinesDigest()
    for line_no, raw in read_lines(path, max_line_bytes):
        if not report.rejected(line_no) and not isinstance(raw, LongLine):
            lines.add(line_no, raw, orjson.loads(raw))
    return lines


def run_identity(
    path: Path,
    report: ValidationReport,
    default_model: str,
    config: Path | None,
    credentials: Mapping[str, Credentials],
    corpus: str | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
    lines: LinesDigest | None = None,
) -> RunIdentity:
    """The run's identity from the file's valid lines (as enqueue will read them): ``lines`` as
    validation fed them, unless validation then rejected duplicates (the file is streamed again)."""
    if lines is None or report.duplicate_lines:
        lines = _stream(path, report, max_line_bytes)
    models = describe_models({default_model, *lines.names}, config, credentials)
    lines_digest = lines.hexdigest()
    covered: dict[str, Any] = {
        "version": IDENTITY_VERSION,
        "lines": lines_digest,
        "default_model": default_model,
    }
    if corpus is not None:  # absent rather than null: runs without a corpus keep their identity
        covered["corpus"] = corpus
    whole = orjson.dumps({**covered, "models": models}, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(whole, digest_size=16).hexdigest()
    return RunIdentity(digest, lines.count, lines_digest, default_model, models, corpus)


def slug(text: str, limit: int) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:limit].strip("-.")


def default_batch_name(path: Path, identity: RunIdentity) -> str:
    """``<file stem>-<model>-<short identity>``: the same content and model is the same batch
    (a resume), anything else a new one."""
    stem = slug(path.stem, 50) or "batch"
    model = slug(identity.default_model, 36) or "model"
    return f"{stem}-{model}-{identity.short}"
