"""``batch.py report BATCH --html FILE``: one self-contained HTML page showing a run.

Charts (plotly, its JavaScript inlined: the page needs no server and no network): progress
over time, throughput per deployment, line latency per deployment, error codes; tables of
the per-deployment stats (:mod:`jobs.stats`) and, when an evaluation is given, its metrics.
Everything comes from the batch's records (read as ``batch.py results`` reads them) and its
stats hash; memory is two or three doubles per line, and each curve is thinned to at most
``MAX_POINTS`` points so the page stays small for a million lines.

The evaluation hook: ``--eval FILE`` (or ``evaluation=`` here) takes the metrics of an
evaluation of the batch as JSON: an object ``{metric: value}``, or a list of rows (objects
with the same keys, e.g. one per model or cut-off), shown as a table.
"""

from __future__ import annotations

import html
import io
import math
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy
import orjson
from redis.asyncio import Redis

from jobs.batches import BatchStatus, batch_status, export
from jobs.stats import DeploymentStats, deployment_stats

__all__ = [
    "LATENCY_BINS",
    "MAX_POINTS",
    "MAX_SLOTS",
    "EvaluationError",
    "ReportData",
    "ReportUnavailableError",
    "RunShape",
    "evaluation_rows",
    "load_evaluation",
    "render_html",
    "report_data",
]

_CHART_HEIGHT = "380px"
MAX_POINTS = 500
"""Points per progress curve: a million lines draw as well as 500 and weigh far less."""
MAX_SLOTS = 120
"""Time slots of the throughput chart."""
LATENCY_BINS = 40


class ReportUnavailableError(RuntimeError):
    """The plotting library is not installed (``pip install 'rerank-runner[report]'``)."""


class RunShape:
    """What the report keeps of the batch's records: per status the finish times, per
    deployment the finish times and latencies of succeeded lines (arrays of doubles: 8 bytes
    a number), and the error codes of the others."""

    def __init__(self) -> None:
        self.finished: dict[str, array[float]] = {"succeeded": array("d"), "failed": array("d")}
        self.by_deployment: dict[str, array[float]] = {}
        self.latency_ms: dict[str, array[float]] = {}
        self.codes: Counter[str] = Counter()

    def add(self, status: str, record: dict[str, Any]) -> None:
        finished_at = record.get("finished_at")
        if finished_at is None:  # an unfinished line (queued, running, lost, cancelled)
            self.codes[(record.get("error") or {}).get("code") or "unfinished"] += 1
            return
        self.finished[status].append(finished_at)
        if status != "succeeded":
            self.codes[(record.get("error") or {}).get("code") or "error"] += 1
            return
        deployment = record.get("deployment") or "none"
        self.by_deployment.setdefault(deployment, array("d")).append(finished_at)
        if (latency := record.get("latency_ms")) is not None:
            self.latency_ms.setdefault(deployment, array("d")).append(latency)


class _Sink(io.BytesIO):
    """:func:`jobs.batches.export` writes each record here; it goes into the shape."""

    def __init__(self, shape: RunShape, status: str) -> None:
        super().__init__()
        self.shape, self.status = shape, status

    def write(self, data: Any) -> int:
        self.shape.add(self.status, orjson.loads(bytes(data)))
        return len(data)


@dataclass
class ReportData:
    status: BatchStatus
    deployments: list[DeploymentStats]
    shape: RunShape
    evaluation: list[dict[str, Any]] = field(default_factory=list)


class EvaluationError(ValueError):
    """``--eval FILE`` is unreadable, not JSON, or not metrics."""


def load_evaluation(path: Path) -> list[dict[str, Any]]:
    try:
        return evaluation_rows(orjson.loads(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"--eval {path}: {exc}") from None


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
    evaluation: list[dict[str, Any]] | None = None,
) -> ReportData:
    status = await batch_status(redis, batch)
    shape = RunShape()
    await export(redis, batch, _Sink(shape, "succeeded"), _Sink(shape, "failed"))
    return ReportData(
        status=status,
        deployments=await deployment_stats(redis, batch, prices),
        shape=shape,
        evaluation=evaluation or [],
    )


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:
        raise ReportUnavailableError(
            "the HTML report needs plotly: pip install 'rerank-runner[report]'"
        ) from exc
    return go


def _thin(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    """At most :data:`MAX_POINTS` evenly spread points, the last one kept."""
    step = max(1, math.ceil(len(xs) / MAX_POINTS))
    keep = list(range(0, len(xs), step))
    if xs and keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


_SINCE = "seconds since the first record"


def _titled(figure: Any, title: str, x: str, y: str, **layout: Any) -> Any:
    figure.update_layout(title=title, xaxis_title=x, yaxis_title=y, **layout)
    return figure


def _start(shape: RunShape) -> float:
    firsts = [min(times) for times in shape.finished.values() if times]
    return min(firsts) if firsts else 0.0


def _progress(go: Any, data: ReportData) -> Any:
    figure, start = go.Figure(), _start(data.shape)
    for status, times in data.shape.finished.items():
        ordered = sorted(t - start for t in times)
        xs, ys = _thin(ordered, range(1, len(ordered) + 1))
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=status))
    return _titled(figure, f"Progress: lines done over time (of {data.status.total})", _SINCE, "lines")


def _throughput(go: Any, data: ReportData) -> Any:
    figure, start = go.Figure(), _start(data.shape)
    times = data.shape.by_deployment
    span = max((max(t) for t in times.values() if t), default=start) - start
    width = max(1.0, span / MAX_SLOTS)
    for deployment, finished in sorted(times.items()):
        counts = Counter(int((t - start) // width) for t in finished)
        slots = range(max(counts) + 1)
        figure.add_trace(
            go.Scatter(
                x=[n * width for n in slots],
                y=[counts[n] / width for n in slots],
                mode="lines+markers",
                name=deployment,
            )
        )
    return _titled(figure, f"Throughput per deployment (succeeded lines, per {width:g}s)", _SINCE, "lines/s")


def _latency(go: Any, data: ReportData) -> Any:
    figure = go.Figure()
    everything = [v for values in data.shape.latency_ms.values() for v in values]
    if everything:
        edges = numpy.histogram_bin_edges(everything, bins=LATENCY_BINS)
        for deployment, values in sorted(data.shape.latency_ms.items()):
            counts, _ = numpy.histogram(values, bins=edges)
            centres = (edges[:-1] + edges[1:]) / 2
            figure.add_trace(
                go.Bar(
                    x=centres.tolist(), y=counts.tolist(), width=float(edges[1] - edges[0]), name=deployment
                )
            )
    return _titled(figure, "Line latency distribution (succeeded lines)", "ms", "lines", barmode="overlay")


def _errors(go: Any, data: ReportData) -> Any:
    ordered = data.shape.codes.most_common()
    figure = go.Figure(go.Bar(x=[c for c, _ in ordered], y=[n for _, n in ordered], name="lines"))
    if not ordered:
        figure.add_annotation(text="no failed or unfinished lines", showarrow=False, font={"size": 16})
    return _titled(figure, "Failed and unfinished lines by error code", "error code", "lines")


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
