"""The passes of a pairs run: every image indexed, scanned against all the others, and the
clusters settled by short passes over what the first ones left open.

Why this module holds several passes: they share the index, the signatures, the face boxes
computed on demand and the worker pool, and each is a few dozen lines.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from counterfake import __version__
from counterfake.imaging import DEFAULT_MAX_PIXELS, ImageError
from counterfake.index.candidates import CandidateIndex
from counterfake.index.votes import Candidate
from counterfake.inputs import Item, read_image
from counterfake.masks import DIGEST_CHARACTERS, write_mask
from counterfake.matching import Instance, Match, decide, verify, verify_and_decide, with_face
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
    jpeg_quantisation,
    picture_of,
    split_videos,
)
from counterfake.pairs.relations import geometry, textured_agreement
from counterfake.pairs.scenes import scene_groups
from counterfake.pairs.spill import SpilledSignatures
from counterfake.parallel import in_parallel
from counterfake.results import PairsDocument
from counterfake.signature.extract import (
    Query,
    Signature,
    make_query,
    make_signature,
    reference_face,
)
from counterfake.sources.telegram import ExportSummary
from counterfake.thresholds import Thresholds
from counterfake.video.pairs import PhotoItem, add_video_pairs

RELATIONS_PER_QUERY = 3  # verified relations after which an image stops verifying candidates


class PairFinder:
    """Finds pairs and clusters in a collection; see the package's docstring for how."""

    def __init__(
        self,
        *,
        thresholds: Thresholds | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        workers: int = 1,
    ) -> None:
        self.thresholds = thresholds or Thresholds()
        self.max_pixels = max_pixels
        self.workers = workers
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

        def extract(picture: Picture) -> Picture:
            if picture.file is None:
                return picture
            try:
                sha256, rgb = read_image(picture.file, self.max_pixels)
                size = os.stat(picture.file).st_size
            except ImageError as error:
                return replace(picture, error=str(error))
            except OSError as error:
                return replace(picture, error=f"{picture.path}: {error.strerror or error}")
            signature = make_signature(  # its mirror: a scanned image (pairs/contest.py)
                rgb, picture.path, sha256, exchange=False, face=False, mirror=True
            )
            return replace(
                picture,
                sha256=sha256,
                signature=signature,
                bytes_per_pixel=size / max(1, rgb.shape[0] * rgb.shape[1]),
                quantisation=jpeg_quantisation(picture.file),
            )

        done = list(in_parallel(extract, pictures, self.workers))
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
        for key, candidates, tentatives in in_parallel(self._tentatives, readable, self.workers):
            collection.candidates[key] = candidates
            found[key] = tentatives
        sources = sorted({t.source for ts in found.values() for t in ts} - set(self._faces))
        for key, face in in_parallel(self._face_of, sources, self.workers):
            self._faces[key] = face
        for key in sorted(found):
            for tentative in found[key]:
                relation = self._settle(pictures[key], tentative, masks_dir)
                if relation is not None:
                    collection.relations[relation.source, relation.derivative] = relation

    def _shortlist(self, query: Query, key: int) -> Iterator[Candidate]:
        """The candidates worth verifying for image ``key``, best first, itself excluded."""
        t = self.thresholds
        taken = 0
        for candidate in self.index.candidates(
            query.features.descriptors, t.candidates + 1, query.mirror_features().descriptors
        ):
            if candidate.photo_id == key:
                continue
            if candidate.votes < t.min_votes or taken == t.candidates:
                return
            taken += 1
            yield candidate

    def _tentatives(self, picture: Picture) -> tuple[int, list[int], list[Tentative]]:
        """(image, candidates verified, alignments that pass without the face check)."""
        query = self._query(picture)
        if query is None:
            return picture.key, [], []
        shortlist: list[int] = []
        found: dict[int, Tentative] = {}
        for candidate in self._shortlist(query, picture.key):
            if len(found) == RELATIONS_PER_QUERY:
                break
            shortlist.append(candidate.photo_id)
            signature = self.signatures[candidate.photo_id]
            instances = verify(query, signature, candidate.mirrored, self.thresholds)
            if self._judge(0, query, signature, instances) is None:
                continue
            best = found.get(candidate.photo_id)
            if best is None or instances[0].inliers > best.instances[0].inliers:
                found[candidate.photo_id] = Tentative(
                    candidate.photo_id,
                    picture.key,
                    Frame(query.shape, query.scale),
                    instances,
                    [geometry(query, i.transform, signature) for i in instances],
                )
        return picture.key, shortlist, list(found.values())

    def _settle(
        self, picture: Picture, tentative: Tentative, masks_dir: str | os.PathLike | None
    ) -> Relation | None:
        """The tentative alignment decided again with its source's face box."""
        signature = self._with_face(tentative.source)
        instances = [with_face(i, signature) for i in tentative.instances]
        match = self._judge(tentative.source, tentative.frame, signature, instances)
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
            query = self._query(picture)
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
            query = self._query(pictures[derivative])
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

    def _query(self, picture: Picture) -> Query | None:
        if picture.file is None:
            return None
        try:
            _, rgb = read_image(picture.file, self.max_pixels)
        except ImageError:
            return None  # it was read in pass 1; a file changed since simply gets no pairs
        return make_query(rgb)

    def relate_query(
        self, picture: Picture, query: Query, masks_dir: str | os.PathLike | None = None
    ) -> tuple[list[int], list[Relation]]:
        """(the candidates verified, the relations found) for one prepared image."""
        shortlist: list[int] = []
        relations: dict[int, Relation] = {}
        for candidate in self._shortlist(query, picture.key):
            if len(relations) == RELATIONS_PER_QUERY:
                break
            shortlist.append(candidate.photo_id)
            relation = self._verify(
                picture, query, candidate.photo_id, candidate.mirrored, masks_dir
            )
            if relation is not None:
                best = relations.get(relation.source)
                if best is None or relation.score > best.score:
                    relations[relation.source] = relation
        return shortlist, list(relations.values())

    def _verify(
        self,
        picture: Picture,
        query: Query,
        source: int,
        mirrored: bool,
        masks_dir: str | os.PathLike | None,
    ) -> Relation | None:
        """``matching.verify_and_decide``, with the source's face box computed on demand, and
        what a pair needs beyond a match (``_accepted``)."""
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
        if match is None or not _accepted(match, signature):
            return None
        shape = geometry(query, match.instances[0].transform, signature)
        frame = Frame(query.shape, query.scale)
        return self._relation(picture, frame, signature, match, shape, masks_dir)

    def _judge(
        self,
        source: int,
        query: Query | Frame,
        signature: Signature,
        instances: list[Instance],
    ) -> Match | None:
        """``matching.decide`` over this collection, as a source -> derivative relation: the
        collection is the registry the number of false alarms is counted in."""
        if not instances:
            return None
        match = decide(
            source,
            query,  # type: ignore[arg-type]  # a Frame has what decide reads: shape, scale
            signature,
            instances,
            self.thresholds,
            registry_size=len(self.signatures),
        )
        return match if match is not None and _accepted(match, signature) else None

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


def _accepted(match: Match, signature: Signature) -> bool:
    """Whether a match of ``signature`` is a relation: another photo of the same scene is not,
    nor an agreement that rests on plain areas (``relations.textured_agreement``)."""
    return match.kind != "same_scene" and textured_agreement(match, signature)
