"""PLACEHOLDER: replaced by the real watsonx adapter."""

from providers.adapter import not_implemented

ADAPTER = not_implemented("watsonx")
