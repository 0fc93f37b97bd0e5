"""Tasks a coroutine starts to overlap work, awaited in turn rather than gathered.

Awaiting the slower step inline and a started task afterwards resumes the caller once, when the slower
step is done; ``asyncio.gather`` costs an extra turn of the event loop for each step it waits on, which on a
busy loop is time a reply waits.
"""

import asyncio
from typing import Any


def discard(future: "asyncio.Future[Any]") -> None:
    """Cancel a task (or future) nobody will await, or mark its failure as seen (no "never retrieved" warning)."""
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()
