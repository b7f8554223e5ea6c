"""PLACEHOLDER: replaced by the real infinity adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("infinity")
