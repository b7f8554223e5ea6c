"""PLACEHOLDER: replaced by the real dashscope adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("dashscope")
