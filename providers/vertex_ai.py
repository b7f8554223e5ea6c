"""PLACEHOLDER: replaced by the real vertex_ai adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("vertex_ai")
