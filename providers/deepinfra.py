"""PLACEHOLDER: replaced by the real deepinfra adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("deepinfra")
