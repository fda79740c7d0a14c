"""Which registrations are the same picture: the check that lets copies share one index entry.

index/owners.py keeps one candidate-index entry per picture with every registered photo that
is that picture as its owners; it files a registration under an existing entry when the
features are identical, or when the PDQ hashes are near and :func:`same_photo` says so. The
check sits here, above matching, because it verifies the geometry as a match does; the index
below it only calls it.
"""

from __future__ import annotations

from counterfake.matching import SignatureQuery, Thresholds, decide, verify
from counterfake.signature.extract import Signature

_WHOLE_PHOTO = 0.9  # share of the held photo that the new one must cover


def same_photo(new: Signature, held: Signature, t: Thresholds | None = None) -> bool:
    """Whether ``new`` is a registration of the very picture ``held`` is (a re-encode or an
    exact copy), verified as a match verifies: the same frame, and ``new``'s features align
    with ``held``'s over the whole photo with nothing altered (a ``repost``)."""
    if abs(new.frame_width - held.frame_width) > 1 or abs(new.frame_height - held.frame_height) > 1:
        return False
    t = t or Thresholds()
    query = SignatureQuery(new)
    instances = verify(query, held, False, t)
    match = decide(0, query, held, instances, t) if instances else None
    return (
        match is not None and match.kind == "repost" and match.instances[0].visible >= _WHOLE_PHOTO
    )
