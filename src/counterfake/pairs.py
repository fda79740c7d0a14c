"""Source -> derivative pairs within a collection, with no registry.

Why this module is over 1,300 lines: it still holds seven ideas (the data model, the passes and
their caches, relation geometry, direction and grouping, the overlay contest, scenes, the JSON
document). Splitting it into a ``pairs/`` package is the first item of the open issue on the
code's shape and has not been done yet; until then, read it by the section rules below.

An investigator handed a folder or a channel export wants to know which images were made from
which others. Comparing every image with every other is quadratic; instead every image is
treated as if it were registered, and every image is then scanned against that registry:

1. **Extract** (in parallel): each image's reference signature (local features of it and of its
   mirror image, and the coarse grid) goes into the in-process candidate index. The face box,
   the costliest part of a signature, is left out here.
2. **Query** (in parallel): each image, decoded again, asks the index for its candidates and
   verifies them with ``matching.verify`` and ``matching.decide``, the code and thresholds that
   match registered photos. The face box of a candidate is computed only once a candidate has
   passed geometric verification, which few do; the cells the alignment already compared are
   then read within it (``matching.with_face``) and the alignment decided again, so the decision
   is exactly the one a registered photo would get, and no image is decoded a third time.
3. **Order and group**: each verified relation says which of its two images is the source (see
   ``_direction``); the images are ranked by those votes, every relation points from the higher
   to the lower, and each image that nothing outranks is an **original**. A cluster is an
   original and everything that descends from it; an image may belong to two clusters (a
   collage of two photos). Every derivative that was not verified against its cluster's
   original directly is verified against it in a last, short pass, so the pair reported is
   (original, derivative), with the mask in the derivative's pixels.
4. **Scenes**: originals that share much of their background (another photo taken at the same
   place) are joined into one scene: a homography over their local features with many
   inliers, a test looser than verification and used for nothing else.

No face recognition: a face box says where a face is, never whose.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage

from counterfake import __version__
from counterfake.cells import cell_differences
from counterfake.evidence import TEXTURED_CONTRAST
from counterfake.framing import frame_overlap, has_seam
from counterfake.imaging import DEFAULT_MAX_PIXELS, ImageError
from counterfake.index.memory import Candidate, CandidateIndex
from counterfake.matching import (
    Instance,
    Match,
    SignatureQuery,
    Thresholds,
    decide,
    grid_in_frame,
    verify,
    with_face,
)
from counterfake.scan import Item, expand, in_parallel, read_image
from counterfake.signature.extract import (
    Query,
    Signature,
    make_query,
    make_signature,
    reference_face,
)
from counterfake.signature.grid import dequantise
from counterfake.signature.spill import SpilledSignatures
from counterfake.sources.telegram import ExportEntry, ExportSummary
from counterfake.video.decode import is_animation, is_video_path
from counterfake.video.pairs import VideoItem, add_video_pairs

COMPOSITION_COVER = 0.85  # below this share of an image covered by the other, it holds more
MIN_TEXTURED_AGREEING = 0.15  # share of the source's visible cells textured and agreeing
STRONG_OVERLAP = 0.5  # two copies of one photo each show at least this much of the other
RELATIONS_PER_QUERY = 3  # verified relations after which an image stops verifying candidates
RESOLUTION_STEP = 1.25  # a copy this much smaller (linear) than the other is the derivative
SCENE_MIN_INLIERS = 40  # homography inliers between two originals of the same scene
SCENE_PIXELS = 6.0  # RANSAC tolerance for the scene test, in the 512-px reference frame
CONTENDERS = 6  # a group's best untouched copies compared cell by cell for its original
WITNESSES = 8  # further copies of the group that say which of two contenders they resemble
DISPUTE_MULTIPLE = 3.0  # cells where two contenders differ this many times their median
MIN_DISPUTED = 3  # disputed cells a witness must see to take sides
RUNNERS_UP = 2  # a contest's winner is verified as the derivative of this many runners-up


@dataclass
class Picture:
    """One image of the collection: where it is shown, where it is read, what it holds."""

    key: int
    path: str  # as shown to the reader (an export entry's path)
    file: str | None  # the file to open; None when it could not be listed
    context: dict[str, Any] | None = None
    sha256: str | None = None
    error: str | None = None
    signature: Signature | None = None
    bytes_per_pixel: float = 0.0
    quantisation: float = 0.0  # mean JPEG luminance quantiser (0: not JPEG); lower is finer


@dataclass
class Relation:
    """``derivative`` was verified to hold ``source``: the match, measured in the derivative."""

    source: int
    derivative: int
    kind: str
    score: float
    altered_fraction: float
    inliers: int
    mask: str | None
    shown: float  # share of the source's frame that lies inside the derivative
    covered: float  # share of the derivative's frame that the source covers
    resolution: float  # derivative's pixels per source pixel of the shared content
    seam: bool  # the source's outline is drawn in the derivative as a straight edge
    mirrored: bool  # the derivative shows the source flipped
    agreeing: float  # share of the source's visible cells that agree in the derivative
    nfa: float = 0.0  # expected chance alignments as good as this one; see evidence.py

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "score": round(self.score, 4),
            "nfa": float(f"{self.nfa:.3g}"),
            "altered_fraction": round(self.altered_fraction, 4),
            "mask": self.mask,
            "inliers": self.inliers,
        }


@dataclass(frozen=True)
class Frame:
    """What deciding on an alignment and drawing its mask need of a scanned image once its
    pixels are gone: its size and its working scale (a stand-in for a ``Query``)."""

    shape: tuple[int, int]
    scale: float


@dataclass(frozen=True)
class Geometry:
    """How one alignment of a source lies in a derivative: the evidence of ``_direction``."""

    shown: float  # share of the source's frame that lies inside the derivative
    covered: float  # share of the derivative's frame that the source covers
    resolution: float  # derivative's pixels per source pixel of the shared content
    seam: bool  # the source's outline is drawn in the derivative as a straight edge
    mirrored: bool  # the derivative shows the source flipped


@dataclass
class Tentative:
    """``source`` verified in ``derivative`` without the source's face box, with all that
    deciding again with it needs, so that the derivative is not read a second time."""

    source: int
    derivative: int
    frame: Frame
    instances: list[Instance]
    geometry: list[Geometry]  # one per instance


@dataclass
class Collection:
    """What the passes found, before ordering and grouping."""

    pictures: list[Picture]
    relations: dict[tuple[int, int], Relation] = field(default_factory=dict)  # (src, deriv)
    candidates: dict[int, list[int]] = field(default_factory=dict)


class PairFinder:
    """Finds pairs and clusters in a collection; see the module's docstring for how."""

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
        self._faces: dict[int, np.ndarray] = {}  # face boxes, computed only where needed
        self._files: dict[int, str] = {}
        self._contests: dict[tuple, dict[int, int]] = {}  # organise asks twice
        self._transforms: dict[tuple[int, int], np.ndarray | None] = {}  # image -> contender
        self._differences: dict[int, dict[tuple[int, int], np.ndarray]] = {}  # by reference

    def close(self) -> None:
        """Delete the temporary file that holds the signatures."""
        self.signatures.close()

    # ---- the passes --------------------------------------------------------------------------

    def find(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        masks_dir: str | os.PathLike | None = None,
        exports: list[ExportSummary] | None = None,
    ) -> dict[str, Any]:
        """The pairs document for everything under ``paths`` (see ``document``); videos are
        paired among themselves by video/pairs.py."""
        try:
            items, videos = [], []
            for item in _items(paths, exports):
                video = as_video(item)
                if video is None:
                    items.append(item)
                else:
                    videos.append(video)
            collection = self.collect(items)
            self.relate(collection, masks_dir)
            doc = document(collection, self, masks_dir)
            if videos:
                add_video_pairs(doc, videos)
            return doc
        finally:
            self.close()

    def collect(self, items: Iterable[Item]) -> Collection:
        """Pass 1: every image's reference signature, indexed; unreadable ones keep their error."""
        pictures = [_picture(key, item) for key, item in enumerate(items)]

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
            signature = make_signature(rgb, picture.path, sha256, exchange=False, face=False)
            return replace(
                picture,
                sha256=sha256,
                signature=signature,
                bytes_per_pixel=size / max(1, rgb.shape[0] * rgb.shape[1]),
                quantisation=jpeg_quantisation(picture.file),
            )

        done = list(in_parallel(extract, pictures, self.workers, lambda: None))
        for picture in done:
            if picture.signature is not None:
                self.add(picture.key, picture.signature, picture.file)
                picture.signature = None  # kept once, in self.signatures
        return Collection(done)

    def add(self, key: int, signature: Signature, file: str) -> None:
        """Index one image's signature; ``file`` is read again only for its face box."""
        self.index.add(key, signature)
        self.signatures[key] = signature
        self._files[key] = file

    def relate(self, collection: Collection, masks_dir: str | os.PathLike | None) -> None:
        """Pass 2: each image scanned against all the others.

        Verification runs first without face boxes; the face box of each source that passed
        is then computed once, and the alignments found are localised again with it and
        decided, exactly as for a registered photo with its face box.
        """
        if masks_dir is not None:
            Path(masks_dir).mkdir(parents=True, exist_ok=True)
        pictures = {p.key: p for p in collection.pictures}
        readable = [p for p in collection.pictures if p.key in self.signatures]
        found: dict[int, list[Tentative]] = defaultdict(list)
        for key, candidates, tentatives in in_parallel(
            self._tentatives, readable, self.workers, lambda: None
        ):
            collection.candidates[key] = candidates
            found[key] = tentatives
        sources = sorted({t.source for ts in found.values() for t in ts} - set(self._faces))
        for key, face in in_parallel(self._face_of, sources, self.workers, lambda: None):
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
        for candidate in self.index.candidates(query.features.descriptors, t.candidates + 1):
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
        t = self.thresholds
        shortlist, found = [], {}
        for candidate in self._shortlist(query, picture.key):
            if len(found) == RELATIONS_PER_QUERY:
                break
            shortlist.append(candidate.photo_id)
            signature = self.signatures[candidate.photo_id]
            instances = verify(query, signature, candidate.mirrored, t)
            match = self._decide(0, query, signature, instances)
            if match is None or not textured_agreement(match, signature):
                continue
            best = found.get(candidate.photo_id)
            if best is None or instances[0].inliers > best.instances[0].inliers:
                found[candidate.photo_id] = Tentative(
                    candidate.photo_id,
                    picture.key,
                    Frame(query.shape, query.scale),
                    instances,
                    [_geometry(query, i.transform, signature) for i in instances],
                )
        return picture.key, shortlist, list(found.values())

    def _settle(
        self, picture: Picture, tentative: Tentative, masks_dir: str | os.PathLike | None
    ) -> Relation | None:
        """The tentative alignment decided again with its source's face box."""
        signature = self._with_face(tentative.source)
        instances = [with_face(i, signature) for i in tentative.instances]
        match = self._decide(tentative.source, tentative.frame, signature, instances)
        if match is None or not textured_agreement(match, signature):
            return None
        geometry = next(
            g for i, g in zip(instances, tentative.geometry, strict=True) if i is match.instances[0]
        )
        return self._relation(picture, tentative.frame, signature, match, geometry, masks_dir)

    def _face_of(self, key: int) -> tuple[int, np.ndarray]:
        return key, self._with_face(key).face

    def bridge(
        self,
        collection: Collection,
        clusters: list[dict[str, Any]],
        masks_dir: str | os.PathLike | None,
    ) -> int:
        """Pass 3: each cluster's original verifies the candidates it did not reach before.

        An image stops verifying after RELATIONS_PER_QUERY relations, so edits of one photo that
        found each other first can miss the photo they were made from and form a cluster of
        their own: the same photo counted twice, and a collage can find the photo's crops and
        other collages first and be left outside its cluster. Each original asks the index
        again, past its own cluster's members (its best candidates), and verifies, as their
        derivative, up to ``candidates`` images outside its cluster that nothing relates to it
        yet. So does each composition (an image that holds a photo framed by a seam) that is in
        one cluster or none: a collage holds two photos, and its relations can all have gone to
        the photo beside and to other collages and screenshots, which never join a photo's
        group (``_join_copies``), leaving it outside its own photo's cluster. Returns the
        number of relations added.
        """
        t = self.thresholds
        pictures = {p.key: p for p in collection.pictures}
        clusters_of: dict[int, list[set[int]]] = defaultdict(list)
        for cluster in clusters:
            for member in cluster["members"]:
                clusters_of[member].append(cluster["members"])
        composed = _compositions(collection)
        askers = [(cluster["original"], cluster["members"]) for cluster in clusters] + [
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
            found, tried = [], 0
            # its own cluster's members come first: ask past them for t.candidates others
            wanted = len(members) + t.candidates + 1
            for candidate in self.index.candidates(query.features.descriptors, wanted):
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
        for relations in in_parallel(reach, askers, self.workers, lambda: None):
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
        """Pass 3: verify chosen (source, derivative) pairs in that direction."""
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

        for relations in in_parallel(check, sorted(by_derivative), self.workers, lambda: None):
            for relation in relations:
                collection.relations[relation.source, relation.derivative] = relation

    def contest(self, contenders: list[int], witnesses: list[int]) -> dict[int, int]:
        """How many of the others each contender beats in ``overlay_contest``.

        Read from the signatures alone (no image is decoded): every image is aligned to the
        first contender's frame by verifying its signature there. Among the contenders that
        show the same frame as that one (each shows nearly all of the other), one that shows
        the photo with RESOLUTION_STEP times fewer pixels (linear) than another was resized
        down, as the resolution vote would have said had their relation been verified: it
        takes no part in the comparison (a downscale blurs only what the grid does not keep),
        and loses to each contender with that many more pixels. A contender whose frame holds
        more than the photo (a screenshot, a border) is not compared by its pixel count: a
        screen enlarges the photo it shows, and the resolution vote asks the same.
        """
        asked = (tuple(contenders), tuple(witnesses))
        if asked not in self._contests:
            reference = self.signatures[contenders[0]]
            grids = {}
            for key in (*contenders, *witnesses):
                aligned = self._aligned(key, contenders[0], reference)
                if aligned is not None:
                    grids[key] = aligned
            present = [key for key in contenders if key in grids]
            density = {  # of the contenders that show the first one's frame
                key: d
                for key in present
                if (d := self._density(key, contenders[0], reference)) is not None
            }
            finest = max(density.values(), default=0.0)
            resized = [key for key in density if density[key] * RESOLUTION_STEP < finest]
            present = [key for key in present if key not in resized]
            known = self._differences.setdefault(contenders[0], {})  # on this one's grid
            wins = overlay_contest(present, grids, self.thresholds, known)
            for key in density.keys() - resized:  # each beats the copies resized down from it
                wins[key] += sum(density[key] >= RESOLUTION_STEP * density[r] for r in resized)
            self._contests[asked] = dict(wins)
        return self._contests[asked]

    def _density(self, key: int, reference_key: int, reference: Signature) -> float | None:
        """Image ``key``'s pixels per reference pixel (linear) of the content they share; None
        when the two do not show the same frame (each nearly all of the other)."""
        if key == reference_key:
            return 1.0
        signature = self.signatures[key]
        transform = self._transforms[key, reference_key]
        shown, covered = frame_overlap(
            transform, signature.frame_width, signature.frame_height, reference
        )
        if min(shown, covered) < COMPOSITION_COVER:
            return None
        stretch = float(np.sqrt(abs(np.linalg.det(transform[:2, :2]))))  # key frame -> reference
        own = signature.width / signature.frame_width  # image pixels per frame pixel
        return own / stretch / (reference.width / reference.frame_width)

    def _aligned(
        self, key: int, reference_key: int, reference: Signature
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(image ``key``'s grid in the reference's cells, the cells it covers); None when its
        signature is not verified in the reference, either way round."""
        if key == reference_key:
            return dequantise(reference.grid), np.ones(reference.grid.shape[:2], bool)
        signature = self.signatures[key]
        if (key, reference_key) not in self._transforms:
            self._transforms[key, reference_key] = self._transform(signature, reference)
        transform = self._transforms[key, reference_key]
        return None if transform is None else grid_in_frame(signature, reference, transform)

    def _transform(self, signature: Signature, reference: Signature) -> np.ndarray | None:
        """Where ``signature``'s frame lies in the reference's, verified either way round."""
        for mirrored in (False, True):
            found = verify(SignatureQuery(signature), reference, mirrored, self.thresholds)
            if found:
                return found[0].transform
        return None

    def _query(self, picture: Picture) -> Query | None:
        try:
            _, rgb = read_image(picture.file, self.max_pixels)
        except ImageError:
            return None  # it was read in pass 1; a file changed since simply gets no pairs
        return make_query(rgb)

    def relate_query(
        self, picture: Picture, query: Query, masks_dir: str | os.PathLike | None = None
    ) -> tuple[list[int], list[Relation]]:
        """(the candidates verified, the relations found) for one prepared image."""
        shortlist, relations = [], {}
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
        """``matching.verify`` then ``decide``, with the source's face box computed on demand."""
        t = self.thresholds
        instances = verify(query, self.signatures[source], mirrored, t)
        if not instances:
            return None
        signature = self._with_face(source)
        instances = [with_face(i, signature) for i in instances]
        match = self._decide(source, query, signature, instances)
        if match is None or not textured_agreement(match, signature):
            return None
        geometry = _geometry(query, match.instances[0].transform, signature)
        frame = Frame(query.shape, query.scale)
        return self._relation(picture, frame, signature, match, geometry, masks_dir)

    def _decide(
        self,
        source: int,
        query: Query | Frame,
        signature: Signature,
        instances: list[Instance],
    ) -> Match | None:
        """``matching.decide`` over this collection, as a source -> derivative relation.

        The collection is the registry the number of false alarms is counted in. Another photo
        of the same scene is no relation.
        """
        if not instances:
            return None
        match = decide(
            source,
            query,
            signature,
            instances,
            self.thresholds,
            registry_size=len(self.signatures),
        )
        return None if match is None or match.kind == "same_scene" else match

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
        geometry: Geometry,
        masks_dir: str | os.PathLike | None,
    ) -> Relation:
        mask_path = None
        if masks_dir is not None and match.mask is not None:
            mask_path = str(
                Path(masks_dir)
                / f"{Path(picture.path).stem}.{picture.sha256[:12]}.{signature.sha256[:12]}.png"
            )
            if not cv2.imwrite(mask_path, match.mask):
                raise OSError(f"{mask_path}: could not write the mask")
        return Relation(
            source=match.photo_id,
            derivative=picture.key,
            kind=match.kind,
            score=match.score,
            altered_fraction=match.altered_fraction,
            inliers=match.inliers,
            mask=mask_path,
            shown=geometry.shown,
            covered=geometry.covered,
            resolution=geometry.resolution,
            seam=geometry.seam,
            mirrored=geometry.mirrored,
            agreeing=match.instances[0].agreeing,
            nfa=match.nfa,
        )


def as_video(item: Item) -> VideoItem | None:
    """The item as a video of the collection, or None if it is not one."""
    if isinstance(item, tuple):
        return None
    if isinstance(item, ExportEntry):
        if item.source is None:
            return None
        file, path, context = item.source, item.path, item.context
    else:
        file, path, context = item, item, None
    if is_video_path(file) or is_animation(file):
        return VideoItem(path, file, context)
    return None


def _items(
    paths: Iterable[str | os.PathLike], exports: list[ExportSummary] | None
) -> Iterator[Item]:
    """What the scan would read under ``paths``; a folder with no image in it is an error."""
    for path in paths:
        empty = True
        for item in expand([path], exports):
            empty = False
            yield item
        if empty and Path(path).is_dir():
            yield (str(path), f"{path}: no images in this folder")


def jpeg_quantisation(path: str) -> float:
    """The mean of a JPEG's luminance quantisation table: how coarsely it was last saved.

    A re-saved copy is usually saved more coarsely than what it was made from. Only the
    header is read; anything that is not a JPEG gives 0.
    """
    try:
        with PILImage.open(path) as image:
            tables = getattr(image, "quantization", None) or {}
    except Exception:  # a file that decoded a moment ago; any failure only loses this hint
        return 0.0
    table = tables.get(0)
    return float(np.mean(table)) if table else 0.0


def textured_agreement(match: Match, signature: Signature) -> bool:
    """Whether the agreement rests on textured content, not on plain areas.

    A registered photo is a photo; in a collection any image can be the source, screenshots
    included, and two screenshots of one app agree on its white screen and its interface, with
    different photos in them. Plain cells agree with anything, so a pair also needs
    MIN_TEXTURED_AGREEING of the source's visible cells to be textured and to agree. Set on that
    negative (two phone screenshots of different photos: 6%), not on any pair found: true pairs
    of the benchmark's photos agree on 27% and more.
    """
    textured = dequantise(signature.grid)[:, :, 3] >= TEXTURED_CONTRAST
    return any(
        float((i.agreeing_cells & textured)[i.visible_cells].mean()) >= MIN_TEXTURED_AGREEING
        for i in match.instances
        if i.agreeing_cells is not None and i.visible_cells.any()
    )


def _picture(key: int, item: Item) -> Picture:
    if isinstance(item, tuple):
        return Picture(key, item[0], None, error=item[1])
    if isinstance(item, ExportEntry):
        return Picture(key, item.path, item.source, item.context, error=item.error)
    return Picture(key, item, item)


# ---- geometry of one relation ----------------------------------------------------------------


def _geometry(query: Query, transform: np.ndarray, signature: Signature) -> Geometry:
    """How the source lies in the derivative under ``transform`` (see ``Geometry``)."""
    shown, covered = _overlap(transform, query, signature)
    stretch = float(np.sqrt(abs(np.linalg.det(transform[:2, :2]))))
    resolution = 1.0 / (stretch * query.scale) / (signature.width / signature.frame_width)
    seam = covered < COMPOSITION_COVER and has_seam(query.work, transform, signature)
    mirrored = float(np.linalg.det(transform[:2, :2])) < 0
    return Geometry(shown, covered, resolution, seam, mirrored)


def _overlap(transform: np.ndarray, query: Query, signature: Signature) -> tuple[float, float]:
    """(share of the source's frame inside the derivative, share of the derivative covered)."""
    height, width = query.work.shape[:2]
    return frame_overlap(transform, width, height, signature)


# ---- ordering, clusters, scenes --------------------------------------------------------------


def _direction(relation: Relation) -> tuple[int, str]:
    """+1 when the evidence says ``relation.source`` is the source, -1 the reverse, 0 neither.

    In order: a composition (the derivative holds the source framed by a seam: collage,
    screenshot, border) makes the framed photo the source; an image that holds more of the
    photo with no seam around the other is the one the other was cropped from; a copy with
    clearly fewer pixels of the shared content was resized down. That one image shows only part
    of the other says nothing alone (a crop of it, or a photo put into it?): only the larger
    image's pixels can tell, by the seam, and they are measured when it is the derivative side.
    Two copies of the same size tell nothing by their content.
    """
    if relation.covered < COMPOSITION_COVER:
        if relation.seam:
            return 1, "composition"
        if relation.shown >= COMPOSITION_COVER:
            return -1, "crop"
    if relation.shown >= COMPOSITION_COVER and relation.covered >= COMPOSITION_COVER:
        if relation.resolution * RESOLUTION_STEP < 1:
            return 1, "resolution"
        if relation.resolution > RESOLUTION_STEP:
            return -1, "resolution"
    return 0, "undetermined"


def _dated(picture: Picture) -> str | None:
    date = (picture.context or {}).get("date")
    return date if isinstance(date, str) else None


def _edge_evidence(
    a: int, b: int, collection: Collection, pictures: dict[int, Picture]
) -> tuple[int, str]:
    """+1 if ``a`` is the source of ``b``, -1 if the reverse, 0 if unknown; and why."""
    first, second = _dated(pictures[a]), _dated(pictures[b])
    if first and second and first != second:
        return (1 if first < second else -1), "Telegram date"
    votes, reasons = 0, []
    for (source, derivative), sign in (((a, b), 1), ((b, a), -1)):
        relation = collection.relations.get((source, derivative))
        if relation is not None:
            vote, reason = _direction(relation)
            votes += sign * vote
            if vote:
                reasons.append(reason)
    if votes:
        return (1 if votes > 0 else -1), reasons[0]
    return 0, "undetermined"


def _strong(relation: Relation | None) -> bool:
    """Whether a relation joins two copies of one photo: each shows most of the other."""
    return relation is not None and min(relation.shown, relation.covered) >= STRONG_OVERLAP


Contest = Callable[[list[int], list[int]], Mapping[int, int]]


def organise(collection: Collection, contest: Contest | None = None) -> dict[str, Any]:
    """Group the images into clusters, each under its original (before the last pass).

    Copies that each show most of the other (reposts, edits, crops, resizes) form one group,
    joined through chains of such relations (``_join_copies`` says which). An image that holds
    another only in part of its frame (a collage, a screenshot, a tight crop) joins the group
    of its source without merging groups: a collage of two photos belongs to both clusters.
    A group's original is its highest-ranked member: fewest direction votes lost; then the one
    that best stands for what its relatives show (``_consensus``); then most votes won, the
    finer JPEG quantisation, the larger file per pixel. With ``contest``
    (``PairFinder.contest``), the best untouched copies that the geometric evidence cannot
    tell apart are then compared directly (``_contested``).
    ``unmeasured`` lists the (source, derivative) verifications that would direct an edge
    between groups that nothing directs yet, and those of each contest's winner as the
    derivative of its runners-up: a screenshot measured only against crops of the photo holds
    more than they do with no seam around them, and only a whole copy shows its seam
    (see ``document``).
    """
    pictures = {p.key: p for p in collection.pictures}
    edges: dict[frozenset, tuple[int, str]] = {}
    for source, derivative in collection.relations:
        pair = frozenset((source, derivative))
        if pair not in edges:
            edges[pair] = _edge_evidence(*sorted(pair), collection, pictures)
    wins: dict[int, int] = defaultdict(int)
    losses: dict[int, int] = defaultdict(int)
    groups = _DisjointSets(key for pair in edges for key in pair)
    find = groups.find

    for pair, (vote, _) in edges.items():
        a, b = sorted(pair)
        wins[a] += vote
        wins[b] -= vote
        losses[a] += vote < 0
        losses[b] += vote > 0
    _join_copies(groups, collection)

    consensus = _consensus(collection)

    def evidence(key: int) -> tuple:
        """What geometry says of an image: direction votes lost, seen only inside
        compositions, shown mirrored by most of its relatives."""
        return -losses[key], *consensus[key][:2]

    def rank(key: int) -> tuple:
        picture = pictures[key]
        return (
            *evidence(key),
            *consensus[key][2:],
            wins[key],
            -picture.quantisation,
            picture.bytes_per_pixel,
            -key,
        )

    members: dict[int, set[int]] = defaultdict(set)
    for key in groups:
        members[find(key)].add(key)
    joined: dict[int, set[int]] = defaultdict(set)  # group -> images made from it, not in it
    derived: set[int] = set()  # images made from another group than their own
    unmeasured: list[tuple[int, int]] = []  # (source, derivative) worth verifying that way
    for pair, (vote, _) in edges.items():
        a, b = sorted(pair)
        if find(a) == find(b):
            continue
        if not vote:
            # only the seam in the pixels of the one that holds the other in less of its frame
            # tells a composition from a crop: ask for it; until then, guess a crop (the one
            # filled by the other was cut from it)
            vote = 1 if _cover(b, a, collection) <= _cover(a, b, collection) else -1
            holder, held = (a, b) if _cover(b, a, collection) < _cover(a, b, collection) else (b, a)
            if (held, holder) not in collection.relations:
                unmeasured.append((held, holder))
        source, derivative = (a, b) if vote > 0 else (b, a)
        joined[find(source)].add(derivative)
        derived.add(derivative)
    clusters = []
    for root, group_members in members.items():
        if group_members <= derived:
            continue  # made from other groups only (a collage): it appears in their clusters
        everyone = group_members | joined[root]
        if len(everyone) < 2:
            continue
        contenders = _untouched(group_members - derived, collection, rank)
        original = max(contenders, key=rank)
        if contest is not None:
            order = _contested(
                group_members - derived,
                group_members,
                rank,
                evidence,
                contest,
                lambda key: -pictures[key].quantisation,
            )
            original = order[0]
            # the winner measured in its own pixels against the runners-up: only there does a
            # screenshot or a border show the seam around the photo (see _direction)
            unmeasured += [
                (runner_up, original)
                for runner_up in order[1 : 1 + RUNNERS_UP]
                if (runner_up, original) not in collection.relations
            ]
        clusters.append({"original": original, "members": everyone})
    clusters.sort(key=lambda c: pictures[c["original"]].path)
    return {"edges": edges, "clusters": clusters, "pictures": pictures, "unmeasured": unmeasured}


def _compositions(collection: Collection) -> set[int]:
    """Images in which a photo was found framed by a seam: collages, screenshots, borders."""
    return {derivative for (_, derivative), r in collection.relations.items() if r.seam}


def _join_copies(groups: _DisjointSets, collection: Collection) -> None:
    """Join into one group the copies of one photo: images related strongly (``_strong``).

    Two rules keep one image from joining two photos' groups. A composition (an image in
    which a photo was found framed by a seam: a collage, a screenshot, a border) holds two
    photos, or a photo and a screen: it joins the groups of what it holds (``organise``),
    never merges them, however much of its frame each fills. And an image whose pasted
    texture came from another photo of the collection is related to both photos, with no seam
    around the paste, and agrees with the texture's photo only where the texture is: so a
    relation in which less than half of the source agrees merges two groups of several images
    only when at least two images of each are related across, never through one image alone
    (the donor of a texture pasted into edits of two photos). A relation in which most of the
    source agrees is a copy's, and merges the groups it joins (the edits of a photo that
    found one another first, and the photo found by their original in ``bridge``).
    Relations are taken best corroborated first (the two images have the most relatives in
    common, then agree the most): copies of one photo relate to many of each other, so each
    photo's group has formed before a relation that only one image shares with another photo
    is weighed.
    """
    composed = _compositions(collection)
    strong = [
        relation
        for relation in collection.relations.values()
        if _strong(relation)
        and relation.source not in composed
        and relation.derivative not in composed
    ]
    related: dict[int, set[int]] = defaultdict(set)
    for relation in strong:
        related[relation.source].add(relation.derivative)
        related[relation.derivative].add(relation.source)
    strong.sort(
        key=lambda r: (-len(related[r.source] & related[r.derivative]), -r.agreeing, r.source)
    )
    for relation in strong:
        first, second = groups.members(relation.source), groups.members(relation.derivative)
        if first is second:
            continue
        if relation.agreeing < STRONG_OVERLAP and len(first) > 1 and len(second) > 1:
            across = [(a, b) for a in first for b in related[a] & second]
            if len({a for a, _ in across}) < 2 or len({b for _, b in across}) < 2:
                continue
        groups.join(relation.source, relation.derivative)


def _untouched(keys: set[int], collection: Collection, rank: Callable) -> set[int]:
    """The largest set of ``keys`` joined by relations that found nothing altered.

    An edit is made once: an edited copy is found altered against every other version of the
    photo, while the photo's untouched versions (the file, its reposts, resizes, crops and
    screenshots) are found unaltered against each other. So the original is sought among the
    largest such set (between equal ones, the one holding the best-ranked image), which a few
    missing relations do not split as easily as they sway a count.
    """
    sets = _DisjointSets(keys)
    for (source, derivative), relation in collection.relations.items():
        if relation.kind == "repost" and source in sets and derivative in sets:
            sets.join(source, derivative)
    found: dict[int, set[int]] = defaultdict(set)
    for key in keys:
        found[sets.find(key)].add(key)
    return max(found.values(), key=lambda group: (len(group), rank(max(group, key=rank))))


def _contested(
    contenders: set[int],
    members: set[int],
    rank: Callable[[int], tuple],
    evidence: Callable[[int], tuple],
    contest: Contest,
    finer: Callable[[int], float],
) -> list[int]:
    """The best of a group's untouched copies, by a contest between them: the original first.

    The counts behind ``rank`` are read over whichever relations each image happens to have
    (an image stops after RELATIONS_PER_QUERY), so they compare images on different evidence,
    and a watermark is too thin to count as an alteration. So the best-ranked untouched copies
    that geometry cannot tell apart (same ``evidence``) are compared directly, each pair in the
    cells where the two differ, with the group's other copies as witnesses
    (``overlay_contest``); the one that beats the most others is the original. Between
    copies that beat as many (the photo and its re-saves: nothing in the grid tells them
    apart), the one saved more finely (``finer``) is nearer to what they were all made from:
    a re-save can only lose detail. The rank breaks the remaining ties. The others follow in
    the same order: the runners-up.
    """
    ranked = sorted(contenders, key=rank, reverse=True)
    best = evidence(ranked[0])
    tied = [key for key in ranked if evidence(key) == best][:CONTENDERS]
    if len(tied) < 2:
        return ranked[:1]
    witnesses = sorted(members - set(tied))[:WITNESSES]
    wins = contest(tied, witnesses)
    return sorted(tied, key=lambda key: (wins.get(key, 0), finer(key), rank(key)), reverse=True)


def overlay_contest(
    contenders: list[int],
    grids: Mapping[int, tuple[np.ndarray, np.ndarray]],
    thresholds: Thresholds,
    known: dict[tuple[int, int], np.ndarray] | None = None,
) -> dict[int, int]:
    """How many of the other contenders each one beats, on grids aligned to one frame.

    A copy is made from the original once: an overlay (a watermark, a caption, a logo, an
    interface) or an edit is present in that copy alone, while the original and every other
    copy made from it agree there. So for two contenders A and B, the cells where they differ
    clearly (DISPUTE_MULTIPLE times their median difference) are disputed, and each other
    image of the group (the rest of the contenders and the witnesses) takes the side of the
    one it is nearer to over those cells: the one most sides with wins the pair, a sign test
    over third parties rather than a mean over different relations. Two contenders that show
    the same frame and dispute no cell (the photo and a re-save of it) are one picture: each
    counts the wins of the other, so that the noise of the sign test between a third copy and
    each of them cannot rank one re-save above the other (the finer save is chosen later).
    ``grids`` maps each image to (its cells in the common frame, the cells it covers);
    ``known`` keeps the cell differences of images with contenders measured on the same grids
    by an earlier contest (a group is ranked again after each pass that adds relations).
    """
    differences = {} if known is None else known
    for contender in contenders:
        for image, (cells, seen) in grids.items():
            if image != contender and (image, contender) not in differences:
                differences[image, contender] = _cell_difference(
                    cells, grids[contender][0], seen & grids[contender][1], thresholds
                )
    wins: dict[int, int] = defaultdict(int)
    same = _DisjointSets(contenders)
    for number, a in enumerate(contenders):
        for b in contenders[number + 1 :]:
            sides = _sides(a, b, grids, differences)
            if sides is None:
                same.join(a, b)
            elif sides:
                wins[a if sides > 0 else b] += 1
    shared = {key: max(wins[other] for other in same.members(key)) for key in contenders}
    return defaultdict(int, {key: count for key, count in shared.items() if count})


def _sides(
    a: int,
    b: int,
    grids: Mapping[int, tuple[np.ndarray, np.ndarray]],
    differences: Mapping[tuple[int, int], np.ndarray],
) -> int | None:
    """Witnesses that resemble ``a`` over the cells the two dispute, less those that resemble
    ``b``; None when the two show the same frame and dispute no cell.
    ``differences[image, contender]``: each cell's difference between the two, in units
    of what matching calls altered.

    The disputed cells differ clearly: DISPUTE_MULTIPLE times the two's median difference, and
    at least by one unit. Between the photo and a re-save of it, no cell differs that much
    (recompression moves cells by a fraction of a unit, and all of them a little), so neither
    wins: nothing in the grid tells which was saved first.

    A witness testifies only when it lies nearer to one of the two than halfway between them:
    one altered there itself (an edit, a flip aligned a little off, a screenshot's rescaling)
    is far from both, and which of the two it happens to be nearer to says nothing of them
    (a white caption over a dark garment is nearer to any lightened edit of that garment).
    """
    both = grids[a][1] & grids[b][1]
    if not both.any():
        return 0
    apart = differences[b, a]
    clearly = max(DISPUTE_MULTIPLE * float(np.median(apart[both])), 1.0)
    disputed = both & (apart > clearly)
    if disputed.sum() < MIN_DISPUTED and both.mean() >= COMPOSITION_COVER:
        return None
    sides = 0
    for witness, (_, seen) in grids.items():
        where = disputed & seen
        if witness in (a, b) or where.sum() < MIN_DISPUTED:
            continue
        to_a = differences[witness, a][where].mean()
        to_b = differences[witness, b][where].mean()
        if min(to_a, to_b) < apart[where].mean() / 2:
            sides += int(to_a < to_b) - int(to_b < to_a)
    return sides


def _cell_difference(
    scanned: np.ndarray, photo: np.ndarray, visible: np.ndarray, thresholds: Thresholds
) -> np.ndarray:
    """Each cell's difference, colour and texture each in units of the difference that
    ``matching`` would call altered."""
    colour, texture = cell_differences(photo, scanned, visible)
    difference = colour / thresholds.colour_difference + texture / thresholds.texture_difference
    return np.nan_to_num(difference, nan=0.0)


def affected_clusters(clusters: list[dict[str, Any]]) -> list[bool]:
    """Whether each cluster's original counts as a photo affected, or only as related to one.

    An image made from two photos (a collage of two, or an edit whose pasted texture came from
    another photo) is in both their clusters, and a photo whose pixels appear in the collection
    only inside such images was not itself reposted or manipulated: it lent a patch to, or stood
    beside, a photo that was. So an original counts when some image of the collection was made
    from it alone, or, failing that, when none of the images made from it holds a counted
    original (a collage of two photos found nowhere else counts both). The others stay in the
    document as clusters marked ``"affected": false``: an investigator still sees where those
    pixels went.
    """
    derivatives = [cluster["members"] - {cluster["original"]} for cluster in clusters]
    holders: dict[int, list[int]] = defaultdict(list)
    for number, members in enumerate(derivatives):
        for member in members:
            holders[member].append(number)
    alone = [any(len(holders[m]) == 1 for m in members) for members in derivatives]
    return [
        alone[number]
        or not any(alone[other] for m in members for other in holders[m] if other != number)
        for number, members in enumerate(derivatives)
    ]


def _consensus(collection: Collection) -> dict[int, tuple[int, int, float, float]]:
    """How well each image stands for the photo its relatives show, as a rank (higher first).

    Over the images it is related to: whether all of them frame it as one part of a composition
    (a photo seen only inside a collage with another is not what the others copy), whether
    most of them show it mirrored (a flip is an edit, made once, so the photo's other copies
    all show the flipped one mirrored, while the photo is shown mirrored only by the flip:
    a share would penalise whichever copy the flip happened to be related to), the share found
    unaltered against it (an edit is made once, so an edited copy differs from every other
    version, while the untouched photo agrees with each of its plain reposts), and the mean
    share of cells that agree, to a tenth (a watermark is too thin to count as an alteration,
    but it disagrees a little with everything; finer differences, such as between a photo and
    its re-save, are noise). The last two are read over whichever relations each image has,
    so they only order the contenders of ``_contested``.
    """
    by_pair: dict[frozenset, list[Relation]] = defaultdict(list)
    for (source, derivative), relation in collection.relations.items():
        by_pair[frozenset((source, derivative))].append(relation)
    framed: dict[int, int] = defaultdict(int)
    flipped: dict[int, int] = defaultdict(int)
    unaltered: dict[int, int] = defaultdict(int)
    agreeing: dict[int, float] = defaultdict(float)
    related: dict[int, int] = defaultdict(int)
    for pair, relations in by_pair.items():
        for relation in relations:
            framed[relation.source] += relation.seam
        for key in pair:
            related[key] += 1
            flipped[key] += any(r.mirrored for r in relations)
            unaltered[key] += any(r.kind == "repost" for r in relations)
            agreeing[key] += max(r.agreeing for r in relations)
    return defaultdict(
        lambda: (0, 0, 0.0, 0.0),
        {
            key: (
                -(framed[key] == n),
                -int(2 * flipped[key] > n),
                unaltered[key] / n,
                round(agreeing[key] / n, 1),  # coarse: finer differences are noise
            )
            for key, n in related.items()
        },
    )


def _cover(source: int, derivative: int, collection: Collection) -> float:
    """How much of ``derivative`` the ``source`` covers, measured either way (1 if unknown)."""
    relation = collection.relations.get((source, derivative))
    if relation is not None:
        return relation.covered
    relation = collection.relations.get((derivative, source))
    return relation.shown if relation is not None else 1.0


def scene_groups(
    originals: list[int], signatures: Mapping[int, Signature], collection: Collection
) -> list[int]:
    """A scene number (from 1) for each original: originals sharing background share one."""
    scenes = _DisjointSets(originals)
    for a in originals:
        for b in collection.candidates.get(a, []):
            if (
                b in scenes
                and scenes.find(a) != scenes.find(b)
                and same_scene(signatures[a], signatures[b])
            ):
                scenes.join(a, b)
    numbers: dict[int, int] = {}
    return [numbers.setdefault(scenes.find(k), len(numbers) + 1) for k in originals]


class _DisjointSets:
    """Union-find over image keys: which images chains of relations join into one group.

    Written out because it is a dozen lines, and the libraries that have it (scipy, networkx)
    would be new dependencies for this alone.
    """

    def __init__(self, keys: Iterable[int]) -> None:
        self._parent = {key: key for key in keys}
        self._members = {key: {key} for key in self._parent}  # of each root

    def __iter__(self) -> Iterator[int]:
        return iter(self._parent)

    def __contains__(self, key: int) -> bool:
        return key in self._parent

    def find(self, key: int) -> int:
        parent = self._parent
        while parent[key] != key:
            parent[key] = parent[parent[key]]  # path halving keeps the chains short
            key = parent[key]
        return key

    def members(self, key: int) -> set[int]:
        """The keys of ``key``'s group (the same set object for every key of the group)."""
        return self._members[self.find(key)]

    def join(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            if len(self._members[a]) > len(self._members[b]):
                a, b = b, a
            self._parent[a] = b
            self._members[b] |= self._members.pop(a)


def same_scene(a: Signature, b: Signature) -> bool:
    """Whether two photos share much of their background: many features on one homography.

    Looser than verification (any homography, not a similarity or a mild slant; a wide
    tolerance): another photo of the same place passes, while one photo inside another is
    already a pair. Either orientation counts.
    """
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    for reference in (b.features, b.mirrored):
        if len(a.features) < 8 or len(reference) < 8:
            continue
        good = [
            m
            for m, n in (
                p
                for p in matcher.knnMatch(a.features.descriptors, reference.descriptors, k=2)
                if len(p) == 2
            )
            if m.distance < 0.8 * n.distance
        ]
        if len(good) < SCENE_MIN_INLIERS:
            continue
        src = a.features.xy[[m.queryIdx for m in good]]
        dst = reference.xy[[m.trainIdx for m in good]]
        _, inliers = cv2.findHomography(src, dst, cv2.RANSAC, SCENE_PIXELS)
        if inliers is not None and int(inliers.sum()) >= SCENE_MIN_INLIERS:
            return True
    return False


# ---- the document ----------------------------------------------------------------------------


def document(
    collection: Collection, finder: PairFinder, masks_dir: str | os.PathLike | None
) -> dict[str, Any]:
    """The JSON document of ``counterfake pairs`` (its shape: docs/pairs.md)."""
    organised = organise(collection, finder.contest)
    if finder.bridge(collection, organised["clusters"], masks_dir):
        organised = organise(collection, finder.contest)
    if organised["unmeasured"]:  # the seam that tells a composition from a crop, measured
        before = len(collection.relations)
        finder.confirm(collection, organised["unmeasured"], masks_dir)
        if len(collection.relations) > before:
            organised = organise(collection, finder.contest)
    wanted = [
        (cluster["original"], member)
        for cluster in organised["clusters"]
        for member in cluster["members"]
        if member != cluster["original"]
        and (cluster["original"], member) not in collection.relations
    ]
    if wanted:
        finder.confirm(collection, wanted, masks_dir)
    pictures = organised["pictures"]
    found = organised["clusters"]
    affected = affected_clusters(found)
    originals = [c["original"] for c, counted in zip(found, affected, strict=True) if counted]
    scene_of = dict(
        zip(originals, scene_groups(originals, finder.signatures, collection), strict=True)
    )
    pairs, clusters, used_masks = [], [], set()
    for number, (cluster, counted) in enumerate(zip(found, affected, strict=True), 1):
        original = cluster["original"]
        members = sorted(cluster["members"] - {original}, key=lambda k: pictures[k].path)
        for member in members:
            source, relation, reverse = _pair_for(member, original, cluster["members"], collection)
            # a pair verified in the last pass takes its direction from the cluster's order
            _, why = organised["edges"].get(frozenset((source, member)), (0, "cluster order"))
            if why == "undetermined":
                why = "cluster order"
            entry = {
                "source": pictures[source].path,
                "derivative": pictures[member].path,
                **relation.to_json(),
                "direction": why,
                "cluster": number,
            }
            if reverse:
                entry["mask"] = None  # measured in the source's pixels: not this image's mask
            if entry["mask"]:
                used_masks.add(entry["mask"])
            pairs.append(entry)
        clusters.append(
            {
                "id": number,
                "original": pictures[original].path,
                "members": [pictures[original].path] + [pictures[k].path for k in members],
                "affected": counted,
                "scene": scene_of.get(original),
            }
        )
    if masks_dir is not None:
        for relation in collection.relations.values():
            if relation.mask and relation.mask not in used_masks:
                Path(relation.mask).unlink(missing_ok=True)
    return {
        "tool": f"counterfake {__version__}",
        "images": sum(1 for p in collection.pictures if p.error is None),
        "errors": [{"path": p.path, "error": p.error} for p in collection.pictures if p.error],
        "pairs": pairs,
        "clusters": clusters,
        "photos_affected": len(originals),
        "scenes": len(set(scene_of.values())),
        "files": [
            {"path": p.path, "sha256": p.sha256, "context": p.context} for p in collection.pictures
        ],
    }


def _pair_for(
    member: int, original: int, cluster: set[int], collection: Collection
) -> tuple[int, Relation, bool]:
    """(source, relation, measured the other way round) for a cluster member.

    The original, verified with the member as the derivative if possible; else the best
    relation the member has with another image of its cluster.
    """
    relations = collection.relations
    if (original, member) in relations:
        return original, relations[original, member], False
    if (member, original) in relations:
        return original, relations[member, original], True
    as_derivative = [relations[o, member] for o in cluster if (o, member) in relations]
    if as_derivative:
        best = max(as_derivative, key=lambda r: r.score)
        return best.source, best, False
    best = max(
        (relations[member, o] for o in cluster if (member, o) in relations), key=lambda r: r.score
    )
    return best.derivative, best, True


def as_results(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The document as one scan-like result per file (its findings: the pairs it derives from),
    the form the evidence manifest records."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pair in doc["pairs"]:
        found[pair["derivative"]].append(pair)
    errors = {e["path"]: e["error"] for e in doc["errors"]}
    for file in doc["files"]:
        yield {
            "path": file["path"],
            "sha256": file["sha256"],
            "error": errors.get(file["path"]),
            "matches": found.get(file["path"], []),
            "context": file["context"],
        }
