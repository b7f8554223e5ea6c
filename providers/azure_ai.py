"""PLACEHOLDER: replaced by the real azure_ai adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("azure_ai")
