"""Every Redis key rerank-runner reads or writes, in one place.

arq's own keys (job payloads, in-progress markers, retry counters) keep arq's
prefixes; ours start with ``rr:``.  A job id is ``{batch}:{line id}``; batch names
cannot contain ``:`` so the split is unambiguous.
"""

from __future__ import annotations

import orjson
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

__all__ = [
    "ARQ_IN_PROGRESS_PREFIX",
    "ARQ_JOB_PREFIX",
    "ARQ_RETRY_PREFIX",
    "BATCHES",
    "DOCUMENT_PREFIX",
    "JOB_FUNCTION",
    "LINES_PER_BUCKET",
    "QUEUE",
    "RESULT_PREFIX",
    "WORKERS",
    "WORKER_PREFIX",
    "arq_in_progress",
    "arq_in_progress_of_batch",
    "arq_job",
    "arq_retry",
    "batch",
    "batch_evaluation",
    "batch_failed",
    "batch_line_bucket",
    "batch_lines",
    "batch_stats",
    "corpus_stats",
    "document",
    "group",
    "job_id",
    "limiter",
    "line_key",
    "line_member",
    "result",
    "score_cache",
    "worker",
    "worker_claim",
    "worker_leases",
]

QUEUE = "rr:queue"
"""arq queue (sorted set of job ids by run-at time in ms)."""
JOB_FUNCTION = "rerank_line"
BATCHES = "rr:batches"
"""Sorted set: batch name -> creation time (unix seconds)."""

ARQ_JOB_PREFIX = job_key_prefix
ARQ_IN_PROGRESS_PREFIX = in_progress_key_prefix
ARQ_RETRY_PREFIX = retry_key_prefix
RESULT_PREFIX = "rr:result:"


def line_key(line_id: str | int) -> str:
    """A line id as it appears in job ids and result keys.  ``1`` and ``"1"`` are the same
    key, which is why validation reports them as duplicates."""
    return str(line_id)


def job_id(batch: str, line_id: str | int) -> str:
    return f"{batch}:{line_key(line_id)}"


def line_member(line_id: str | int) -> str:
    """How a line id is kept in the batch's line set (:func:`batch_line_bucket`): JSON, so its type
    (string or integer) survives to the export."""
    return orjson.dumps(line_id).decode()


def arq_job(job: str) -> str:
    """arq's payload key for a queued job (deleted by arq once the job finishes)."""
    return ARQ_JOB_PREFIX + job


def arq_retry(job: str) -> str:
    """arq's try counter of a job (the claim script counts it, the record script deletes it)."""
    return ARQ_RETRY_PREFIX + job


def arq_in_progress(job: str) -> str:
    return ARQ_IN_PROGRESS_PREFIX + job


def arq_in_progress_of_batch(batch: str) -> str:
    """SCAN pattern of the batch's in-progress markers (batch names hold no glob characters)."""
    return f"{ARQ_IN_PROGRESS_PREFIX}{batch}:*"


def result(job: str) -> str:
    """Hash ``{status, record, run}``: status is ``succeeded`` or ``failed``, record is JSON,
    run the run identity of the job that wrote it (exported only while it is the batch's)."""
    return RESULT_PREFIX + job


def batch(name: str) -> str:
    """Hash of the batch's counters (total, succeeded, failed; cache_hits and cache_misses,
    documents of succeeded lines the score cache served or not) and facts
    (created_at, source, default_model, cancelled, started_at, updated_at), and its run
    identity (:mod:`jobs.identity`): ``run``, the digest every job payload and record of the
    batch carries, and ``identity``, the JSON summary that explains a mismatch (no secrets)."""
    return f"rr:batch:{name}"


LINES_PER_BUCKET = 100
"""Line numbers per bucket of a batch's line set (:func:`batch_line_bucket`): fewer than Redis's
``zset-max-listpack-entries`` (128), so each bucket stays a packed list, about 15 bytes a line
where one sorted set of them all costs about 105."""


