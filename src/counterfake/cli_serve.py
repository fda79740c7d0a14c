"""The ``serve`` command, and the ``--cluster`` and ``--index`` options it shares with
``scan`` (``--cluster`` with ``pairs`` too): the service on one machine (one process, or forked
workers sharing one index), or in front of a Ray cluster holding the index's shards (cluster/,
docs/cluster.md)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from types import ModuleType

from counterfake.cluster import ClusterError, connect
from counterfake.cluster.shards import ShardedIndex  # Ray itself is imported by connect
from counterfake.db import is_postgres_url
from counterfake.imaging import DEFAULT_MAX_PIXELS
from counterfake.index.packed import INDEX_KINDS
from counterfake.registered import default_db_path


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def max_pixels_option(parser: argparse.ArgumentParser) -> None:
    """``--max-pixels``, which every command that decodes images takes."""
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse images with more pixels than this (default {DEFAULT_MAX_PIXELS:,})",
    )


def cluster_options(parser: argparse.ArgumentParser, reach: str = "the registry") -> None:
    """``--cluster`` and ``--shards``; every node of the cluster must reach ``reach``."""
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="split the index over a Ray cluster's nodes: ray://HEAD:10001 (needs "
        f"'counterfake[cluster]'; every node must reach {reach}, see docs/cluster.md)",
    )
    parser.add_argument(
        "--shards",
        type=positive_int,
        help="index shards on the cluster (default: two per node at start)",
    )


def index_option(parser: argparse.ArgumentParser) -> None:
    """``--index``: which candidate index holds the registry (docs/index.md)."""
    parser.add_argument(
        "--index",
        choices=list(INDEX_KINDS),
        default="hash",
        help="the candidate index: hash (default) or compact, about 1.2 kB a photo instead of "
        "about 42 kB, finding up to 2.3 points fewer heavily edited derivatives (docs/index.md)",
    )


def sharded_index(args: argparse.Namespace, db: str) -> ShardedIndex | None:
    """The index split over the cluster ``--cluster`` names, or None without one; a
    ClusterError in one line if Ray is missing, the cluster unreachable, or the compact index
    is asked for (the shards hold the multi-index hash)."""
    if not args.cluster:
        return None
    if args.index != "hash":
        raise ClusterError(
            f"--index {args.index} cannot be used with --cluster: its shards "
            "hold the multi-index hash (--index hash)"
        )
    ray = connect(args.cluster)
    return ShardedIndex(ray, db, shard_count(args, ray))


def shard_count(args: argparse.Namespace, ray: ModuleType) -> int:
    """``--shards``, or two per live node of the cluster."""
    return int(args.shards or 2 * len([node for node in ray.nodes() if node.get("Alive")]))


def serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default=None, help="registry file or postgresql:// URL (default: as for register)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--rate-limit", type=float, default=50.0, help="requests a second per API key (average)"
    )
    parser.add_argument("--burst", type=int, default=200, help="requests a key may send at once")
    parser.add_argument(
        "--max-body-mb", type=float, default=32.0, help="largest request body, in megabytes"
    )
    max_pixels_option(parser)
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds before a request is answered 503"
    )
    parser.add_argument(
        "--sync-video-seconds",
        type=float,
        default=20.0,
        help="videos up to this long are answered at once, longer ones as a job (default 20)",
    )
    parser.add_argument(
        "--max-upload-signatures",
        type=positive_int,
        default=200,
        help="most signatures in one .cfsig a registrar uploads (more: 413; default 200)",
    )
    parser.add_argument(
        "--max-subject-photos",
        type=positive_int,
        default=1000,
        help="most photos registered for one subject (more: 422; default 1000)",
    )
    parser.add_argument(
        "--allow-private-webhooks",
        action="store_true",
        help="let webhooks call loopback, private and link-local addresses (refused by default)",
    )
    parser.add_argument(
        "--index-file",
        metavar="FILE",
        help="the packed candidate index a worker starts from and keeps up to date (default: "
        "the registry file's name + '.index' beside it; none for PostgreSQL)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="processes sharing one loaded index on this port (rate limits and /metrics are "
        "per process)",
    )
    index_option(parser)
    cluster_options(parser)


def serve(args: argparse.Namespace) -> int:
    import uvicorn  # imported here: the other commands need no web stack

    from counterfake.registry import Registry
    from counterfake.service.app import create_app
    from counterfake.service.context import ServiceSettings
    from counterfake.service.engine import load_indexes

    db = args.db or default_db_path()
    if args.cluster and args.workers > 1:
        raise ClusterError("--cluster serves from one process: leave out --workers")
    settings = ServiceSettings(
        db=db,
        index_file=args.index_file or (None if is_postgres_url(db) else f"{db}.index"),
        index_kind=args.index,
        rate=args.rate_limit,
        burst=args.burst,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_pixels=args.max_pixels,
        request_timeout=args.timeout,
        max_upload_signatures=args.max_upload_signatures,
        sync_video_seconds=args.sync_video_seconds,
        max_subject_photos=args.max_subject_photos,
        allow_private_webhooks=args.allow_private_webhooks,
    )
    if args.workers > 1:
        from counterfake.service.workers import serve_workers

        return serve_workers(settings, args.host, args.port, args.workers)
    loaded = None
    index = sharded_index(args, db)
    if index is not None:  # the shards load the registry's photos; no packed index file
        settings = replace(settings, index_file=None)
        with Registry(db) as registry:
            loaded = load_indexes(registry, index=index)
    uvicorn.run(create_app(settings, loaded), host=args.host, port=args.port, log_level="warning")
    return 0
