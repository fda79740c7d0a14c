"""Source -> derivative pairs within a collection, with no registry.

An investigator handed a folder or a channel export wants to know which images were made from
which others. Comparing every image with every other is quadratic; instead every image is
treated as if it were registered, and every image is then scanned against that registry
(``finder.PairFinder`` runs the passes; ``steps`` holds the two heavy per-image steps, which
run in forked workers or on a Ray cluster's cores, cluster/pairs.py; ``document`` renders what
they found):

1. **Extract** (in parallel): each image's reference signature (local features of it and of its
   mirror image, and the coarse grid) goes into the in-process candidate index. The face box,
   the costliest part of a signature, is left out here.
2. **Relate** (in parallel): each image, decoded again, asks the index for its candidates and
   verifies them with the code and thresholds that match registered photos. The face box of a
   candidate is computed only once a candidate has passed geometric verification, which few
   do; the cells the alignment already compared are then read within it
   (``matching.with_face``) and the alignment decided again, so the decision is exactly the one
   a registered photo would get (``relations`` adds what a pair needs beyond a match).
3. **Order and group** (``grouping``): each verified relation says which of its two images is
   the source; the images are ranked by those votes, and each image that nothing outranks is
   an **original**. A cluster is an original and everything that descends from it; an image
   may belong to two clusters (a collage of two photos). The best untouched copies of a group
   are compared cell by cell (``contest``). Short passes verify what grouping leaves open, so
   the pair reported is (original, derivative), with the mask in the derivative's pixels.
4. **Scenes** (``scenes``): originals that share much of their background (another photo taken
   at the same place) are joined into one scene.

No face recognition: a face box says where a face is, never whose.
"""

from counterfake.pairs.contest import OverlayContest, overlay_contest
from counterfake.pairs.finder import PairFinder
from counterfake.pairs.grouping import affected_clusters, organise
from counterfake.pairs.model import Cluster, Collection, Organisation, Picture, Relation

__all__ = [
    "Cluster",
    "Collection",
    "Organisation",
    "OverlayContest",
    "PairFinder",
    "Picture",
    "Relation",
    "affected_clusters",
    "organise",
    "overlay_contest",
]
