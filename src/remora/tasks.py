"""Stopping background asyncio tasks: every long-lived component does it the same way."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


async def stop_tasks(tasks: Iterable[asyncio.Task[object] | None]) -> None:
    """Cancel the tasks, then wait for each to finish (its cancellation is not an error)."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task
