"""Topics for ``enqueue.py --run``: TSV, JSONL (BEIR), TREC topic files, and errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.topics import TopicsError, load_topics
from tests.support import refused

CLASSIC = """<top>
<num> Number: 401
<title> foreign minorities, Germany

<desc> Description:
What language and cultural differences
impede the integration of foreign minorities in Germany?

<narr> Narrative:
A relevant document will focus on the causes.
</top>

<top>
<num> Number: 402 <title> behavioral genetics
<desc> Description: What is happening in behavioral genetics?
</top>
"""

WEB = """<webtrack2012>
<topic number="151" type="faceted">
  <query>403b</query>
  <description>What is the 403b plan?</description>
</topic>
</webtrack2012>
"""


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


def test_trec_topics_title_by_default_or_a_chosen_field(tmp_path: Path) -> None:
    path = write(tmp_path, "topics.401-402.txt", CLASSIC)
    assert load_topics(path) == {"401": "foreign minorities, Germany", "402": "behavioral genetics"}
    assert load_topics(path, "desc") == {
        "401": "What language and cultural differences impede the integration of foreign minorities in "
        "Germany?",
        "402": "What is happening in behavioral genetics?",
    }
    web = write(tmp_path, "web.xml", WEB.replace("<webtrack2012>\n", "").replace("</webtrack2012>\n", ""))
    assert load_topics(web) == {"151": "403b"}
    assert load_topics(web, "desc") == {"151": "What is the 403b plan?"}


def test_tsv_and_beir_jsonl_topics(tmp_path: Path) -> None:
    tsv = write(tmp_path, "queries.tsv", "qid\ttext\n1048585\twhat is paula deen's brother\n2\tsolar\n")
    assert load_topics(tsv) == {"1048585": "what is paula deen's brother", "2": "solar"}
    beir = write(
        tmp_path,
        "queries.jsonl",
        '{"_id": "q1", "text": "solar panels", "metadata": {}}\n{"query_id": 2, "query": "espresso"}\n',
    )
    assert load_topics(beir) == {"q1": "solar panels", "2": "espresso"}
    assert load_topics(tmp_path) == load_topics(beir)  # a BEIR folder: its queries.jsonl


@pytest.mark.parametrize(
    ("name", "content", "field", "message"),
    [
        ("q.tsv", "1\tsolar\n2\n", None, r"q\.tsv: line 2: needs qid<TAB>text"),
        ("q.tsv", "1\tsolar\n1\tcoffee\n", None, r"line 2: duplicate query id '1'"),
        ("q.jsonl", '{"_id": "q1", "text": "a"}\n{"text": "b"}\n', None, r"line 2: needs a query id"),
        ("q.jsonl", '{"_id": "q1", "title": "a"}\n', "text", r"line 1: text must be a non-empty string"),
        ("q.jsonl", "{oops\n", None, r"line 1: invalid JSON"),
        ("t", CLASSIC.replace("<title> behavioral genetics", ""), None, r"line 13: topic 402 has no <title>"),
        ("topics", CLASSIC.replace("402", "401"), None, r"line 13: duplicate topic '401'"),
        ("topics.txt", "401 solar panels\n", None, r"topics\.txt: line 1: needs qid<TAB>text"),
    ],
)
def test_a_bad_topics_file_is_named_by_file_and_line(
    tmp_path: Path, name: str, content: str, field: str | None, message: str
) -> None:
    refused(tmp_path / name, content, lambda path: load_topics(path, field), TopicsError, message)
