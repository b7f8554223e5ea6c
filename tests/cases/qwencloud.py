"""Qwen Cloud: DashScope's API at its international endpoint, with its own variables."""

from __future__ import annotations

from tests.cases.dashscope import alias_case

CASE = alias_case(
    "qwencloud",
    "QWENCLOUD_API_KEY",
    "QWENCLOUD_API_BASE_RERANK",
    "https://dashscope-intl.aliyuncs.com/compatible-api/v1/reranks",
)
