"""PLACEHOLDER: replaced by the real jina_ai adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("jina_ai")
