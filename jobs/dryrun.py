"""``enqueue.py --dry-run``: each run's lines planned as a worker with this environment would
plan them, priced, and checked against the score cache; nothing enqueued, no provider called."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from jobs.connection import connect
from jobs.dataset import DatasetLine
from jobs.estimate import estimate, prices_from
from jobs.payload import line_payload, rerank_request
from jobs.preflight import valid_lines
from jobs.runs import Run
from jobs.settings import RunnerSettings, model_list, provider_credentials
from providers.deployment import Deployment
from providers.errors import ConfigurationError
from providers.registry import deployment_for
from providers.types import RerankRequest

__all__ = ["dry_run", "dry_runs", "resolver"]


def resolver(settings: RunnerSettings, names: Iterable[str]) -> dict[str, tuple[list[Deployment], bool]]:
    """Each model name -> (its deployments, whether it has fallbacks), as a worker with this
    environment would resolve it (keys the environment lacks are not needed to plan)."""
    try:
        models = model_list(settings)
    except ConfigurationError:
        models = model_list(settings, resolve_env=False)
    # an entry whose variables this environment lacks is still that entry (workers may have them)
    names_only = model_list(settings, resolve_env=False) if settings.config else models
    credentials = provider_credentials()
    return {
        name: (
            models.deployments.get(name)
            or names_only.deployments.get(name)
            or [deployment_for(name, credentials)],
            bool(models.fallbacks.get(name) or names_only.fallbacks.get(name)),
        )
        for name in names
    }


async def dry_run(run: Run) -> int:
    args, settings = run.args, run.settings

    def planned() -> Iterator[tuple[DatasetLine, RerankRequest, str]]:
        for line in valid_lines(args.dataset, run.report, settings.max_line_bytes, run.corpus):
            model = line.model or settings.default_model
            yield line, rerank_request(line_payload(run.batch, line, model, run.identity.digest)), model

    resolve = resolver(settings, run.identity.models)
    prices = prices_from(settings.config)
    async with connect(settings.redis_url, args.state_dir) as conn:
        estimates = await estimate(None if args.no_cache else conn.redis, planned(), resolve, prices)
    print(f"dry run of batch {run.batch}: nothing enqueued, no provider called")
    for found in estimates:
        print("\n".join(found.describe()))
    return 0


async def dry_runs(runs: list[Run]) -> int:
    for run in runs:
        await dry_run(run)
    return 0
