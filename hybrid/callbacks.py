"""Calling application callbacks that may be plain or coroutine functions."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def call_maybe_async(callback: Callable[..., T | Awaitable[T]], *args: object) -> T:
    """Call `callback(*args)` and await the result when it is awaitable."""
    result = callback(*args)
    if inspect.isawaitable(result):
        return await result
    return result
