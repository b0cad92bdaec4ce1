"""The value types of the original's ``aiodiskdb.local_types``: :class:`ItemLocation`,
:class:`WriteEvent` and :class:`EventsHandlers`."""

import asyncio
import inspect
import sys
import typing

from aiodiskdb_rs._native import ItemLocation, WriteEvent

__all__ = ["ItemLocation", "WriteEvent", "EventsHandlers"]

_HOOKS = ("on_start", "on_stop", "on_failure", "on_index_drop", "on_write")


def _is_coroutine_function(value: typing.Any) -> bool:
    if inspect.iscoroutinefunction(value):
        return True
    # asyncio's check also knows the markers of older code; it is deprecated in 3.14.
    return sys.version_info < (3, 14) and asyncio.iscoroutinefunction(value)


class EventsHandlers:
    """The five event hooks, assignable at any time (``db.events.on_write = callback``).

    Each hook is ``None`` or a coroutine function; the database calls it in a new task on
    the event loop that runs it, after the fact, with the time (``time.time()``, a float)
    first:

    - ``on_start(timestamp)``: the database is open;
    - ``on_stop(timestamp)``: the database stopped, everything persisted;
    - ``on_failure(timestamp)``: a write or sync failed; writes are refused until reopen;
    - ``on_write(timestamp, event: WriteEvent)``: a range became durable;
    - ``on_index_drop(timestamp, index, size)``: a data file was deleted.

    Assigning anything else raises ``TypeError``, as in the original.
    """

    __slots__ = {
        "on_start": "``async def on_start(timestamp)``: the database is open.",
        "on_stop": "``async def on_stop(timestamp)``: the database stopped.",
        "on_failure": "``async def on_failure(timestamp)``: a write or sync failed.",
        "on_index_drop": "``async def on_index_drop(timestamp, index, size)``: a file was deleted.",
        "on_write": "``async def on_write(timestamp, event)``: ``event``, a WriteEvent, is durable.",
    }

    on_start: typing.Optional[typing.Callable[..., typing.Coroutine[typing.Any, typing.Any, typing.Any]]]
    on_stop: typing.Optional[typing.Callable[..., typing.Coroutine[typing.Any, typing.Any, typing.Any]]]
    on_failure: typing.Optional[typing.Callable[..., typing.Coroutine[typing.Any, typing.Any, typing.Any]]]
    on_index_drop: typing.Optional[typing.Callable[..., typing.Coroutine[typing.Any, typing.Any, typing.Any]]]
    on_write: typing.Optional[typing.Callable[..., typing.Coroutine[typing.Any, typing.Any, typing.Any]]]

    def __init__(self) -> None:
        for name in _HOOKS:
            object.__setattr__(self, name, None)

    def __setattr__(self, key: str, value: typing.Any) -> None:
        if value is not None and not _is_coroutine_function(value):
            raise TypeError(f"{key} must be a coroutine")
        object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        hooks = ", ".join(f"{n}={getattr(self, n)!r}" for n in _HOOKS)
        return f"EventsHandlers({hooks})"
