"""The worker's event loop (jobs/event_loop.py, ``RR_EVENT_LOOP``): uvloop by default on Linux,
asyncio's own on request, and arq's ``Worker`` runs on whichever was installed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import uvloop
from arq.connections import RedisSettings
from arq.worker import Worker

from jobs import event_loop
from jobs.settings import SettingsError, load_settings


@pytest.fixture
def no_current_loop() -> Iterator[None]:
    yield
    loop = asyncio.get_event_loop_policy().get_event_loop()
    asyncio.set_event_loop(None)
    loop.close()


async def kind_of_loop() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


async def noop(ctx: dict[str, Any]) -> None:
    return None


def test_uvloop_is_the_default_where_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RR_EVENT_LOOP", raising=False)
    assert load_settings().event_loop == "uvloop"
    monkeypatch.setenv("RR_EVENT_LOOP", "asyncio")
    assert load_settings().event_loop == "asyncio"


def test_an_unknown_event_loop_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RR_EVENT_LOOP", "trio")
    with pytest.raises(SettingsError, match="RR_EVENT_LOOP"):
        load_settings()


def test_uvloop_asked_for_but_missing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_loop, "default_event_loop", lambda: "asyncio")
    monkeypatch.setattr("jobs.settings.default_event_loop", lambda: "asyncio")
    monkeypatch.setenv("RR_EVENT_LOOP", "uvloop")
    with pytest.raises(SettingsError, match="uvloop is not installed"):
        load_settings()


@pytest.mark.parametrize(("kind", "expected"), [("uvloop", uvloop.Loop), ("asyncio", asyncio.BaseEventLoop)])
def test_run_uses_the_chosen_loop(kind: event_loop.EventLoop, expected: type[Any]) -> None:
    ran_on = event_loop.run(kind_of_loop(), kind)
    assert issubclass(ran_on, expected)
    assert (ran_on is uvloop.Loop) == (kind == "uvloop")


@pytest.mark.parametrize("kind", event_loop.EVENT_LOOPS)
def test_arqs_worker_runs_on_the_installed_loop(kind: event_loop.EventLoop, no_current_loop: None) -> None:
    loop = event_loop.install(kind)
    worker = Worker(functions=[noop], redis_settings=RedisSettings(), handle_signals=True)
    assert worker.loop is loop
    assert isinstance(loop, uvloop.Loop) == (kind == "uvloop")
    assert loop.run_until_complete(kind_of_loop()) is type(loop)
