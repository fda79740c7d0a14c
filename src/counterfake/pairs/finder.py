"""The passes of a pairs run: every image indexed, scanned against all the others, and the
clusters settled by short passes over what the first ones left open.

Why this module holds several passes: they share the index, the signatures, the face boxes
computed on demand and the worker pool, and each is a few dozen lines.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np

from counterfake import __version__
from counterfake.imaging import DEFAULT_MAX_PIXELS, ImageError
from counterfake.index.candidates import CandidateIndex
from counterfake.inputs import Item, read_image
from counterfake.masks import DIGEST_CHARACTERS, write_mask
from counterfake.matching import Match, verify_and_decide, with_face
from counterfake.pairs.contest import OverlayContest
from counterfake.pairs.document import render
from counterfake.pairs.grouping import affected_clusters, compositions, organise
from counterfake.pairs.model import (
    Cluster,
    Collection,
    Frame,
    Geometry,
    Organisation,
    Picture,
    Relation,
    Tentative,
)
from counterfake.pairs.pictures import (
    collection_items,
    picture_of,
    split_videos,
)
from counterfake.pairs.relations import geometry
from counterfake.pairs.scenes import scene_groups
from counterfake.pairs.spill import SpilledSignatures
from counterfake.pairs.steps import (
    RELATIONS_PER_QUERY,
    accepted,
    extract,
    judge,
    query_of,
    shortlist,
    tentatives,
)
from counterfake.parallel import in_parallel
from counterfake.results import PairsDocument
from counterfake.signature.extract import (
    Query,
    Signature,
    reference_face,
)
from counterfake.sources.telegram import ExportSummary
from counterfake.thresholds import Thresholds
from counterfake.video.pairs import PhotoItem, add_video_pairs


class Spread(Protocol):
    """Where the heavy steps (steps.py) run: forked workers on this machine (``LocalSpread``),
    or a Ray cluster's tasks (cluster/pairs.py)."""

    def extract(self, pictures: list[Picture], max_pixels: int) -> Iterable[Picture]:
        """Pass 1: each picture with its signature or its error, in order."""
        ...

    def tentatives(
        self, pictures: list[Picture], finder: PairFinder
    ) -> Iterable[tuple[int, list[int], list[Tentative]]]:
        """Pass 2's first step: ``finder.tentatives_of`` of each picture, in order."""
        ...


@dataclass(frozen=True)
class LocalSpread:
    """The steps in ``workers`` processes forked from this one (``parallel.in_parallel``)."""

    workers: int

    def extract(self, pictures: list[Picture], max_pixels: int) -> Iterable[Picture]:
        return in_parallel(partial(extract, max_pixels=max_pixels), pictures, self.workers)

    def tentatives(
        self, pictures: list[Picture], finder: PairFinder
    ) -> Iterable[tuple[int, list[int], list[Tentative]]]:
        return in_parallel(finder.tentatives_of, pictures, self.workers)


