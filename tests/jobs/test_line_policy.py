"""One size and shape policy: what validation accepts, enqueue writes unchanged; what it
refuses is reported with its line number and field, and never crashes enqueue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.jobs import serialize_job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs import keys
from jobs.dataset import (
    MAX_DEPTH,
    RAW_SHOWN,
    LineError,
    LineLimits,
    LongLine,
    check_line,
    parse_line,
    read_lines,
)
from jobs.payload import line_payload
from jobs.preflight import valid_lines
from jobs.queue import enqueue_lines
from jobs.serializer import deserialize, serialize
from jobs.validation import ModelCheck, validate_file

SMALL = LineLimits(max_line_bytes=4096, max_document_bytes=256)


def nested(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def line(**fields: Any) -> dict[str, Any]:
    return {"id": "q1", "query": "q", "documents": ["a", "b"], **fields}


def problems(
    obj: dict[str, Any] | bytes, limits: LineLimits = SMALL, line_no: int = 9
) -> list[tuple[str, str]]:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    checked = check_line(line_no, raw, None, limits)
    assert isinstance(checked, LineError) and checked.line_no == line_no
    return [(e.field, e.reason) for e in checked.errors]


def written(obj: dict[str, Any], limits: LineLimits = SMALL) -> Any:
    """The line as a worker reads it back from the job enqueue writes."""
    parsed = parse_line(3, json.dumps(obj).encode(), None, limits)
    assert not isinstance(parsed, LineError), parsed
    job = serialize_job(
        keys.JOB_FUNCTION, (line_payload("b", parsed, "local/bm25", "r"),), {}, None, 0, serializer=serialize
    )
    return deserialize(job)["a"][0]


# --- nesting ------------------------------------------------------------------------------------------


def test_metadata_at_the_depth_limit_is_written_unchanged() -> None:
    metadata = nested(MAX_DEPTH - 1)  # the line's object is the first level
    assert written(line(metadata=metadata))["metadata"] == metadata


@pytest.mark.parametrize("levels", [MAX_DEPTH, 252, 300, 1020])
def test_deeper_metadata_is_rejected_naming_the_field(levels: int) -> None:
    metadata = b'{"a":' * levels + b"12345678901234567890123" + b"}" * levels  # deeper than json.dumps goes
    raw = b'{"id": "q", "query": "q", "documents": ["d"], "metadata": ' + metadata + b"}"
    reason = f"nests deeper than {MAX_DEPTH} levels (counting the line)"
    assert problems(raw, LineLimits()) == [("metadata", reason)]


@pytest.mark.parametrize("levels", [MAX_DEPTH, 300])
def test_a_deep_object_document_is_rejected_naming_it(levels: int) -> None:
    documents = ["a", {"text": "t" * 300, "x": nested(levels)}]  # over the document limit too
    assert problems(line(documents=documents)) == [("documents[1]", f"nests deeper than {MAX_DEPTH} levels")]


# --- integer range ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [2**64 - 1, -(2**63), 10**18, 0])
def test_integers_that_fit_64_bits_are_copied_exactly(value: int) -> None:
    metadata = {"n": value, "deep": [{"m": value}]}
    assert written(line(metadata=metadata, id=value if value >= 0 else 5))["metadata"] == metadata


@pytest.mark.parametrize(
    ("fields", "field", "where"),
    [
        ({"metadata": {"n": 2**64}}, "metadata", "metadata.n"),
        ({"metadata": [1, -(2**63) - 1]}, "metadata", "metadata[1]"),
        ({"metadata": {"a": {"b": [10**30]}}}, "metadata", "metadata.a.b[0]"),
        ({"documents": ["a", {"text": "t", "price": 2**70}]}, "documents", "documents[1].price"),
    ],
)
def test_integers_past_64_bits_are_rejected_not_turned_into_floats(
    fields: dict[str, Any], field: str, where: str
) -> None:
    assert problems(line(**fields)) == [(field, f"holds an integer outside the 64-bit range at {where}")]


def test_an_id_past_64_bits_is_named_as_such() -> None:
    assert ("id", "holds an integer outside the 64-bit range at id") in problems(line(id=2**64))


def test_long_digit_strings_are_not_integers() -> None:
    assert written(line(metadata={"isbn": "12345678901234567890123"}))["metadata"]["isbn"].isdigit()


# --- byte limits --------------------------------------------------------------------------------------


def test_a_document_over_the_limit_is_rejected_in_utf8_bytes() -> None:
    fits = "é" * 128  # 256 bytes
    assert written(line(documents=[fits]))["documents"] == [fits]
    assert problems(line(documents=["ok", "é" * 129])) == [
        ("documents[1]", "is 258 bytes; at most 256 per document (--max-document-bytes)")
    ]
    big_object = {"text": "x" * 300}
    reason = f"is {len(json.dumps(big_object, separators=(',', ':')))} bytes; at most 256 per document"
    assert problems(line(documents=[big_object])) == [("documents[0]", reason + " (--max-document-bytes)")]


def test_a_long_line_is_read_past_without_being_held(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    short = json.dumps(line()).encode()
    long = json.dumps(line(metadata="x" * 5_000_000)).encode()
    path.write_bytes(short + b"\n" + long + b"\r\n\n" + short + b"\n" + long)
    read = list(read_lines(path, 4096))
    assert [n for n, _ in read] == [1, 2, 4, 5]
    assert read[0][1] == short and read[2][1] == short
    for _, raw in (read[1], read[3]):
        assert isinstance(raw, LongLine) and len(raw.head) == RAW_SHOWN
    assert (read[1][1].size, read[3][1].size) == (len(long) + 2, len(long))  # type: ignore[union-attr]
    errors: list[LineError] = []
    report = validate_file(path, ModelCheck(), errors.append, SMALL)
    assert (report.lines, report.invalid_lines) == (4, 3)  # two long lines, one duplicate id
    assert [e.describe() for e in errors[:2]] == [
        [f"line 2: (line): is {len(long) + 2} bytes; at most 4096 per line (--max-line-bytes)"],
        [f"line 5: (line): is {len(long)} bytes; at most 4096 per line (--max-line-bytes)"],
    ]
    assert [n.line_no for n in valid_lines(path, report, 4096)] == [1]


# --- the reported failure: deep metadata used to crash enqueue half-way --------------------------------


async def test_a_file_with_deep_lines_enqueues_every_valid_line(tmp_path: Path, redis: ArqRedis) -> None:
    path = tmp_path / "mixed.jsonl"
    rows = [line(id=i, metadata=nested(252 + (i % 700)) if i % 100 == 1 else {"i": i}) for i in range(1201)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    errors: list[LineError] = []
    report = validate_file(path, ModelCheck(), errors.append)
    deep = [i + 1 for i in range(1201) if i % 100 == 1]
    assert [e.line_no for e in errors] == deep
    assert all(e.errors[0].field == "metadata" for e in errors)
    counts = await enqueue_lines(
        redis,
        "deep",
        valid_lines(path, report),
        default_model="local/bm25",
        run="r",
        job_expiry_ms=60_000,
        result_ttl_ms=0,
    )
    assert counts.added == 1201 - len(deep)


# --- property: valid lines round-trip, invalid ones are reported ---------------------------------------

WIDE = st.sampled_from([2**64, 2**64 - 1, -(2**63), -(2**63) - 1, 10**25, -(10**19)])
LEAF: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    WIDE,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
VALUE = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
DEEP = st.builds(nested, st.integers(0, 2 * MAX_DEPTH), VALUE)
DOCUMENT = st.text(max_size=300) | st.fixed_dictionaries(
    {"text": st.text(max_size=300)}, optional={"x": VALUE}
)
LINES = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=8).filter(str.strip) | st.integers(0, 2**64 + 5),
        "query": st.just("q"),
        "documents": st.lists(DOCUMENT, min_size=1, max_size=4),
    },
    optional={"metadata": VALUE | DEEP, "top_n": st.integers(1, 5)},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=LINES)
def test_valid_lines_round_trip_through_enqueue_and_invalid_ones_name_the_line(obj: dict[str, Any]) -> None:
    raw = json.dumps(obj).encode()
    checked = parse_line(42, raw, None, SMALL)
    if isinstance(checked, LineError):
        assert checked.line_no == 42 and checked.errors
        return
    job = serialize_job(
        keys.JOB_FUNCTION, (line_payload("b", checked, "m/x", "r"),), {}, None, 0, serializer=serialize
    )
    payload = deserialize(job)["a"][0]
    exact = json.loads(raw)  # Python's own parser keeps every integer exact
    assert {k: payload[k] for k in exact} == exact
