"""LiteLLM proxy ``config.yaml`` model lists: public model names -> deployments.

An existing LiteLLM config loads as is: ``model_list`` entries of ``model_name`` +
``litellm_params`` (``model``, ``api_key``, ``api_base``, provider settings such as
``aws_region_name`` or ``vertex_project``; ``os.environ/NAME`` values come from
the environment), ``rpm``/``tpm`` per entry, and ``router_settings.fallbacks``.
Keys we do not use are reported as warnings, never errors.  With ``environ=None``
(enqueue, which only needs the names) ``os.environ/`` references are not resolved.  Several entries with
the same ``model_name`` are deployments of one public model.

An entry whose ``os.environ/`` variables are unset is left out with a warning naming it and
the variables (a config lists more models than one run has keys for); a public name left with
no deployment is *unavailable*: lines that use it fail with a ``configuration`` error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from providers import params as provider_params
from providers.deployment import Credentials, Deployment, Limits
from providers.errors import ConfigurationError
from providers.registry import (
    HTTP_ADAPTERS,
    PROVIDER_PARAMS,
    credentials_from,
    declared_params,
    deployment_for,
)

__all__ = [
    "CORE_PARAMS",
    "ENV_PREFIX",
    "IGNORED_PARAMS",
    "TOP_LEVEL",
    "ModelList",
    "config_document",
    "load_model_list",
    "parse_model_list",
]

ENV_PREFIX = "os.environ/"
CORE_PARAMS = frozenset({"model", "api_key", "api_base", "rpm", "tpm", "max_parallel_requests", "headers"})
IGNORED_PARAMS = frozenset(
    {"timeout", "stream_timeout", "max_retries", "custom_llm_provider", "use_in_pass_through"}
)
"""Common LiteLLM keys that rerank-runner sets elsewhere (RR_* settings); ignored quietly."""
TOP_LEVEL = frozenset({"model_list", "router_settings"})


def _provider_params() -> frozenset[str]:
    return frozenset(name for adapter in HTTP_ADAPTERS.values() for name in adapter.param_env)


def _secret(name: str) -> bool:
    return any(word in name for word in ("key", "secret", "token", "password", "credentials"))


@dataclass(frozen=True)
class ModelList:
    deployments: Mapping[str, list[Deployment]] = field(default_factory=dict)
    fallbacks: Mapping[str, list[str]] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)
    """Public names none of whose entries could be used -> why (unset variables)."""

    def names(self) -> list[str]:
        return sorted({*self.deployments, *self.unavailable})

    def providers(self) -> dict[str, list[str]]:
        """Each public name -> the providers a line using it can reach (fallbacks included)."""
        reach: dict[str, list[str]] = {}
        for name in self.deployments:
            pending, seen, found = [name], set(), list[str]()
            while pending:
                current = pending.pop()
                if current not in seen:
                    seen.add(current)
                    found.extend(d.provider for d in self.deployments.get(current, []))
                    pending.extend(self.fallbacks.get(current, []))
            reach[name] = list(dict.fromkeys(found))
        return reach


class _UnsetVariables(Exception):
    """An entry refers to ``os.environ/`` variables that are not set: only that entry is unusable
    (never leaves this module: the entry is left out with a warning)."""

    def __init__(self, where: str, model_name: str, variables: list[str]) -> None:
        listed = ", ".join(variables)
        plural = "s" if len(variables) > 1 else ""
        self.message = f"{where} ({model_name}): environment variable{plural} {listed} not set"
        super().__init__(self.message)
        self.model_name = model_name


class _Resolver:
    """``os.environ/NAME`` -> the variable's value (None when only names are wanted);
    unset variables are collected, so one entry reports all of them at once."""

    def __init__(self, environ: Mapping[str, str] | None) -> None:
        self.environ = environ
        self.unset: list[str] = []

    def __call__(self, value: Any) -> Any:
        if not (isinstance(value, str) and value.startswith(ENV_PREFIX)):
            return value
        if self.environ is None:
            return None
        name = value[len(ENV_PREFIX) :]
        if not self.environ.get(name):
            if name not in self.unset:
                self.unset.append(name)
            return None
        return self.environ[name]


def _positive(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{where}: must be a positive integer, got {value!r}")
    return value


def _deployment(
    index: int, entry: Any, environ: Mapping[str, str] | None, warn: Callable[[str], None]
) -> Deployment:
    where = f"model_list[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("model_name"), str):
        raise ConfigurationError(f"{where}: needs a model_name and litellm_params")
    name = entry["model_name"]
    params = entry.get("litellm_params")
    if not isinstance(params, dict) or not isinstance(params.get("model"), str):
        raise ConfigurationError(f"{where} ({name}): litellm_params.model is required")
    raw = deployment_for(params["model"], {})
    resolve = _Resolver(environ)
    settings = _provider_params()
    declared = {p.name for p in declared_params(raw.provider)}
    extras: dict[str, Any] = {}
    forwarded: dict[str, Any] = {}
    for key, value in params.items():
        if key in CORE_PARAMS or key in IGNORED_PARAMS:
            continue
        if key in declared or key in PROVIDER_PARAMS:  # a provider-specific parameter: checked below
            forwarded[key] = value
        elif key not in settings:
            warn(f"{where} ({name}): litellm_params.{key} is not used by rerank-runner; ignored")
        else:
            resolved = resolve(value)
            extras[key] = SecretStr(str(resolved)) if _secret(key) else resolved
    if problem := provider_params.check(
        declared_params(raw.provider), raw.provider, forwarded, "litellm_params"
    ):
        raise ConfigurationError(f"{where} ({name}): {problem}")
    api_key = resolve(params.get("api_key"))
    api_base = resolve(params.get("api_base"))
    headers = params.get("headers") or {}
    if not isinstance(headers, dict):
        raise ConfigurationError(f"{where}.litellm_params.headers: must be a mapping")
    info: dict[str, Any] = entry["model_info"] if isinstance(entry.get("model_info"), dict) else {}
    limits = Limits(
        rpm=_positive(params.get("rpm", entry.get("rpm", info.get("rpm"))), f"{where}.rpm"),
        tpm=_positive(params.get("tpm", entry.get("tpm", info.get("tpm"))), f"{where}.tpm"),
        max_concurrency=_positive(params.get("max_parallel_requests"), f"{where}.max_parallel_requests"),
    )
    resolved_headers = {str(k): str(resolve(v)) for k, v in headers.items()}
    if resolve.unset:
        raise _UnsetVariables(where, name, resolve.unset)
    # what the entry leaves out comes from the provider's usual variables, as in LiteLLM
    env = credentials_from(environ).get(raw.provider, Credentials()) if environ is not None else Credentials()
    return Deployment(
        model=name,
        provider=raw.provider,
        wire_model=raw.wire_model,
        credentials=Credentials(
            api_key=SecretStr(str(api_key)) if api_key else env.api_key,
            api_base=str(api_base) if api_base else env.api_base,
            params={**env.params, **extras},
        ),
        headers=resolved_headers,
        limits=limits,
        provider_params=forwarded,
        name=f"{name}#{index}",
    )


def _fallbacks(router: Any, warn: Callable[[str], None]) -> dict[str, list[str]]:
    if not isinstance(router, dict):
        return {}
    found: dict[str, list[str]] = {}
    for item in router.get("fallbacks") or []:
        if isinstance(item, dict):
            for source, targets in item.items():
                found[str(source)] = [str(t) for t in (targets if isinstance(targets, list) else [targets])]
    for key in sorted(set(router) - {"fallbacks"}):
        warn(f"router_settings.{key} is not used by rerank-runner; ignored")
    return found


def parse_model_list(
    document: Any, environ: Mapping[str, str] | None, warn: Callable[[str], None] = lambda _m: None
) -> ModelList:
    if not isinstance(document, dict):
        raise ConfigurationError("the config must be a mapping with a model_list")
    for key in sorted(set(document) - TOP_LEVEL):
        warn(f"{key} is not used by rerank-runner; ignored")
    entries = document.get("model_list") or []
    if not isinstance(entries, list):
        raise ConfigurationError("model_list must be a list")
    deployments: dict[str, list[Deployment]] = {}
    left_out: dict[str, list[str]] = {}
    for index, entry in enumerate(entries):
        try:
            deployment = _deployment(index, entry, environ, warn)
        except _UnsetVariables as exc:
            warn(f"{exc.message}; this entry is unavailable")
            left_out.setdefault(exc.model_name, []).append(exc.message)
            continue
        deployments.setdefault(deployment.model, []).append(deployment)
    unavailable = {name: "; ".join(reasons) for name, reasons in left_out.items() if name not in deployments}
    fallbacks = _fallbacks(document.get("router_settings"), warn)
    for source, targets in fallbacks.items():
        for name in [source, *targets]:
            if name not in deployments and name not in unavailable:
                raise ConfigurationError(
                    f"router_settings.fallbacks names {name!r}, which is not in model_list"
                )
    return ModelList(deployments=deployments, fallbacks=fallbacks, unavailable=unavailable)


def config_document(path: Path) -> Any:
    """The config file's YAML document."""
    import yaml  # here: most runs have no config file, and PyYAML costs ~20 ms of start-up

    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read model list {path}: {exc}") from exc


def load_model_list(
    path: Path, environ: Mapping[str, str] | None, warn: Callable[[str], None] = lambda _m: None
) -> ModelList:
    document = config_document(path)
    try:
        return parse_model_list(document, environ, warn)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc.message}") from exc
