"""PLACEHOLDER: replaced by the real voyage adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("voyage")
