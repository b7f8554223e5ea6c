"""``batch.py report BATCH --html FILE``: one self-contained HTML page showing a run.

Charts (plotly, its JavaScript inlined: the page needs no server and no network): progress
over time, throughput per deployment, line latency per deployment, error codes; tables of
the per-deployment stats (:mod:`jobs.stats`) and, when an evaluation is given, its metrics.
Everything comes from the batch's records (read as ``batch.py results`` reads them) and its
stats hash; memory is a few numbers per line.

The evaluation hook: ``--eval FILE`` (or ``evaluation=`` here) takes the metrics of an
evaluation of the batch as JSON: an object ``{metric: value}``, or a list of rows (objects
with the same keys, e.g. one per model or cut-off), shown as a table.
"""

from __future__ import annotations

import html
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from jobs.batches import BatchStatus, batch_status, export
from jobs.stats import DeploymentStats, deployment_stats

__all__ = [
    "LinePoint",
    "ReportData",
    "ReportUnavailableError",
    "evaluation_rows",
    "render_html",
    "report_data",
]

_CHART_HEIGHT = "380px"


class ReportUnavailableError(RuntimeError):
    """The plotting library is not installed (``pip install 'rerank-runner[report]'``)."""


@dataclass(frozen=True, slots=True)
class LinePoint:
    """What the report keeps of one line."""

    finished_at: float | None
    status: str
    """``succeeded``, ``failed``, or ``unfinished``."""
    deployment: str
    latency_ms: float | None
    code: str | None


class _Points(io.BytesIO):
    """A sink for :func:`jobs.batches.export` that keeps a :class:`LinePoint` per record."""

    def __init__(self, status: str) -> None:
        super().__init__()
        self.status = status
        self.points: list[LinePoint] = []

    def write(self, data: Any) -> int:
        record = orjson.loads(bytes(data))
        error = record.get("error") or {}
        code = error.get("code")
        unfinished = self.status == "failed" and "finished_at" not in record
        self.points.append(
            LinePoint(
                finished_at=record.get("finished_at"),
                status="unfinished" if unfinished else self.status,
                deployment=record.get("deployment") or "none",
                latency_ms=record.get("latency_ms"),
                code=code,
            )
        )
        return len(data)


@dataclass
class ReportData:
    status: BatchStatus
    deployments: list[DeploymentStats]
    points: list[LinePoint]
    evaluation: list[dict[str, Any]] = field(default_factory=list)


def evaluation_rows(value: Any) -> list[dict[str, Any]]:
    """An evaluation's metrics as table rows: ``{metric: value}`` becomes one row."""
    if isinstance(value, Mapping):
        return [dict(value)]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [dict(row) for row in value if isinstance(row, Mapping)]
    raise ValueError("an evaluation is a JSON object of metrics or a list of such objects")


async def report_data(
    redis: Redis,
    batch: str,
    prices: Mapping[str, Mapping[str, float]] | None = None,
    evaluation: Any = None,
) -> ReportData:
    status = await batch_status(redis, batch)
    succeeded, failed = _Points("succeeded"), _Points("failed")
    await export(redis, batch, succeeded, failed)
    return ReportData(
        status=status,
        deployments=await deployment_stats(redis, batch, prices),
        points=succeeded.points + failed.points,
        evaluation=[] if evaluation is None else evaluation_rows(evaluation),
    )


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:
        raise ReportUnavailableError(
            "the HTML report needs plotly: pip install 'rerank-runner[report]'"
        ) from exc
    return go


def _progress(go: Any, data: ReportData) -> Any:
    figure = go.Figure()
    finished = sorted((p.finished_at, p.status) for p in data.points if p.finished_at is not None)
    start = finished[0][0] if finished else 0.0
    for status in ("succeeded", "failed"):
        times = [t - start for t, s in finished if s == status]
        figure.add_trace(go.Scatter(x=times, y=list(range(1, len(times) + 1)), mode="lines", name=status))
    figure.update_layout(
        title=f"Progress: lines done over time (of {data.status.total})",
        xaxis_title="seconds since the first record",
        yaxis_title="lines",
    )
    return figure


