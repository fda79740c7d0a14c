"""Ordering and grouping: which image of each related pair is the source, which images are
copies of one photo, and which image of each group is its original.

Each verified relation says which of its two images is the source (``direction``); the images
are ranked by those votes, every relation points from the higher to the lower, and each image
that nothing outranks is an original. A cluster is an original and everything that descends
from it; an image may belong to two clusters (a collage of two photos).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping

from counterfake.pairs.model import (
    COMPOSITION_COVER,
    RESOLUTION_STEP,
    STRONG_OVERLAP,
    Cluster,
    Collection,
    Edge,
    Organisation,
    Picture,
    Relation,
)
from counterfake.pairs.sets import DisjointSets

CONTENDERS = 6  # a group's best untouched copies compared cell by cell for its original
WITNESSES = 8  # further copies of the group that say which of two contenders they resemble
RUNNERS_UP = 2  # a contest's winner is verified as the derivative of this many runners-up
AGREEMENT_DIGITS = 1  # the mean agreement is compared to a tenth: finer differences are noise

Contest = Callable[[list[int], list[int]], Mapping[int, int]]
"""How many of the other contenders each contender beats (``contest.OverlayContest``)."""


def direction(relation: Relation) -> Edge:
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


def _edge_evidence(a: int, b: int, collection: Collection, pictures: dict[int, Picture]) -> Edge:
    """+1 if ``a`` is the source of ``b``, -1 if the reverse, 0 if unknown; and why."""
    first, second = _dated(pictures[a]), _dated(pictures[b])
    if first and second and first != second:
        return (1 if first < second else -1), "Telegram date"
    votes, reasons = 0, []
    for (source, derivative), sign in (((a, b), 1), ((b, a), -1)):
        relation = collection.relations.get((source, derivative))
        if relation is not None:
            vote, reason = direction(relation)
            votes += sign * vote
            if vote:
                reasons.append(reason)
    if votes:
        return (1 if votes > 0 else -1), reasons[0]
    return 0, "undetermined"


def _strong(relation: Relation | None) -> bool:
    """Whether a relation joins two copies of one photo: each shows most of the other."""
    return relation is not None and min(relation.shown, relation.covered) >= STRONG_OVERLAP


def organise(collection: Collection, contest: Contest | None = None) -> Organisation:
    """Group the images into clusters, each under its original (before the last pass).

    Copies that each show most of the other (reposts, edits, crops, resizes) form one group,
    joined through chains of such relations (``_join_copies`` says which). An image that holds
    another only in part of its frame (a collage, a screenshot, a tight crop) joins the group
    of its source without merging groups: a collage of two photos belongs to both clusters.
    A group's original is its highest-ranked member: fewest direction votes lost; then the one
    that best stands for what its relatives show (``_consensus``); then most votes won, the
    finer JPEG quantisation, the larger file per pixel. With ``contest``
    (``contest.OverlayContest``), the best untouched copies that the geometric evidence cannot
    tell apart are then compared directly (``_contested``).
    ``unmeasured`` lists the (source, derivative) verifications that would direct an edge
    between groups that nothing directs yet, and those of each contest's winner as the
    derivative of its runners-up: a screenshot measured only against crops of the photo holds
    more than they do with no seam around them, and only a whole copy shows its seam
    (see ``PairFinder.find``).
    """
    pictures = {p.key: p for p in collection.pictures}
    edges: dict[frozenset[int], Edge] = {}
    for source, derivative in collection.relations:
        pair = frozenset((source, derivative))
        if pair not in edges:
            first, second = sorted(pair)
            edges[pair] = _edge_evidence(first, second, collection, pictures)
    wins: dict[int, int] = defaultdict(int)
    losses: dict[int, int] = defaultdict(int)
    groups = DisjointSets(key for pair in edges for key in pair)
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
            # screenshot or a border show the seam around the photo (see direction)
            unmeasured += [
                (runner_up, original)
                for runner_up in order[1 : 1 + RUNNERS_UP]
                if (runner_up, original) not in collection.relations
            ]
        clusters.append(Cluster(original, everyone))
    clusters.sort(key=lambda c: pictures[c.original].path)
    return Organisation(edges, clusters, pictures, unmeasured)


def compositions(collection: Collection) -> set[int]:
    """Images in which a photo was found framed by a seam: collages, screenshots, borders."""
    return {derivative for (_, derivative), r in collection.relations.items() if r.seam}


def _join_copies(groups: DisjointSets, collection: Collection) -> None:
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
    composed = compositions(collection)
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
    sets = DisjointSets(keys)
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


def affected_clusters(clusters: list[Cluster]) -> list[bool]:
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
    derivatives = [cluster.members - {cluster.original} for cluster in clusters]
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
                round(agreeing[key] / n, AGREEMENT_DIGITS),
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
