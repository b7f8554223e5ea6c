"""PLACEHOLDER: replaced by the real litellm_proxy adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("litellm_proxy")
