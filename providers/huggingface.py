"""PLACEHOLDER: replaced by the real huggingface adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("huggingface")
