"""The event loop a process runs on: uvloop where it is installed (a dependency on Linux), else
asyncio's own; ``RR_EVENT_LOOP=asyncio`` chooses asyncio's anyway (docs/performance.md has what
uvloop saves per line)."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["EVENT_LOOPS", "EventLoop", "default_event_loop", "install", "loop_factory", "run"]

T = TypeVar("T")
EventLoop = Literal["uvloop", "asyncio"]
EVENT_LOOPS: tuple[EventLoop, ...] = ("uvloop", "asyncio")


def default_event_loop() -> EventLoop:
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def loop_factory(kind: EventLoop) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def install(kind: EventLoop) -> asyncio.AbstractEventLoop:
    """A new loop of ``kind``, made this thread's current loop: arq's ``Worker`` takes the
    current loop (``asyncio.get_event_loop()``) when it is built and runs on it."""
    loop = loop_factory(kind)()
    asyncio.set_event_loop(loop)
    return loop


def run(main: Coroutine[Any, Any, T], kind: EventLoop) -> T:
    """``asyncio.run`` on a loop of ``kind``."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)
