"""PLACEHOLDER: replaced by the real bedrock adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("bedrock")
