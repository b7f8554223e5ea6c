"""PLACEHOLDER: replaced by the real fireworks_ai adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("fireworks_ai")
