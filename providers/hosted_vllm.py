"""PLACEHOLDER: replaced by the real hosted_vllm adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("hosted_vllm")