def batch_line_bucket(name: str, bucket: int | str) -> str:
    """The batch's line set, one sorted set per :data:`LINES_PER_BUCKET` line numbers
    (``line // LINES_PER_BUCKET``): JSON-encoded line id -> line number in the dataset.  The
    batch hash's ``line_buckets`` is one past the highest bucket written; a bucket whose lines
    were all invalid is absent."""
    return f"rr:batch:{name}:lines:{bucket}"


def batch_lines(name: str) -> str:
    """The line set of a batch enqueued by an older version, in one sorted set (JSON-encoded
    line id -> line number); such a batch keeps it, a resume adds to it."""
    return f"rr:batch:{name}:lines"


def batch_failed(name: str) -> str:
    """Hash: job id -> the line's job payload (JSON), for every line whose last outcome is a
    failure.  The dead-letter store: never expires; ``batch.py retry-failed`` re-queues from it
    and a later success removes the entry."""
    return f"rr:batch:{name}:failed"


def batch_evaluation(name: str) -> str:
    """String: the batch's last ``batch.py eval`` as JSON (:mod:`jobs.evaluation`), with the
    batch hash's expiry when it has one."""
    return f"rr:batch:{name}:evaluation"


DOCUMENT_PREFIX = "rr:doc:"


def document(digest: str) -> str:
    """The document store (:mod:`jobs.docstore`): a document's JSON, keyed on a hash of that JSON;
    written if absent by enqueue, its expiry pushed out (never in) to each writing batch's
    lifetime."""
    return DOCUMENT_PREFIX + digest


def group(name: str) -> str:
    """A bake-off (:mod:`jobs.bakeoff`): sorted set of the sibling batches' names -> their
    position (model order); expires with the batches' bookkeeping."""
    return f"rr:group:{name}"


def corpus_stats(digest: str) -> str:
    """A corpus's statistics for the local lexical models (:mod:`jobs.corpus_stats`): one
    compressed blob, written by enqueue, read by workers; it expires with the longest-lived
    batch that enqueued it (``RR_RESULT_TTL_DAYS``)."""
    return f"rr:corpus:{digest}:stats"


def batch_stats(name: str) -> str:
    """Hash of the batch's per-deployment counters, ``{deployment}|{counter}`` -> number
    (:mod:`jobs.stats`), added to by every worker's periodic flush; expires with the batch."""
    return f"rr:batch:{name}:stats"


def score_cache(scorer: str, entry: str) -> str:
    """The score cache (:mod:`jobs.cache`), per scorer (a model name's deployments, hashed):
    ``rr:cache:{scorer}:{query key}`` is a hash of document hash -> score;
    ``rr:cache:{scorer}:line:{line key}`` a whole line's results as JSON.  Every entry expires
    ``RR_CACHE_TTL_DAYS`` after its last use."""
    return f"rr:cache:{scorer}:{entry}"


def limiter(deployment: str) -> str:
    """Prefix of one deployment's shared limiter state: ``:req`` and ``:tok`` (GCRA arrival
    times), ``:leases`` (concurrency), ``:cool`` (cool-down), ``:fails`` (failure streak)."""
    return f"rr:limit:{deployment}"


WORKERS = "rr:workers"
"""Sorted set: worker id -> the Redis time (ms) of its last heartbeat.  ``batch.py workers``
lists it; the reaper forgets entries an hour after their last heartbeat."""


WORKER_PREFIX = "rr:worker:"


def worker(worker_id: str) -> str:
    """A worker's heartbeat: a string (JSON facts: host, pid, started_at, max_jobs) that expires
    ``RR_WORKER_TTL_SECONDS`` after the last renewal.  Its absence means the worker is dead."""
    return WORKER_PREFIX + worker_id


def worker_leases(worker_id: str) -> str:
    """Set of the job ids a worker is running, rewritten with every heartbeat.  When the heartbeat
    is gone the reaper hands these jobs back to the queue and deletes the set."""
    return f"{WORKER_PREFIX}{worker_id}:leases"


def worker_claim(worker_id: str) -> str:
    """The number of a worker's last claim call (a string that expires): a call retried after it
    ran finds its own number there (:data:`jobs.liveness.TAKE_LUA`)."""
    return f"{WORKER_PREFIX}{worker_id}:claim"
