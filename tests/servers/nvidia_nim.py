"""A local NVIDIA NIM reranker: the hosted retrieval route and the NIM-native ``/v1/ranking``.

``POST /v1/retrieval/<model>/reranking`` (NVIDIA's hosted API: the body model must be the
URL's with a version's ``_`` -> ``.``, ``llama-3_2`` -> ``llama-3.2``; other ``_`` stay) and
``POST /v1/ranking`` (a NIM container).  Bodies are ``{model, query: {text}, passages: [{text}],
truncate?}`` and nothing else (``top_k`` is rejected; ``truncate`` is ``NONE`` or ``END``);
``/v1/ranking`` also takes image passages ``{image: data-URL}`` and ``{text, image}`` (scored
by their text, none scoring 0).  Answers ``{rankings: [{index, logit}], usage}`` sorted by
logit, with NVIDIA Cloud Functions' ``nvcf-reqid`` header and RFC 7807 problem details on
errors.  Logits are ``logit(score)`` for the word-overlap score, so they are unbounded and can
be negative like a real cross-encoder's.
"""

from __future__ import annotations

import re
from typing import Any

from tests.servers.rules import each, first_problem, known_fields, listed, one_of, text, unless
from tests.wire_server import Recorded, Reply, WireServer, ranked

RETRIEVAL = re.compile(r"^/v1/retrieval/(?P<model>.+)/reranking$")
DATA_URL = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp);base64,[A-Za-z0-9+/=]+$")
VERSION_UNDERSCORE = re.compile(r"(?<=\d)_(?=\d)")
FIELDS = {"model", "query", "passages", "truncate"}
MAX_PASSAGES = 512
CONTEXT_WORDS = 512
TITLES = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 410: "Gone", 422: "Unprocessable Entity"}


def logit(score: float) -> float:
    """A deterministic logit for a word-overlap score in [0, 1]: -4 at 0, +4 at 1."""
    return round(8.0 * score - 4.0, 6)


def _has_text(item: Any) -> bool:
    return _text_of(item) is not None


def _image_passage(item: Any) -> bool:
    if not isinstance(item, dict) or "image" not in item or not set(item) <= {"text", "image"}:
        return False
    image, text = item["image"], item.get("text", "")
    return isinstance(image, str) and DATA_URL.match(image) is not None and isinstance(text, str)


def _text_of(item: Any) -> str | None:
    if isinstance(item, dict) and set(item) == {"text"} and isinstance(item["text"], str) and item["text"]:
        return str(item["text"])
    return None


RULES = (
    known_fields(FIELDS, "Extra inputs are not permitted: {name}"),
    text("model", "model: field required"),
    unless(
        lambda body: _text_of(body.get("query")) is None, "query: must be an object with a non-empty text"
    ),
    listed("passages", f"passages: must hold 1 to {MAX_PASSAGES} items", 1, MAX_PASSAGES),
    each("passages", "passages: each must be an object with a non-empty text", _has_text),
    one_of("truncate", ("NONE", "END"), "truncate: must be one of NONE, END", default="NONE"),
)


IMAGE_RULES = (
    *RULES[:4],
    each("passages", "passages: each must be a {text}, {image} or {text, image} object",
         lambda item: _has_text(item) or _image_passage(item)),
    *RULES[5:],
)  # fmt: skip


def check(body: Any, *, images: bool = False) -> str | None:
    """The 422 detail for a body the NIM schema rejects (``images``: on ``/v1/ranking``), or None."""
    return first_problem(body, "body must be a JSON object", IMAGE_RULES if images else RULES)


class NimServer(WireServer):
    request_id_header = "nvcf-reqid"

    def __init__(self, api_key: str | None = "test-nim-key", gone: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.api_key = api_key
        self.gone = gone
        """URL models past their end of life (answer 410)."""

    def error_body(self, status: int, message: str) -> Any:
        return {
            "type": "about:blank",
            "status": status,
            "title": TITLES.get(status, "Error"),
            "detail": message,
        }

    def query_of(self, body: Any) -> str | None:
        query = body.get("query") if isinstance(body, dict) else None
        return _text_of(query)

    def _error(self, status: int, message: str) -> Reply:
        return status, {}, self.error_body(status, message)

    def answer(self, record: Recorded) -> Reply:
        path = record.path.split("?")[0]
        route = RETRIEVAL.match(path)
        if record.method != "POST" or (route is None and path != "/v1/ranking"):
            return self._error(404, f"no route for {record.method} {record.path}")
        if self.api_key is not None and record.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Authentication failed")
        if route is not None and route["model"] in self.gone:
            return self._error(
                410, f"Model {route['model']} has reached its end of life and is no longer available"
            )
        body = record.body
        if problem := check(body, images=route is None):
            return self._error(422, problem)
        if route is not None and body["model"] != VERSION_UNDERSCORE.sub(".", route["model"]):
            return self._error(400, f"model {body['model']!r} does not match the endpoint's model")
        query, texts = body["query"]["text"], [p.get("text", "") for p in body["passages"]]
        too_long = [i for i, t in enumerate(texts) if len(query.split()) + len(t.split()) > CONTEXT_WORDS]
        if too_long and body.get("truncate", "NONE") == "NONE":
            return self._error(
                400, f"Input length exceeds the maximum for passage {too_long[0]}; set truncate"
            )
        tokens = sum(len(query.split()) + len(t.split()) for t in texts)
        rankings = [{"index": i, "logit": logit(s)} for i, s in ranked(query, texts)]
        return 200, {}, {"rankings": rankings, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
