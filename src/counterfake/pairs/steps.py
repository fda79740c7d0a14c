"""The two heavy per-image steps of a pairs run, given everything they read as arguments.

Extracting an image's signature and finding what it may derive from take most of a run's time
and depend on nothing but the image, the candidates and the signatures they verify. Written as
plain functions, they run alike in this process, in a forked worker (finder.py) and in a Ray
task on another machine (cluster/pairs.py), so a run spread over a cluster gives the pairs of a
run on one machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from counterfake.imaging import ImageError
from counterfake.index.votes import Candidate, Proposer
from counterfake.inputs import read_image
from counterfake.matching import Instance, Match, decide, verify
from counterfake.pairs.model import Frame, Picture, Tentative
from counterfake.pairs.pictures import jpeg_quantisation
from counterfake.pairs.relations import geometry, textured_agreement
from counterfake.signature.extract import Query, Signature, make_query, make_signature
from counterfake.thresholds import Thresholds

RELATIONS_PER_QUERY = 3  # verified relations after which an image stops verifying candidates


def extract(picture: Picture, max_pixels: int, file: str | None = None) -> Picture:
    """The picture with its reference signature (no face box: pass 2 computes the few it
    needs), or with the error that kept it from being read. ``file`` is where to read it when
    not at ``picture.file`` (the absolute path a cluster's node opens); errors name the file
    as the picture gives it."""
    if picture.file is None:
        return picture
    opened = file or picture.file
    try:
        sha256, rgb = read_image(opened, max_pixels)
        size = os.stat(opened).st_size
    except ImageError as error:
        return replace(picture, error=str(ImageError(picture.file, error.problem)))
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
        quantisation=jpeg_quantisation(opened),
    )


def query_of(picture: Picture, max_pixels: int, file: str | None = None) -> Query | None:
    """The picture decoded again for matching; None when it cannot be (it was read in pass 1:
    a file changed since simply gets no pairs)."""
    if picture.file is None:
        return None
    try:
        _, rgb = read_image(file or picture.file, max_pixels)
    except ImageError:
        return None
    return make_query(rgb)


def shortlist(index: Proposer, query: Query, key: int, t: Thresholds) -> Iterator[Candidate]:
    """The candidates worth verifying for image ``key``, best first, itself excluded."""
    taken = 0
    mirrored = query.mirror_features().descriptors  # the index holds one orientation
    for candidate in index.candidates(query.features.descriptors, t.candidates + 1, mirrored):
        if candidate.photo_id == key:
            continue
        if candidate.votes < t.min_votes or taken == t.candidates:
            return
        taken += 1
        yield candidate


def tentatives(
    key: int,
    query: Query,
    candidates: Iterable[Candidate],
    signature_of: Callable[[int], Signature],
    t: Thresholds,
    collection_size: int,
) -> tuple[list[int], list[Tentative]]:
    """(the candidates verified, the alignments that pass without the face check) for image
    ``key``: at most RELATIONS_PER_QUERY sources, the best alignment of each."""
    verified: list[int] = []
    found: dict[int, Tentative] = {}
    for candidate in candidates:
        if len(found) == RELATIONS_PER_QUERY:
            break
        verified.append(candidate.photo_id)
        signature = signature_of(candidate.photo_id)
        instances = verify(query, signature, candidate.mirrored, t)
        if judge(0, query, signature, instances, t, collection_size) is None:
            continue
        best = found.get(candidate.photo_id)
        if best is None or instances[0].inliers > best.instances[0].inliers:
            found[candidate.photo_id] = Tentative(
                candidate.photo_id,
                key,
                Frame(query.shape, query.scale),
                instances,
                [geometry(query, i.transform, signature) for i in instances],
            )
    return verified, list(found.values())


def judge(
    source: int,
    query: Query | Frame,
    signature: Signature,
    instances: list[Instance],
    t: Thresholds,
    collection_size: int,
) -> Match | None:
    """``matching.decide`` over the collection, as a source -> derivative relation: the
    collection is the registry the number of false alarms is counted in."""
    if not instances:
        return None
    match = decide(
        source,
        query,  # type: ignore[arg-type]  # a Frame has what decide reads: shape, scale
        signature,
        instances,
        t,
        registry_size=collection_size,
    )
    return match if match is not None and accepted(match, signature) else None


def accepted(match: Match, signature: Signature) -> bool:
    """Whether a match of ``signature`` is a relation: another photo of the same scene is not,
    nor an agreement that rests on plain areas (``relations.textured_agreement``)."""
    return match.kind != "same_scene" and textured_agreement(match, signature)
