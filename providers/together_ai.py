"""PLACEHOLDER: replaced by the real together_ai adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("together_ai")
