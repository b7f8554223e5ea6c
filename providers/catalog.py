"""The provider table of ``docs/providers.md``, rendered from the adapters' own data.

    python -m providers.catalog           # rewrite the table in docs/providers.md
    python -m providers.catalog --check   # exit 1 when the file is out of date

Only the part between the markers is generated; the prose around it is written by hand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from providers.adapter import Capabilities, HttpAdapter
from providers.adapters import local
from providers.auth import Bearer
from providers.deployment import Deployment
from providers.params import describe
from providers.registry import HTTP_ADAPTERS

__all__ = [
    "BEGIN",
    "DOC",
    "END",
    "FLAGS",
    "HEADER",
    "LEGEND",
    "LOCAL_CAPABILITIES",
    "LOCAL_SCORES",
    "adapter_row",
    "local_rows",
    "main",
    "splice",
    "table",
]

DOC = Path(__file__).resolve().parents[1] / "docs" / "providers.md"
BEGIN = "<!-- begin generated table: python -m providers.catalog -->"
END = "<!-- end generated table -->"
HEADER = (
    "prefix",
    "auth",
    "key variables",
    "base variables",
    "settings variables",
    "default base",
    "top_n",
    "objects + rank_fields",
    "max_tokens_per_doc",
    "max_chunks_per_doc",
    "score",
    "usage (as reported)",
    "docs per request",
    "image documents",
    "provider-specific parameters (`provider_params`, `litellm_params`)",
)
LEGEND = (
    "N = native, C = client-side. Variables separated by `/` are alternatives for one value "
    "(the first that is set wins); `;` separates values. Image documents are objects whose `image` "
    "is a `data:image/` URL; where they are not taken, a line holding one fails with a configuration "
    "error. Provider-specific parameters: any other key is refused (see below)."
)
LOCAL_CAPABILITIES = Capabilities(top_n=False)
"""local/bm25 ranks each line's candidates in-process: everything is done client-side."""


def _code(names: Iterable[str]) -> str:
    return " / ".join(f"`{name}`" for name in names) or "—"


def _settings(param_env: Mapping[str, tuple[str, ...]]) -> str:
    return "; ".join(_code(names) for names in param_env.values() if names) or "—"


def _auth(adapter: HttpAdapter) -> str:
    if adapter.auth_kind:
        return adapter.auth_kind
    if isinstance(adapter.auth, Bearer) and isinstance(adapter.auth.required, bool):
        return "Bearer" if adapter.auth.required else "Bearer if a key is set"
    raise ValueError(f"{adapter.provider}: describe its auth scheme in HttpAdapter.auth_kind")


def _default_base(adapter: HttpAdapter) -> str:
    if adapter.default_base is None:
        return "**required**"
    if callable(adapter.default_base):
        return "per deployment (see below)"
    return f"`{adapter.default_base}`"


def _variants(adapter: HttpAdapter) -> Mapping[str, Capabilities]:
    if adapter.variants:
        return adapter.variants
    # No variants declared: the hook answers the same for every deployment.
    placeholder = Deployment(model=f"{adapter.provider}/model", provider=adapter.provider, wire_model="model")
    return {"": adapter.capabilities(placeholder)}


def _native(flag: bool) -> str:
    return "N" if flag else "C"


FLAGS: tuple[Callable[[Capabilities], str], ...] = (
    lambda capabilities: _native(capabilities.top_n),
    lambda capabilities: _native(capabilities.object_documents),
    lambda capabilities: _native(capabilities.max_tokens_per_doc),
    lambda capabilities: _native(capabilities.max_chunks_per_doc),
)
"""The capability columns, in the header's order."""


def _documents(capabilities: Capabilities) -> str:
    limit = capabilities.max_documents
    return f"{limit:,}" if limit is not None else "none documented"


def _images(capabilities: Capabilities) -> str:
    return "yes" if capabilities.image_documents else "no"


def _per_variant(variants: Mapping[str, Capabilities], cell: Callable[[Capabilities], str]) -> str:
    """One value when every variant agrees, else ``v2: N · v1: C``."""
    values = {name: cell(capabilities) for name, capabilities in variants.items()}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return " · ".join(f"{name}: {value}" for name, value in values.items())


def adapter_row(adapter: HttpAdapter) -> tuple[str, ...]:
    variants = _variants(adapter)
    return (
        f"`{adapter.provider}/`",
        _auth(adapter),
        _code(adapter.key_env),
        _code(adapter.base_env),
        _settings(adapter.param_env),
        _default_base(adapter),
        *(_per_variant(variants, flag) for flag in FLAGS),
        adapter.score_kind,
        adapter.usage_kind,
        _per_variant(variants, _documents),
        _per_variant(variants, _images),
        "; ".join(describe(p) for p in adapter.params) or "none",
    )


LOCAL_SCORES = {
    "bm25": "raw BM25 (≥ 0, unbounded)",
    "ql": "query log-likelihood, Dirichlet (≤ 0)",
}


def local_rows() -> list[tuple[str, ...]]:
    flags = tuple(flag(LOCAL_CAPABILITIES) for flag in FLAGS)
    usage, documents = "none", "no limit"
    none = ("none", "—", "—", "—", "in-process")
    return [
        (f"`local/{model}`", *none, *flags, LOCAL_SCORES[model], usage, documents, "no", "none")
        for model in local.MODELS
    ]


def _markdown_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def table() -> str:
    """The generated block, markers included."""
    rows = [*local_rows(), *(adapter_row(adapter) for adapter in HTTP_ADAPTERS.values())]
    lines = [
        BEGIN,
        LEGEND,
        "",
        _markdown_row(HEADER),
        "|" + "---|" * len(HEADER),
        *(_markdown_row(row) for row in rows),
        END,
    ]
    return "\n".join(lines)


def splice(text: str) -> str:
    """``text`` with the block between the markers replaced by :func:`table`."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {BEGIN!r} and {END!r} are missing")
    return text[:start] + table() + text[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m providers.catalog", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is out of date")
    parser.add_argument("--file", type=Path, default=DOC, help=f"default: {DOC}")
    args = parser.parse_args(argv)
    current = args.file.read_text()
    wanted = splice(current)
    if wanted == current:
        return 0
    if args.check:
        print(f"{args.file} is out of date: run python -m providers.catalog", file=sys.stderr)
        return 1
    args.file.write_text(wanted)
    print(f"rewrote the provider table in {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
