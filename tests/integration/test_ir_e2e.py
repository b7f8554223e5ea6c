"""Issue 10's promise: from (topics, corpus, first-stage run, qrels) to one evaluation table of
two models and the baseline in at most three commands (here two: a bake-off and an eval of its
group), in local mode, with the figures ir_measures gives on the exported runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import ir_measures
import pytest

from tests.e2e import WORKER_ENV
from tests.process_tools import reaping
from tests.support import run_script

pytestmark = pytest.mark.integration

SUBJECTS = ["solar panel", "espresso machine", "glacier retreat", "marathon training", "honeybee colony"]
METRICS = ["nDCG@10", "RR@10", "R@100", "P@3"]


def build_collection(root: Path) -> None:
    """Per subject: a document all about it (relevance 2), one that shares its first word (1), one
    about something else that shares its second word (0).  The first stage ranks them worst first, with
    another subject's document mixed in, so re-ranking has something to fix."""
    topics, qrels, run, corpus = [], [], [], []
    for n, subject in enumerate(SUBJECTS, start=1):
        first, second = subject.split()
        docs = {
            f"D{n}A": (f"All about the {subject}", f"How a {subject} works: the {subject} in detail."),
            f"D{n}B": ("Notes", f"Among other things, the {first} kind appears here."),
            f"D{n}C": (f"The {second}", f"A {second} of a different kind."),
        }
        corpus += [{"_id": docid, "title": title, "text": text} for docid, (title, text) in docs.items()]
        topics.append(
            f"<top>\n<num> Number: {n}\n<title> {subject}\n<desc> Description:\nAbout {subject}s.\n</top>"
        )
        qrels += [f"{n} 0 D{n}A 2", f"{n} 0 D{n}B 1", f"{n} 0 D{n}C 0"]
        stranger = f"D{n % len(SUBJECTS) + 1}A"
        for rank, docid in enumerate([f"D{n}C", stranger, f"D{n}B", f"D{n}A"], start=1):
            run.append(f"{n} Q0 {docid} {rank} {10 - rank}.5 firststage")
    (root / "beir").mkdir()
    (root / "beir" / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (root / "topics.txt").write_text("\n\n".join(topics) + "\n")
    (root / "qrels.txt").write_text("\n".join(qrels) + "\n")
    (root / "first.run").write_text("\n".join(run) + "\n")


def table_rows(stdout: str) -> dict[str, list[float]]:
    """Run label's first word -> [missing, metric values...] as printed."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        numbers = cells[-len(METRICS) - 1 :]
        if len(cells) > len(numbers) and all(re.fullmatch(r"[\d.]+", c) for c in numbers):
            rows[cells[0]] = [float(c) for c in numbers]
    return rows


@pytest.mark.timeout(120)  # a local-mode bake-off (Redis, workers, two batches), then batch commands: 6-20 s
def test_two_commands_give_the_table_ir_measures_gives_on_the_exported_runs(tmp_path: Path) -> None:
    build_collection(tmp_path)
    inputs = ["--run", "first.run", "--topics", "topics.txt", "--corpus", "beir", "--depth", "4"]
    local = ["--state-dir", "state"]
    with reaping(tmp_path / "state"):
        enqueued = run_script(
            "enqueue.py", *inputs, *local, "--no-progress", "--model", "local/bm25", "--model", "local/ql",
            env=WORKER_ENV, cwd=tmp_path,
        )  # fmt: skip
        assert enqueued.returncode == 0, enqueued.stdout + enqueued.stderr
        batches = re.findall(r"^batch (\S+): running locally", enqueued.stdout, re.M)
        group = re.search(r"^bake-off (\S+):", enqueued.stdout, re.M)
        assert len(batches) == 2 and group, enqueued.stdout
        evaluated = run_script(
            "batch.py", *local, "eval", group.group(1), "--qrels", "qrels.txt", "--baseline", "first.run",
            "--metrics", *METRICS, "--per-query", "per_query.tsv", env=WORKER_ENV, cwd=tmp_path,
        )  # fmt: skip
        assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
        exported = run_script(
            "batch.py", *local, "results", group.group(1), "--format", "trec", env=WORKER_ENV, cwd=tmp_path
        )  # the group's batches, each to results/BATCH.trec
        assert exported.returncode == 0, exported.stderr
    rows = table_rows(evaluated.stdout)
    qrels = list(ir_measures.read_trec_qrels(str(tmp_path / "qrels.txt")))  # type: ignore[no-untyped-call]
    measures = [ir_measures.parse_measure(m) for m in METRICS]
    per_query = [line.split("\t") for line in (tmp_path / "per_query.tsv").read_text().splitlines()[1:]]
    for name, run_file in [("first.run", "first.run"), *((b, f"results/{b}.trec") for b in batches)]:
        expected = ir_measures.calc_aggregate(
            measures,
            qrels,
            ir_measures.read_trec_run(str(tmp_path / run_file)),  # type: ignore[no-untyped-call]
        )
        assert rows[name][0] == 0, evaluated.stdout  # no query missing
        for column, measure in enumerate(measures, start=1):
            assert rows[name][column] == pytest.approx(expected[measure], abs=5e-5), (name, measure)
            values = [float(v) for run, metric, _, v in per_query if run == name and metric == str(measure)]
            assert sum(values) / len(values) == pytest.approx(expected[measure], abs=1e-12)
    # the models do re-rank: both beat the first stage, which put the best document last
    assert rows[batches[0]][1] > rows["first.run"][1] and rows[batches[1]][1] > rows["first.run"][1]
    trec = (tmp_path / "results" / f"{batches[1]}.trec").read_text().splitlines()
    assert trec[0].split()[1:3] == ["Q0", "D1A"] and trec[0].split()[-1] == "local/ql"
