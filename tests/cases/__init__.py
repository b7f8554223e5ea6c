"""One :class:`~tests.cases.case.ProviderCase` per registered HTTP provider, for the contract
suite; each module also holds the provider's test data (key, deployment, request, answers) its
own tests share."""

from tests.cases import (
    azure_ai,
    bedrock,
    cohere,
    dashscope,
    deepinfra,
    fireworks_ai,
    hosted_vllm,
    huggingface,
    infinity,
    jina_ai,
    litellm_proxy,
    nvidia_nim,
    qwen_ai_platform,
    qwencloud,
    together_ai,
    vertex_ai,
    voyage,
    watsonx,
)
from tests.cases.case import ProviderCase

CASES: tuple[ProviderCase, ...] = tuple(
    module.CASE
    for module in (
        cohere, litellm_proxy, together_ai, azure_ai, infinity, jina_ai, nvidia_nim, bedrock,
        huggingface, hosted_vllm, deepinfra, fireworks_ai, voyage, vertex_ai, watsonx, dashscope,
        qwencloud, qwen_ai_platform,
    )
)  # fmt: skip
