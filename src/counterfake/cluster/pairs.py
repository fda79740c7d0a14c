"""``pairs --cluster``: a collection's pairs found with the cluster's cores.

A pairs run's time goes into two steps per image (pairs/steps.py): extracting its signature,
and finding what it may derive from (its candidates, verified). Both are sent to Ray tasks in
batches, which run on any node with a free core. The candidates come from the collection's
index split over shard actors (shards.py, every key read in full, as pairs' own index reads
them), and the signatures a task verifies against are read from Ray's object store, where the
driver put them in blocks. Everything after (face boxes, grouping, the short passes that settle
the clusters, the document) runs on the driver, as on one machine: the answers are the same.

Every node opens the images at the absolute path the driver names: the collection must be on
storage every node mounts at the same place. The collection's index has no registry to reload
from, so a node lost during the run fails it in one line; run it again.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from counterfake.cluster import ClusterError
from counterfake.cluster.shards import AskedShards, ShardedIndex
from counterfake.pairs.model import Picture, Tentative
from counterfake.pairs.steps import extract, query_of, shortlist, tentatives
from counterfake.signature.extract import Signature
from counterfake.thresholds import Thresholds

if TYPE_CHECKING:
    from counterfake.pairs.finder import PairFinder

BATCH = 8  # images a task takes: enough to outweigh a task's start, few enough to spread
IN_FLIGHT = 4  # batches sent per core of the cluster before the first is waited for
BLOCK = 64  # signatures put into the object store as one object


@dataclass(frozen=True)
class CollectionView(AskedShards):
    """The collection as a task sees it: its index's shards, and its signatures in blocks."""

    blocks: dict[int, Any]  # key // BLOCK -> the object holding those keys' signatures
    run: str  # this run's own name: a task process kept from an earlier run drops its blocks

    def signature(self, key: int) -> Signature:
        global _run
        import ray

        if _run != self.run:  # a task process keeps the blocks it read for this run only
            _blocks.clear()
            _run = self.run
        block = key // BLOCK
        if block not in _blocks:
            _blocks[block] = ray.get(self.blocks[block])
        return _blocks[block][key]


_run = ""  # the run whose blocks ``_blocks`` holds, in this task process
_blocks: dict[int, dict[int, Signature]] = {}


def extract_batch(pictures: list[tuple[Picture, str | None]], max_pixels: int) -> list[Picture]:
    """Pass 1 for a batch of (picture, the absolute path to open), run as a Ray task."""
    return [extract(picture, max_pixels, file) for picture, file in pictures]


def tentatives_batch(
    view: CollectionView,
    thresholds: Thresholds,
    max_pixels: int,
    pictures: list[tuple[Picture, str | None]],
) -> list[tuple[int, list[int], list[Tentative]]]:
    """Pass 2's first step for a batch of (picture, the absolute path to open), run as a
    Ray task: what ``PairFinder.tentatives_of`` gives on one machine."""
    answers: list[tuple[int, list[int], list[Tentative]]] = []
    for picture, file in pictures:
        query = query_of(picture, max_pixels, file)
        if query is None:
            answers.append((picture.key, [], []))
            continue
        candidates = shortlist(view, query, picture.key, thresholds)
        verified, found = tentatives(
            picture.key, query, candidates, view.signature, thresholds, view.size
        )
        answers.append((picture.key, verified, found))
    return answers


class ClusterSpread:
    """Passes 1 and 2 of a pairs run (``pairs.finder.Spread``) on a Ray cluster's tasks."""

    def __init__(self, ray: ModuleType, shards: int) -> None:
        self.ray, self.shards = ray, shards
        self._extract = ray.remote(num_cpus=1, max_retries=3)(extract_batch)
        self._tentatives = ray.remote(num_cpus=1, max_retries=3)(tentatives_batch)
        self.cores = int(ray.cluster_resources().get("CPU", 1))

    def extract(self, pictures: list[Picture], max_pixels: int) -> Iterable[Picture]:
        return self._spread(pictures, lambda batch: self._extract.remote(batch, max_pixels))

    def tentatives(
        self, pictures: list[Picture], finder: PairFinder
    ) -> Iterable[tuple[int, list[int], list[Tentative]]]:
        keys = sorted(finder.signatures)
        index = ShardedIndex(self.ray, None, self.shards, skip_crowded_keys=False)
        blocks: dict[int, Any] = {}
        for start in range(0, len(keys), BLOCK):
            block = {key: finder.signatures[key] for key in keys[start : start + BLOCK]}
            blocks[keys[start] // BLOCK] = self.ray.put(block)
            for key, signature in block.items():
                index.add(key, signature)
        index.prepare()
        view = CollectionView(index.actors(), len(finder.signatures), blocks, uuid.uuid4().hex)
        settings = (finder.thresholds, finder.max_pixels)
        yield from self._spread(
            pictures, lambda batch: self._tentatives.remote(view, *settings, batch)
        )

    def _spread(self, pictures: Sequence[Picture], send: Any) -> Iterator[Any]:
        """Each picture's answer, in order, from tasks sent ``BATCH`` pictures at a time with
        at most ``IN_FLIGHT`` batches per core waiting; a task that fails even after Ray's
        retries stops the run with one line."""
        waiting: deque[Any] = deque()
        for start in range(0, len(pictures), BATCH):
            batch = [(picture, _absolute(picture)) for picture in pictures[start : start + BATCH]]
            waiting.append(send(batch))
            while len(waiting) > IN_FLIGHT * self.cores:
                yield from self._answers(waiting.popleft())
        while waiting:
            yield from self._answers(waiting.popleft())

    def _answers(self, ref: Any) -> list[Any]:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as error:
            problem = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ClusterError(f"a pairs task failed on the cluster ({problem})") from None


def _absolute(picture: Picture) -> str | None:
    return None if picture.file is None else os.path.abspath(picture.file)
