"""``scan --cluster``: images matched by Ray tasks over the cluster's cores.

The command's machine (the driver) lists the files, as a scan on one machine does, indexes the
registry into shards (shards.py) and sends the images in batches to tasks, which run on any
node with a free core: each decodes its images, asks the shards for candidates and verifies
them against signatures it reads from the registry. Results come back in input order and are
written by the driver, so resuming, reports and evidence are those of any scan.

Every node reads the images at the path the driver names (its absolute path): the scanned files
must be on storage every node mounts at the same place. Videos, and the rest of what is not a
plain image file, are matched on the driver (its matcher asks the same shards).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from counterfake.cluster import ClusterError
from counterfake.cluster.shards import AskedShards, ShardedIndex
from counterfake.imaging import ImageError
from counterfake.inputs import Item, expand, item_key, read_image
from counterfake.loading import SignatureCache, cached_matcher
from counterfake.matching import Match, Matcher, Thresholds
from counterfake.registry import Registry
from counterfake.results import FileResult
from counterfake.scan import SIGNATURE_CACHE, Scanner
from counterfake.signature.extract import make_query
from counterfake.sources.telegram import ExportEntry, ExportSummary
from counterfake.video.decode import is_animation, is_video_path

BATCH = 8  # images a task matches: enough to outweigh a task's start, few enough to spread
IN_FLIGHT = 4  # batches sent per core of the cluster before the first is waited for
Waiting = tuple[Item | FileResult, str | None]  # an item (or resumed result), its task's file


@dataclass(frozen=True)
class ShardView(AskedShards):
    """The shards as a scan's task sees them, and the registry it verifies against.

    A shard lost during a task fails the task; the driver starts the shard again and sends
    the batch once more.
    """

    db: str  # the registry, which every node reaches: signatures are verified against it


_workers: dict[str, tuple[Matcher, SignatureCache]] = {}  # a task process's, by registry


def match_images(
    view: ShardView, thresholds: Thresholds, max_pixels: int, files: list[tuple[str, str]]
) -> list[tuple[str | None, list[Match], str | None]]:
    """(sha256, matches, error) of each (path as given, absolute path), run as a Ray task.

    The registry connection and the signature cache are kept for the task process's next
    batches (the registry a scan matches against does not change during it).
    """
    if view.db not in _workers:
        registry = Registry(view.db)
        _workers[view.db] = cached_matcher(view, registry.signature, thresholds, SIGNATURE_CACHE)
    matcher, _ = _workers[view.db]
    matcher.index, matcher.thresholds = view, thresholds
    answers: list[tuple[str | None, list[Match], str | None]] = []
    for given, absolute in files:
        try:
            sha256, rgb = read_image(absolute, max_pixels)
        except ImageError as error:
            answers.append((None, [], str(ImageError(given, error.problem))))
            continue
        answers.append((sha256, matcher.match(make_query(rgb)), None))
    return answers


def scan_on_cluster(
    scanner: Scanner,
    index: ShardedIndex,
    paths: Iterable[str | os.PathLike],
    *,
    masks_dir: str | os.PathLike | None = None,
    exports: list[ExportSummary] | None = None,
    done: dict[str, FileResult] | None = None,
) -> Iterator[FileResult]:
    """A result for every file under ``paths``, in order, as ``Scanner.scan`` gives them."""
    import ray

    task = ray.remote(num_cpus=1, max_retries=3)(match_images)
    cores = int(ray.cluster_resources().get("CPU", 1))
    finished = done or {}
    views = [_view(index)]  # the last one made: made again when a shard was lost
    waiting: deque[tuple[list[Waiting], Any, list[tuple[str, str]]]] = deque()
    window: list[Waiting] = []
    files: list[tuple[str, str]] = []

    def send() -> None:
        nonlocal window, files
        if window:
            ref = task.remote(views[-1], *_settings(scanner), files) if files else None
            waiting.append((window, ref, files))
        window, files = [], []

    for item in expand(paths, exports):
        held = finished.get(item_key(item))
        source = _remote_file(item) if held is None else None
        window.append((held or item, source))
        if source is not None:
            files.append((source, os.path.abspath(source)))
        if len(files) >= BATCH or len(window) >= BATCH * BATCH:  # a run of videos, resumed files
            send()
        while len(waiting) > IN_FLIGHT * cores:
            yield from _results(scanner, index, views, task, masks_dir, *waiting.popleft())
    send()
    while waiting:
        yield from _results(scanner, index, views, task, masks_dir, *waiting.popleft())


def _view(index: ShardedIndex) -> ShardView:
    if index.db is None:
        raise ClusterError("a scan on a cluster needs a registry its nodes can read")
    index.prepare()  # asks every shard: one lost is started again
    return ShardView(index.actors(), len(index), index.db)


def _settings(scanner: Scanner) -> tuple[Thresholds, int]:
    return scanner.thresholds, scanner.max_pixels


def _remote_file(item: Item) -> str | None:
    """The image file a task matches for this item; None for what the driver handles."""
    source = item.source if isinstance(item, ExportEntry) else item
    if not isinstance(source, str) or is_video_path(source) or is_animation(source):
        return None
    return source


def _results(
    scanner: Scanner,
    index: ShardedIndex,
    views: list[ShardView],
    task: Any,
    masks_dir: str | os.PathLike | None,
    window: list[Waiting],
    ref: Any,
    files: list[tuple[str, str]],
) -> Iterator[FileResult]:
    """The window's results in order: a task's answers for its images, the rest here."""
    answers = iter(_answers(scanner, index, views, task, ref, files) if ref is not None else [])
    for item, source in window:
        if isinstance(item, FileResult):
            yield item
            continue
        if source is None:
            yield scanner.scan_item(item, masks_dir)
            continue
        sha256, matches, error = next(answers)
        if error is not None or sha256 is None:
            result = FileResult(source, error=error)
        else:
            result = scanner.image_result(source, sha256, matches, masks_dir)
        if isinstance(item, ExportEntry):
            result.path, result.context = item.path, item.context
        yield result


def _answers(
    scanner: Scanner,
    index: ShardedIndex,
    views: list[ShardView],
    task: Any,
    ref: Any,
    files: list[tuple[str, str]],
) -> list[tuple[str | None, list[Match], str | None]]:
    """A task's answers; a task that failed (a shard lost under it) is sent once more after
    the lost shards are started again, and then each of its files gets the error."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayError:
        pass
    try:
        views.append(_view(index))
        return ray.get(task.remote(views[-1], *_settings(scanner), files))
    except (ray.exceptions.RayError, ClusterError) as error:
        problem = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return [
            (None, [], f"{given}: not matched on the cluster ({problem})") for given, _ in files
        ]
