"""The document of a pairs run: its clusters and pairs as results.py reports them.

Rendering only: every verification was made by ``PairFinder`` before this runs.
"""

from __future__ import annotations

from counterfake.pairs.model import Collection, Organisation, Relation
from counterfake.results import Cluster, Direction, Pair, PairsDocument, PictureFile


def render(
    collection: Collection,
    organisation: Organisation,
    affected: list[bool],
    scene_of: dict[int, int],
    *,
    tool: str,
) -> PairsDocument:
    """The document for a collection grouped by ``organisation``: for each cluster, each member
    paired with the original (or, failing a relation with it, with its best relative in the
    cluster); ``affected`` and ``scene_of`` (original -> scene number) as
    ``grouping.affected_clusters`` and ``scenes.scene_groups`` say."""
    pictures = organisation.pictures
    pairs: list[Pair] = []
    clusters: list[Cluster] = []
    for number, (cluster, counted) in enumerate(
        zip(organisation.clusters, affected, strict=True), 1
    ):
        original = cluster.original
        members = sorted(cluster.members - {original}, key=lambda k: pictures[k].path)
        for member in members:
            source, relation, reverse = _pair_for(member, original, cluster.members, collection)
            pairs.append(
                Pair.of(
                    relation,
                    source=pictures[source].path,
                    derivative=pictures[member].path,
                    # measured in the source's pixels: not this image's mask
                    mask=None if reverse else relation.mask,
                    direction=_direction(organisation, source, member),
                    cluster=number,
                )
            )
        clusters.append(
            Cluster(
                id=number,
                original=pictures[original].path,
                members=[pictures[original].path] + [pictures[k].path for k in members],
                affected=counted,
                scene=scene_of.get(original),
            )
        )
    return PairsDocument(
        tool=tool,
        images=sum(1 for p in collection.pictures if p.error is None),
        errors=[{"path": p.path, "error": p.error} for p in collection.pictures if p.error],
        pairs=pairs,
        clusters=clusters,
        photos_affected=sum(affected),
        scenes=len(set(scene_of.values())),
        files=[PictureFile(p.path, p.sha256, p.context) for p in collection.pictures],
    )


def _direction(organisation: Organisation, source: int, member: int) -> Direction:
    """Why ``source`` is the source: the edge's evidence, or the cluster's order for a pair
    verified in the last pass or one whose evidence was undetermined."""
    edge = organisation.edges.get(frozenset((source, member)))
    if edge is None or edge[1] == "undetermined":
        return "cluster order"
    return edge[1]


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
