"""The candidate index split by photo id over Ray actors, answering as one CandidateIndex.

Each shard is an actor holding a CandidateIndex of the entries whose id falls to it (id modulo
the number of shards). A search sends the scanned descriptors to every shard at once; each
returns its nearest rows, and the merge (index/votes.py) gives exactly the candidates of one
index over every entry. Which entries exist, and which registered photos each stands for, is
decided by the caller's SharedEntries, as in one process: the shards only hold rows.

**Registrations** reach a shard as the caller applies the change feed (service/engine.py):
an addition is sent with the next search (or a batch of them while loading), a withdrawal at
once, so both are in effect for the next match, as in one process.

**A shard lost** (its node died, or it stopped answering within ``call_timeout``) is started
again on another node and reloads its entries from the registry by id: the caller keeps the
ids each shard holds (8 bytes and a set's slot an entry, not the rows). The call that found it
lost is then answered by the new shard, so a match during a node's death waits for the reload
and is complete. Nothing is lost: the registry of record holds every signature.

**Nodes added** take shards over, one at a time, whenever ``compact`` (the service's feed
thread calls it) finds one node holding two shards more than another: the shard is loaded on
the new node from the registry while the old one answers, and swapped in once current.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from counterfake.cluster import ClusterError
from counterfake.db import is_postgres_url
from counterfake.index.candidates import CandidateIndex
from counterfake.index.votes import Candidate, merge_nearest, vote_both
from counterfake.registry import Registry
from counterfake.signature.extract import Signature

SEND_BATCH = 200  # signatures sent to a shard at once while loading (a few MB)
CALL_TIMEOUT = 30.0  # seconds a shard may take to answer before it is started elsewhere
_ATTEMPTS = 3  # times a call is tried on a shard started again before the caller is told


@dataclass(frozen=True)
class AskedShards:
    """The shards as a Ray task asks them for candidates (it never changes them): what
    ``scan --cluster`` and ``pairs --cluster`` send to their tasks, with what else each needs."""

    actors: list[Any]
    size: int  # entries indexed: what the number of false alarms counts

    def __len__(self) -> int:
        return self.size

    def candidates(
        self, descriptors: np.ndarray, limit: int, mirrored: np.ndarray | None = None
    ) -> list[Candidate]:
        return vote_both(self._nearest, descriptors, mirrored, limit)

    def _nearest(self, descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import ray

        descriptors = np.ascontiguousarray(descriptors, np.uint8)
        parts = ray.get([actor.nearest.remote(descriptors) for actor in self.actors])
        return merge_nearest(descriptors, parts)


class Shard:
    """One shard, run as a Ray actor: a CandidateIndex of its entries' rows."""

    def __init__(self, db: str | None, skip_crowded_keys: bool) -> None:
        self.db = db
        self.index = CandidateIndex(skip_crowded_keys=skip_crowded_keys, merge_on_search=False)

    def node(self) -> str:
        """The id of the Ray node this shard runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def add(self, signatures: list[tuple[int, Signature]]) -> None:
        for photo_id, signature in signatures:
            self.index.add(photo_id, signature)

    def load(self, photo_ids: list[int]) -> int:
        """Index these photos' signatures, read from the registry (withdrawn ones are skipped;
        their withdrawal reaches the caller's feed); how many were indexed."""
        if self.db is None:
            raise ClusterError("a shard with no registry cannot reload its photos")
        loaded = 0
        with Registry(self.db) as registry:
            for photo_id, signature in registry.signatures_by_id(photo_ids):
                self.index.add(photo_id, signature)
                loaded += 1
        self.index.prepare()
        return loaded

    def remove(self, photo_ids: list[int]) -> None:
        for photo_id in photo_ids:
            self.index.remove(photo_id)

    def nearest(self, descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.index.nearest(descriptors)

    def prepare(self) -> None:
        self.index.prepare()

    def compact(self) -> None:
        self.index.compact()


class ShardedIndex:
    """A candidate index over ``shards`` Ray actors, spread over the cluster's nodes.

    ``db`` is the registry shards reload from when one is lost or moved (a PostgreSQL URL
    in a real deployment: every node must reach it); None for an index with no registry
    behind it (a benchmark), which cannot recover a shard.
    """

    def __init__(
        self,
        ray: ModuleType,
        db: str | None,
        shards: int,
        *,
        skip_crowded_keys: bool = True,
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        if shards < 1:
            raise ValueError("an index needs at least one shard")
        if db is not None and not is_postgres_url(db):  # a file: the same for every process
            db = os.path.abspath(db)
        self._ray, self.db, self.call_timeout = ray, db, call_timeout
        self._actor = ray.remote(num_cpus=0, max_concurrency=8, max_restarts=0)(Shard)
        self._skip_crowded_keys = skip_crowded_keys
        self._lock = threading.Lock()  # guards the lists below
        self._moving = threading.Lock()  # one shard started again or moved at a time
        self._held: list[set[int]] = [set() for _ in range(shards)]
        self._unsent: list[list[tuple[int, Signature]]] = [[] for _ in range(shards)]
        nodes = self.alive_nodes()
        self._actors = [self._start(nodes[i % len(nodes)]) for i in range(shards)]
        self._nodes: list[str] = self._ray.get([actor.node.remote() for actor in self._actors])

    # ---- the CandidateIndex interface --------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return sum(map(len, self._held))

    def __contains__(self, photo_id: int) -> bool:
        with self._lock:
            return photo_id in self._held[self._shard_of(photo_id)]

    @property
    def shards(self) -> int:
        return len(self._actors)

    def add(self, photo_id: int, signature: Signature) -> None:
        """Index a photo: sent to its shard with the next search, or now if enough wait."""
        shard = self._shard_of(photo_id)
        with self._lock:
            self._held[shard].add(photo_id)
            self._unsent[shard].append((photo_id, signature))
            full = len(self._unsent[shard]) >= SEND_BATCH
        if full:
            self._send([shard])

    def remove(self, photo_id: int) -> None:
        """Stop answering with this photo, at once (what was sent before goes first)."""
        shard = self._shard_of(photo_id)
        with self._lock:
            self._held[shard].discard(photo_id)
        self._send([shard])
        self._call([shard], "remove", [photo_id])

    def prepare(self) -> None:
        """Send every addition and sort it into the shards' tables."""
        self._send(range(self.shards))
        self._call(range(self.shards), "prepare")

    def candidates(
        self, descriptors: np.ndarray, limit: int, mirrored: np.ndarray | None = None
    ) -> list[Candidate]:
        """The candidates one index over every shard's entries would give, best first."""
        self._send(range(self.shards))
        return vote_both(self._nearest, descriptors, mirrored, limit)

    def _nearest(self, descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        descriptors = np.ascontiguousarray(descriptors, np.uint8)
        return merge_nearest(descriptors, self._call(range(self.shards), "nearest", descriptors))

    def compact(self) -> None:
        """Join the shards' segments, and move a shard to a node holding fewer when nodes
        came or went (the service's feed thread calls this every loop)."""
        self._send(range(self.shards))
        self._call(range(self.shards), "compact")
        self.rebalance()

    # ---- placement ---------------------------------------------------------------------

    def alive_nodes(self) -> list[str]:
        """The ids of the cluster's live nodes, in a stable order."""
        nodes = sorted(n["NodeID"] for n in self._ray.nodes() if n.get("Alive"))
        if not nodes:
            raise ClusterError("the Ray cluster has no live node")
        return nodes

    def actors(self) -> list[Any]:
        """The shards' actors as they are now (a scan's tasks ask them directly)."""
        with self._lock:
            return list(self._actors)

    def placement(self) -> list[str]:
        """The node each shard runs on."""
        with self._lock:
            return list(self._nodes)

    def rebalance(self) -> bool:
        """Move one shard from the node holding the most to the live node holding the fewest,
        when they differ by two or more; True if one moved."""
        nodes = self.alive_nodes()
        with self._lock:
            counts = {node: 0 for node in nodes}
            for node in self._nodes:
                if node in counts:
                    counts[node] += 1
            fullest = max(nodes, key=lambda node: counts[node])
            emptiest = min(nodes, key=lambda node: counts[node])
            if counts[fullest] - counts[emptiest] < 2:
                return False
            shard = self._nodes.index(fullest)
            actor = self._actors[shard]
        return self._restart(shard, actor, emptiest)

    # ---- calls, and shards lost --------------------------------------------------------

    def _shard_of(self, photo_id: int) -> int:
        return photo_id % len(self._held)

    def _start(self, node: str | None) -> Any:
        strategy: Any = "DEFAULT"
        if node is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            # hard: soft affinity was not honoured for actors of no CPU (Ray 2.60); a node
            # that died meanwhile fails the start, which _restart retries elsewhere
            strategy = NodeAffinitySchedulingStrategy(node, soft=False)
        return self._actor.options(scheduling_strategy=strategy).remote(
            self.db, self._skip_crowded_keys
        )

    def _send(self, shards: Sequence[int] | range) -> None:
        """Send the additions waiting for ``shards``."""
        batches: list[tuple[int, list[tuple[int, Signature]]]] = []
        with self._lock:
            for shard in shards:
                unsent, self._unsent[shard] = self._unsent[shard], []
                batches += [
                    (shard, unsent[start : start + SEND_BATCH])
                    for start in range(0, len(unsent), SEND_BATCH)
                ]
        for shard, batch in batches:  # a lost shard reloads them from the registry instead
            self._call([shard], "add", batch)

    def _call(self, shards: Sequence[int] | range, method: str, *args: object) -> list[Any]:
        """``method(*args)`` on each of ``shards`` at once; their answers, in order. A shard
        lost meanwhile is started again and asked again."""
        errors = self._lost_errors()
        answers: dict[int, Any] = {}
        todo = list(shards)
        for _ in range(_ATTEMPTS):
            with self._lock:
                actors = {shard: self._actors[shard] for shard in todo}
            refs = {shard: getattr(actors[shard], method).remote(*args) for shard in todo}
            lost = []
            for shard, ref in refs.items():
                try:
                    answers[shard] = self._ray.get(ref, timeout=self.call_timeout)
                except errors:
                    lost.append(shard)
            for shard in lost:
                self._restart(shard, actors[shard], None)
            if not lost:
                return [answers[shard] for shard in shards]
            todo = lost
        raise ClusterError(f"index shard(s) {todo} could not be started again on the cluster")

    def _lost_errors(self) -> tuple[type[BaseException], ...]:
        exceptions = self._ray.exceptions
        return (exceptions.RayActorError, exceptions.GetTimeoutError)

    def _restart(self, shard: int, actor: Any, node: str | None) -> bool:
        """Start ``shard`` anew on ``node`` (None: the live node holding the fewest shards,
        other than the one it ran on), load its entries from the registry there, and put it
        in place of ``actor``; False if another thread did so first."""
        if self.db is None:
            raise ClusterError(f"index shard {shard} was lost, and there is no registry to reload")
        with self._moving:
            with self._lock:
                if self._actors[shard] is not actor:
                    return False
                before, was_on = set(self._held[shard]), self._nodes[shard]
            if node is None:
                node = self._least_loaded(avoid=was_on)
            fresh = self._start(node)
            try:
                self._ray.get(fresh.load.remote(sorted(before)))
                with self._lock:  # what changed while it loaded, then the swap
                    now = self._held[shard]
                    added, gone = sorted(now - before), sorted(before - now)
                    self._unsent[shard] = []  # they are in ``added``, read from the registry
                    self._ray.get([fresh.load.remote(added), fresh.remove.remote(gone)])
                    self._nodes[shard] = self._ray.get(fresh.node.remote())
                    self._actors[shard] = fresh
            except self._ray.exceptions.RayError:  # its node died too: the caller tries again
                self._ray.kill(fresh)
                return False
        self._ray.kill(actor)
        return True

    def _least_loaded(self, avoid: str) -> str:
        nodes = [node for node in self.alive_nodes() if node != avoid] or self.alive_nodes()
        with self._lock:
            return min(nodes, key=self._nodes.count)
