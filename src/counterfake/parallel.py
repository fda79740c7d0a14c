"""Work spread over processes: ``in_parallel`` maps a function over items, in order.

Workers are forked, so they inherit the function (often a closure that could not be pickled)
and everything it refers to, such as a candidate index, without copying. One worker means no
process at all. Ctrl-C is the parent's to handle: it stops the pool and keeps what was finished.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
CHUNK = 4  # items handed to a worker at once: small, so results come back in steady order

_job: Callable[[Any], Any] | None = None  # what a forked worker runs; set just before the fork


def default_workers() -> int:
    """One worker per core, at most eight."""
    return max(1, min(os.cpu_count() or 1, 8))


def _run_job(item: Any) -> Any:
    assert _job is not None
    return _job(item)


def _worker_start(initializer: Callable[[], object]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    initializer()


def _nothing() -> None:
    return None


def in_parallel(
    function: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    initializer: Callable[[], object] = _nothing,
) -> Iterator[R]:
    """``map`` over ``workers`` forked processes, in order; in this process for one worker.

    ``initializer`` runs once in each worker before its first item (in this process when
    there is one worker): it opens what must not cross a fork, such as a database connection.
    """
    if workers <= 1:
        initializer()
        yield from map(function, items)
        return
    global _job
    _job = function
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_worker_start, initargs=(initializer,)) as pool:
        yield from pool.imap(_run_job, items, chunksize=CHUNK)
