"""PLACEHOLDER: replaced by the real nvidia_nim adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("nvidia_nim")
