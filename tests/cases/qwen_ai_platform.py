"""Qwen AI Platform: DashScope's API at its mainland endpoint, with its own variables."""

from __future__ import annotations

from tests.cases.dashscope import DEFAULT_URL, alias_case

CASE = alias_case(
    "qwen_ai_platform", "QWEN_AI_PLATFORM_API_KEY", "QWEN_AI_PLATFORM_API_BASE_RERANK", DEFAULT_URL
)