class PairFinder:
    """Finds pairs and clusters in a collection; see the package's docstring for how."""

    def __init__(
        self,
        *,
        thresholds: Thresholds | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        workers: int = 1,
        spread: Spread | None = None,
    ) -> None:
        """``spread``: where passes 1 and 2 verify (default: ``workers`` forked processes);
        the shorter passes after them run in ``workers`` processes here."""
        self.thresholds = thresholds or Thresholds()
        self.max_pixels = max_pixels
        self.workers = workers
        self.spread = spread or LocalSpread(workers)
        self.index = CandidateIndex(skip_crowded_keys=False)  # copies of one photo crowd keys
        self.signatures = SpilledSignatures()
        self.contest = OverlayContest(self.signatures, self.thresholds)
        self._faces: dict[int, np.ndarray] = {}  # face boxes, computed only where needed
        self._files: dict[int, str] = {}

    def close(self) -> None:
        """Delete the temporary file that holds the signatures."""
        self.signatures.close()

    def find(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        masks_dir: str | os.PathLike | None = None,
        exports: list[ExportSummary] | None = None,
    ) -> PairsDocument:
        """The pairs document for everything under ``paths``: every pass, then the rendering;
        videos are paired among themselves and with the photos they show by video/pairs.py
        and added to the document.

        Masks that no reported pair shows are deleted from ``masks_dir``.
        """
        try:
            items, videos = split_videos(collection_items(paths, exports))
            collection = self.collect(items)
            self.relate(collection, masks_dir)
            organisation = self.settle_clusters(collection, masks_dir)
            affected = affected_clusters(organisation.clusters)
            originals = [
                cluster.original
                for cluster, counted in zip(organisation.clusters, affected, strict=True)
                if counted
            ]
            scenes = scene_groups(originals, self.signatures, collection)
            doc = render(
                collection,
                organisation,
                affected,
                dict(zip(originals, scenes, strict=True)),
                tool=f"counterfake {__version__}",
            )
            if videos:
                photos = [
                    PhotoItem(p.path, p.key)
                    for p in collection.pictures
                    if p.key in self.signatures
                ]
                add_video_pairs(doc, videos, photos, self.signatures.__getitem__)
        finally:
            self.close()
        if masks_dir is not None:
            shown = {pair.mask for pair in doc.pairs}
            for relation in collection.relations.values():
                if relation.mask and relation.mask not in shown:
                    Path(relation.mask).unlink(missing_ok=True)
        return doc

    # ---- pass 1: extract ---------------------------------------------------------------------

    def collect(self, items: Iterable[Item]) -> Collection:
        """Every image's reference signature, indexed; unreadable ones keep their error."""
        pictures = [picture_of(key, item) for key, item in enumerate(items)]
        done = list(self.spread.extract(pictures, self.max_pixels))
        for picture in done:
            if picture.signature is not None and picture.file is not None:
                self.add(picture.key, picture.signature, picture.file)
                picture.signature = None  # kept once, in self.signatures
        return Collection(done)

    def add(self, key: int, signature: Signature, file: str) -> None:
        """Index one image's signature; ``file`` is read again only for its face box."""
        self.index.add(key, signature)
        self.signatures[key] = signature
        self._files[key] = file

    # ---- pass 2: relate ----------------------------------------------------------------------

    def relate(self, collection: Collection, masks_dir: str | os.PathLike | None) -> None:
        """Each image scanned against all the others.

        Verification runs first without face boxes; the face box of each source that passed
        is then computed once, and the alignments found are localised again with it and
        decided, exactly as for a registered photo with its face box.
        """
        if masks_dir is not None:
            Path(masks_dir).mkdir(parents=True, exist_ok=True)
        pictures = {p.key: p for p in collection.pictures}
        readable = [p for p in collection.pictures if p.key in self.signatures]
        found: dict[int, list[Tentative]] = defaultdict(list)
        for key, candidates, found_here in self.spread.tentatives(readable, self):
            collection.candidates[key] = candidates
            found[key] = found_here
        sources = sorted({t.source for ts in found.values() for t in ts} - set(self._faces))
        for key, face in in_parallel(self._face_of, sources, self.workers):
            self._faces[key] = face
        for key in sorted(found):
            for tentative in found[key]:
                relation = self._settle(pictures[key], tentative, masks_dir)
                if relation is not None:
                    collection.relations[relation.source, relation.derivative] = relation

    def tentatives_of(self, picture: Picture) -> tuple[int, list[int], list[Tentative]]:
        """(image, candidates verified, alignments that pass without the face check)."""
        query = query_of(picture, self.max_pixels)
        if query is None:
            return picture.key, [], []
        candidates = shortlist(self.index, query, picture.key, self.thresholds)
        verified, found = tentatives(
            picture.key,
            query,
            candidates,
            self.signatures.__getitem__,
            self.thresholds,
            len(self.signatures),
        )
        return picture.key, verified, found

    def _settle(
        self, picture: Picture, tentative: Tentative, masks_dir: str | os.PathLike | None
    ) -> Relation | None:
        """The tentative alignment decided again with its source's face box."""
        signature = self._with_face(tentative.source)
        instances = [with_face(i, signature) for i in tentative.instances]
        match = judge(
            tentative.source,
            tentative.frame,
            signature,
            instances,
            self.thresholds,
            len(self.signatures),
        )
        if match is None:
            return None
        shape = next(
            g for i, g in zip(instances, tentative.geometry, strict=True) if i is match.instances[0]
        )
        return self._relation(picture, tentative.frame, signature, match, shape, masks_dir)

    def _face_of(self, key: int) -> tuple[int, np.ndarray]:
        return key, self._with_face(key).face

    # ---- pass 3: settle the clusters ---------------------------------------------------------

    def settle_clusters(
        self, collection: Collection, masks_dir: str | os.PathLike | None
    ) -> Organisation:
        """Group the images, then verify what the grouping leaves open, and group again.

        In order: each cluster's original reaches past its cluster (``bridge``); the
        verifications ``organise`` asks for are made (the seam that tells a composition from a
        crop, measured in the image that holds the other); and every member not yet verified
        against its cluster's original is, so that the pair reported is (original, member).
        """
        organisation = organise(collection, self.contest)
        if self.bridge(collection, organisation.clusters, masks_dir):
            organisation = organise(collection, self.contest)
        if organisation.unmeasured:
            before = len(collection.relations)
            self.confirm(collection, organisation.unmeasured, masks_dir)
            if len(collection.relations) > before:
                organisation = organise(collection, self.contest)
        wanted = [
            (cluster.original, member)
            for cluster in organisation.clusters
            for member in cluster.members
            if member != cluster.original and (cluster.original, member) not in collection.relations
        ]
        if wanted:
            self.confirm(collection, wanted, masks_dir)
        return organisation

    def bridge(
        self,
        collection: Collection,
        clusters: list[Cluster],
        masks_dir: str | os.PathLike | None,
    ) -> int:
        """Each cluster's original verifies the candidates it did not reach before.

        An image stops verifying after RELATIONS_PER_QUERY relations, so edits of one photo that
        found each other first can miss the photo they were made from and form a cluster of
        their own: the same photo counted twice, and a collage can find the photo's crops and
        other collages first and be left outside its cluster. Each original asks the index
        again, past its own cluster's members (its best candidates), and verifies, as their
        derivative, up to ``candidates`` images outside its cluster that nothing relates to it
        yet. So does each composition (an image that holds a photo framed by a seam) that is in
        one cluster or none: a collage holds two photos, and its relations can all have gone to
        the photo beside and to other collages and screenshots, which never join a photo's
        group (``grouping``), leaving it outside its own photo's cluster. Returns the
        number of relations added.
        """
        t = self.thresholds
        pictures = {p.key: p for p in collection.pictures}
        clusters_of: dict[int, list[set[int]]] = defaultdict(list)
        for cluster in clusters:
            for member in cluster.members:
                clusters_of[member].append(cluster.members)
        composed = compositions(collection)
        askers = [(cluster.original, cluster.members) for cluster in clusters] + [
            (key, set().union({key}, *clusters_of[key]))
            for key in sorted(composed)
            if len(clusters_of[key]) <= 1
        ]

        def reach(asker: tuple[int, set[int]]) -> list[Relation]:
            key, members = asker
            picture = pictures[key]
            query = query_of(picture, self.max_pixels)
            if query is None:
                return []
            found: list[Relation] = []
            tried = 0
            # its own cluster's members come first: ask past them for t.candidates others
            wanted = len(members) + t.candidates + 1
            mirror = query.mirror_features().descriptors
            for candidate in self.index.candidates(query.features.descriptors, wanted, mirror):
                if candidate.votes < t.min_votes or tried == t.candidates:
                    break
                other = candidate.photo_id
                if (
                    other in members
                    or (other, picture.key) in collection.relations
                    or (picture.key, other) in collection.relations
                ):
                    continue
                tried += 1
                relation = self._verify(picture, query, other, candidate.mirrored, masks_dir)
                if relation is not None:
                    found.append(relation)
            return found

        added = 0
        for relations in in_parallel(reach, askers, self.workers):
            for relation in relations:
                collection.relations[relation.source, relation.derivative] = relation
                added += 1
        return added

    def confirm(
        self,
        collection: Collection,
        wanted: list[tuple[int, int]],
        masks_dir: str | os.PathLike | None,
    ) -> None:
        """Verify chosen (source, derivative) pairs in that direction."""
        by_derivative: dict[int, list[int]] = defaultdict(list)
        for source, derivative in wanted:
            by_derivative[derivative].append(source)
        pictures = {p.key: p for p in collection.pictures}

        def check(derivative: int) -> list[Relation]:
            query = query_of(pictures[derivative], self.max_pixels)
            if query is None:
                return []
            found = []
            for source in by_derivative[derivative]:
                for mirrored in (False, True):
                    relation = self._verify(
                        pictures[derivative], query, source, mirrored, masks_dir
                    )
                    if relation is not None:
                        found.append(relation)
                        break
            return found

        for relations in in_parallel(check, sorted(by_derivative), self.workers):
            for relation in relations:
                collection.relations[relation.source, relation.derivative] = relation

    # ---- one image, one relation ------------------------------------------------------------

    def relate_query(
        self, picture: Picture, query: Query, masks_dir: str | os.PathLike | None = None
    ) -> tuple[list[int], list[Relation]]:
        """(the candidates verified, the relations found) for one prepared image."""
        verified: list[int] = []
        relations: dict[int, Relation] = {}
        for candidate in shortlist(self.index, query, picture.key, self.thresholds):
            if len(relations) == RELATIONS_PER_QUERY:
                break
            verified.append(candidate.photo_id)
            relation = self._verify(
                picture, query, candidate.photo_id, candidate.mirrored, masks_dir
            )
            if relation is not None:
                best = relations.get(relation.source)
                if best is None or relation.score > best.score:
                    relations[relation.source] = relation
        return verified, list(relations.values())

    def _verify(
        self,
        picture: Picture,
        query: Query,
        source: int,
        mirrored: bool,
        masks_dir: str | os.PathLike | None,
    ) -> Relation | None:
        """``matching.verify_and_decide``, with the source's face box computed on demand, and
        what a pair needs beyond a match (``steps.accepted``)."""
        signature = self.signatures[source]
        match = verify_and_decide(
            source,
            query,
            signature,
            mirrored,
            self.thresholds,
            registry_size=len(self.signatures),
            face=lambda: self._with_face(source),
        )
        if match is None or not accepted(match, signature):
            return None
        shape = geometry(query, match.instances[0].transform, signature)
        frame = Frame(query.shape, query.scale)
        return self._relation(picture, frame, signature, match, shape, masks_dir)

    def _with_face(self, key: int) -> Signature:
        """The signature with its face box, computed once per process from the file."""
        if key not in self._faces:
            try:
                _, rgb = read_image(self._files[key], self.max_pixels)
            except ImageError:
                self._faces[key] = np.zeros(0, np.int32)
            else:
                self._faces[key] = reference_face(rgb)
        return replace(self.signatures[key], face=self._faces[key])

    def _relation(
        self,
        picture: Picture,
        frame: Frame,
        signature: Signature,
        match: Match,
        shape: Geometry,
        masks_dir: str | os.PathLike | None,
    ) -> Relation:
        """The relation ``match`` makes, its mask written into ``masks_dir``."""
        mask_path = None
        if masks_dir is not None and match.mask is not None:
            digests = [picture.sha256 or "", signature.sha256]
            names = [digest[:DIGEST_CHARACTERS] for digest in digests]
            mask_path = write_mask(masks_dir, picture.path, names, match.mask)
        return Relation(
            source=match.photo_id,
            derivative=picture.key,
            kind=match.kind,
            score=match.score,
            altered_fraction=match.altered_fraction,
            inliers=match.inliers,
            mask=mask_path,
            shown=shape.shown,
            covered=shape.covered,
            resolution=shape.resolution,
            seam=shape.seam,
            mirrored=shape.mirrored,
            agreeing=match.instances[0].agreeing,
            nfa=match.nfa,
        )
