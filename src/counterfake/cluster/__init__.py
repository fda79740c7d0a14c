"""Beyond one machine: the candidate index split into shards held by Ray actors.

A registry that outgrows one machine's memory (DESIGN.md: 10 million photos a machine) is
split by photo id over shard actors spread across a Ray cluster (``pip install
'counterfake[cluster]'``). Only candidate search is sharded: a match fans out to every shard,
each returns its nearest rows, and the caller merges them and counts the votes once
(index/votes.py), which gives exactly the candidates one index would. Verification stays with
the caller, which reads the few signatures it verifies from the registry; PostgreSQL stays the
registry of record, and every shard loads its photos from it. See docs/cluster.md.

Ray is imported only here, when a cluster is asked for, so the default install never needs it.
"""

from __future__ import annotations

import logging
import socket
from types import ModuleType
from urllib.parse import urlsplit


class ClusterError(Exception):
    """A cluster that cannot be used: Ray missing, or the address unreachable (one line)."""


def ray_module() -> ModuleType:
    """Ray, or a ClusterError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError("--cluster needs Ray: pip install 'counterfake[cluster]'") from None
    return ray


def connect(address: str) -> ModuleType:
    """Join the Ray cluster at ``address`` (``ray://HEAD:10001`` from any machine, or
    ``HEAD:6379`` from one of its nodes) as a driver; Ray, connected.

    The address is tried with a plain TCP connection first: Ray itself retries an unreachable
    address for a minute before failing with a page of log.
    """
    ray = ray_module()
    if ray.is_initialized():
        return ray
    split = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = split.hostname, split.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise ClusterError(f"{address}: not a Ray address (ray://HOST:PORT or HOST:PORT)")
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise ClusterError(f"{address}: cannot reach the Ray cluster ({reason})") from None
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as error:  # Ray raises many kinds; the user needs the first line of one
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ClusterError(f"{address}: cannot join the Ray cluster ({first})") from None
    return ray