def _throughput(go: Any, data: ReportData) -> Any:
    done = [p for p in data.points if p.finished_at is not None and p.status == "succeeded"]
    figure = go.Figure()
    if done:
        start = min(p.finished_at or 0.0 for p in done)
        span = max(p.finished_at or 0.0 for p in done) - start
        width = max(1.0, span / 60)
        per: dict[str, Counter[int]] = {}
        for p in done:
            per.setdefault(p.deployment, Counter())[int(((p.finished_at or 0.0) - start) // width)] += 1
        for deployment, counts in sorted(per.items()):
            slots = range(max(counts) + 1)
            figure.add_trace(
                go.Scatter(
                    x=[n * width for n in slots],
                    y=[counts[n] / width for n in slots],
                    mode="lines+markers",
                    name=deployment,
                )
            )
    figure.update_layout(
        title="Throughput per deployment (succeeded lines)", xaxis_title="seconds", yaxis_title="lines/s"
    )
    return figure


def _latency(go: Any, data: ReportData) -> Any:
    figure = go.Figure()
    by: dict[str, list[float]] = {}
    for p in data.points:
        if p.latency_ms is not None and p.status == "succeeded":
            by.setdefault(p.deployment, []).append(p.latency_ms)
    for deployment, values in sorted(by.items()):
        figure.add_trace(go.Histogram(x=values, name=deployment, opacity=0.75))
    figure.update_layout(
        title="Line latency distribution", xaxis_title="ms", yaxis_title="lines", barmode="overlay"
    )
    return figure


def _errors(go: Any, data: ReportData) -> Any:
    codes = Counter(p.code or "none" for p in data.points if p.status != "succeeded")
    ordered = codes.most_common()
    figure = go.Figure(go.Bar(x=[c for c, _ in ordered], y=[n for _, n in ordered], name="lines"))
    figure.update_layout(title="Failed and unfinished lines by error code", yaxis_title="lines")
    return figure


def _table(rows: Sequence[Mapping[str, Any]], css: str) -> str:
    if not rows:
        return ""
    columns = list(dict.fromkeys(name for row in rows for name in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _deployment_rows(data: ReportData) -> list[dict[str, Any]]:
    rows = []
    for stats in data.deployments:
        shown = stats.to_json()
        rows.append(
            {
                "deployment": stats.deployment,
                "requests": stats.requests,
                "status": shown["status"],
                "p50 ms": shown["p50_ms"],
                "p95 ms": shown["p95_ms"],
                "retries": stats.retries,
                "cool-downs": stats.cooldowns,
                "lines": shown["lines"],
                "usage": shown["usage"],
                "cost": shown["cost"],
            }
        )
    return rows


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em; }
.chart { margin-bottom: 1em; }
"""


def render_html(data: ReportData) -> str:
    """The whole page, plotly.js inlined."""
    go = _plotly()
    from plotly.offline import get_plotlyjs

    figures = [_progress(go, data), _throughput(go, data), _latency(go, data), _errors(go, data)]
    charts = "".join(
        '<div class="chart">'
        + f.to_html(full_html=False, include_plotlyjs=False, default_height=_CHART_HEIGHT)
        + "</div>"
        for f in figures
    )
    status = data.status
    title = html.escape(f"rerank-runner report: {status.batch}")
    evaluation = (
        f"<h2>Evaluation</h2>{_table(data.evaluation, 'evaluation')}"
        if data.evaluation
        else "<h2>Evaluation</h2><p>No evaluation given (<code>--eval FILE</code>).</p>"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
        f"<h1>{title}</h1><p>total {status.total}, succeeded {status.succeeded}, failed {status.failed}, "
        f"pending {status.pending}{', cancelled' if status.cancelled else ''}</p>"
        f'<div class="charts">{charts}</div>'
        f"<h2>Deployments</h2>{_table(_deployment_rows(data), 'deployments') or '<p>No requests.</p>'}"
        f"{evaluation}</body></html>"
    )
