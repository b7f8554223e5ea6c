"""The HTML report: a large run stays a small page, what comes from data is escaped (a
deployment label or a metric name cannot inject markup), evaluations are tables or errors.
(Rendering in a real browser: tests/integration/test_observability.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

from jobs.batches import BatchStatus
from jobs.report import EvaluationError, ReportData, RunShape, evaluation_rows, load_evaluation, render_html
from jobs.stats import DeploymentStats

LINES = 200_000
HOSTILE = "<img src=x onerror=alert(1)>"


def status(total: int) -> BatchStatus:
    return BatchStatus("big", total, total - 2, 2, False, 1.0, 1.0, 2.0)


def big_shape() -> RunShape:
    shape = RunShape()
    for n in range(LINES):
        deployment = "co#0" if n % 3 else HOSTILE
        record = {"finished_at": 1_000.0 + n / 50, "deployment": deployment, "latency_ms": 100 + n % 700}
        shape.add("succeeded", record)
    shape.add("failed", {"finished_at": 1_001.0, "error": {"code": "rate_limited"}})
    shape.add("failed", {"id": "q9", "error": {"code": "lost"}})  # unfinished: no finish time
    return shape


def test_a_large_run_is_a_small_page_with_escaped_labels() -> None:
    shape = big_shape()
    assert shape.codes == {"rate_limited": 1, "lost": 1}
    data = ReportData(
        status(LINES + 2),
        [DeploymentStats(HOSTILE, requests=3)],
        shape,
        evaluation_rows({"<b>ndcg@10</b>": 0.42}),
    )
    page = render_html(data)
    assert len(page) - len(get_plotlyjs()) < 400_000  # thinned curves, binned latencies
    body = page.split("</head>", 1)[1]
    assert HOSTILE not in body and "<b>" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body and "&lt;b&gt;ndcg@10&lt;/b&gt;" in body


def test_evaluations_are_an_object_or_rows_and_anything_else_is_an_error(tmp_path: Path) -> None:
    assert evaluation_rows({"ndcg@10": 0.4}) == [{"ndcg@10": 0.4}]
    rows = [{"model": "a", "ndcg@10": 0.4}, {"model": "b", "ndcg@10": 0.5}]
    assert evaluation_rows(rows) == rows
    broken = tmp_path / "eval.json"
    broken.write_text("[1, 2")
    with pytest.raises(EvaluationError, match=r"--eval .*eval\.json"):
        load_evaluation(broken)
    broken.write_text('"ndcg"')
    with pytest.raises(EvaluationError, match="JSON object of metrics"):
        load_evaluation(broken)
    with pytest.raises(EvaluationError, match="No such file"):
        load_evaluation(tmp_path / "missing.json")
