"""Several service processes on one port that share one loaded index (``serve --workers N``).

A worker's memory is mostly its candidate index (docs/service.md has the figure per
registered photo), so N workers that each load the registry hold N copies of it. Here the
parent process loads the indexes once, closes its database connection, and forks the
workers: the kernel shares the loaded pages between them until one writes to a page (a
withdrawal marks a few rows dead; a segment joined later is the worker's own). Each worker
then opens its own database connections, serves the shared listening socket with uvicorn, and
follows the change feed from where the parent loaded, like any worker.

The parent only supervises: it stops the workers on SIGTERM or SIGINT, and replaces a worker
that dies, forked again from the loaded indexes (it catches up with the feed on its first
match). A worker that dies within MIN_LIFETIME seconds of starting stops the whole service, so
that a fault at start (an unreachable database) is not retried forever.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import time

import uvicorn

from counterfake.registry import Registry
from counterfake.service.app import create_app
from counterfake.service.context import ServiceSettings
from counterfake.service.engine import LoadedIndexes, load_indexes

log = logging.getLogger(__name__)
MIN_LIFETIME = 10.0  # seconds


def serve_workers(settings: ServiceSettings, host: str, port: int, workers: int) -> int:
    """Serve with ``workers`` forked processes until stopped; the exit status."""
    try:  # before loading, which takes minutes for a large registry
        listener = socket.create_server((host, port), backlog=2048)
    except OSError as error:
        raise OSError(error.errno, error.strerror, f"{host}:{port}") from error
    with Registry(settings.db) as registry:  # closed before forking: connections are per process
        loaded = load_indexes(registry, settings.index_file, kind=settings.index_kind)
    gc.freeze()  # the loaded objects are never collected, so collections leave their pages shared
    started: dict[int, float] = {}
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in started:
            with contextlib.suppress(ProcessLookupError):  # reaped, not yet forgotten
                os.kill(pid, signal.SIGTERM)

    def spawn() -> None:
        pid = _fork_worker(settings, loaded, listener)
        started[pid] = time.monotonic()
        if stopping:  # a stop that came while this worker was forked did not reach it
            os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(workers):
        if not stopping:
            spawn()
    status = 0
    while started:
        pid, _ = os.wait()
        lived = time.monotonic() - started.pop(pid)
        if stopping:
            continue
        if lived < MIN_LIFETIME:
            log.error("worker %d exited %.1f s after it started; stopping the service", pid, lived)
            status = 1
            stop(signal.SIGTERM, None)
            continue
        log.warning("worker %d exited; starting another", pid)
        spawn()
    listener.close()
    return status


def _fork_worker(settings: ServiceSettings, loaded: LoadedIndexes, listener: socket.socket) -> int:
    stops = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # the parent's handler must not run in a worker
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        return pid
    status = 1
    try:
        for stop in stops:  # uvicorn installs its own on start
            signal.signal(stop, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        app = create_app(settings, loaded)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listener])
        status = 0
    except BaseException:
        log.exception("worker %d failed", os.getpid())
    finally:
        os._exit(status)
