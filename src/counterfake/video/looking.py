"""Matching one sampled frame of a scanned video, with what the frames before it found.

A photo is matched by verifying each of its top candidates (matching.Matcher). A video's
sampled frame would do the same, but most of that work is spent again on what the frame
before it already showed: the candidates of a shot shown in the scanned video are the
registered video's neighbouring frames, several of which verify (and each verified frame is
localised, the costliest step). So candidates are grouped by what they belong to (a
registered video, or a registered photo) and each group is tried in order until one verifies:

- a registered video already followed (a *track*: a hit in one of the last few samples) tries
  first the frame where the track says the scanned video has got to (the frame in step), then
  the rest by votes;
- anything else tries its candidates by votes; a registered video not yet followed keeps
  up to STARTING frames that verify, since the best-voted frame of a held shot need not be
  the one in step, and the chains (timeline.py) choose among them.

At most TRIES candidates of a group are verified, and once one group has verified, a group
drawing less than OTHER_SHARE of its votes is tried with its best candidate only. Every hit
is still proved on its own (the whole chain of matching.verify_and_decide, with the
registry's size in the number of false alarms), so what is reported never rests on a track.

A track's edges are then looked at once more: the samples after its last hit (up to
CONTINUED_GAP, the video's last frame among them: sampling.py takes it as a final sample for
this), and the sample before its first (the one sample kept back; also where a hit is out of
step with its track's last one) are verified against the frame in step. Such a *continuation*
is kept when the alignment alone is proved: its number of false alarms under the bound, not
most of the photo altered, and its residual at most CONTINUED_RESIDUAL times a decided hit's
bound; even where the decision refuses it for want of the rest (a face hidden by an interface
bar as the photo scrolls under it; a frame in the middle of a cross-fade). A continuation
places a segment's edge; it never makes a match, a kind or a mask.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

from counterfake.evidence import MAX_NFA
from counterfake.index.compact import shortlist
from counterfake.matching import Match, Matcher, verify, verify_and_decide
from counterfake.registered import VideoFrame
from counterfake.signature.extract import Query
from counterfake.tiles import grid_cells
from counterfake.video.timeline import in_step

TRIES = 3  # candidates of one registered video or photo verified per sample, at most
STARTING = 2  # frames of a registered video kept where no track is followed yet (see below)
# Once a sample has shown one registered video or photo, another whose best candidate draws
# less than this share of the votes of the one verified is tried with that candidate only: a
# frame's features go to what it shows, and what draws a fraction of them mostly shares a logo,
# a caption or texture by chance (on the benchmark's 720p cases nine verifications in ten
# failed, half of them in samples that had shown something). It is still tried once: another
# registered copy of the same picture (a photo that a registered video also shows) can draw
# far fewer votes than the frame that drew most.
OTHER_SHARE = 0.25
TRACK_SAMPLES = 4  # a track lasts this many samples past its last hit (a chain bridges three)
CONTINUED_GAP = 2  # samples past a track's last hit that are tried as its continuation: one
# failed alignment (RANSAC on a frame half hidden) does not end what the next one continues
# A continuation's features may land this much wider than a decided hit's. The residual bound
# tells another shot of the same scene from a copy; a frame in step with a track already
# proved is not asked that again, and a photo shown small, moving (a scroll smears it) and
# recompressed lands wider than the bound at times (1.6-1.8 pixels, measured on the
# benchmark's screen recordings, against 1.2-1.6 a frame before).
CONTINUED_RESIDUAL = 1.25

Target = tuple[bool, int]  # (is a registered photo, its id or its video's id)


@dataclass(frozen=True)
class FrameHit:
    """A registered video's frame, or a registered photo, found in one sampled frame."""

    sample: int  # the sample's position among the scanned video's samples
    time: float  # the sample's time
    target: Target
    photo_id: int  # the registered photo (or video frame) verified
    registered_time: float
    match: Match | None  # None for a continuation: its alignment only, not a decision
    mirrored: bool


@dataclass
class _Track:
    sample: int
    time: float
    registered_time: float
    photo_id: int
    mirrored: bool


class FrameLooker:
    """Matches the sampled frames of one scanned video in order (see the module's description).

    ``owners`` maps an index entry to the registered photos it stands for, ``frames`` says
    which of those are a registered video's frames (and when); ``slot`` is held while a frame
    is verified (the service's matching slots).
    """

    def __init__(
        self,
        matcher: Matcher,
        owners: Callable[[int], list[int]],
        frames: dict[int, VideoFrame],
        slot: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> None:
        self.matcher = matcher
        self.owners = owners
        self.frames = frames
        self.slot = slot or nullcontext
        self.tracks: dict[Target, _Track] = {}
        self._previous: tuple[int, float, Query] | None = None  # the sample before this one
        self._by_video: dict[int, tuple[list[float], list[int]]] | None = None

    def look(
        self, number: int, time: float, query: Query, *, final: bool = False
    ) -> list[FrameHit]:
        """The hits of sample ``number`` (taken at ``time``): decided matches, the
        continuations of tracks it did not hit, and those of tracks it starts into the sample
        before (numbered as that sample). The ``final`` sample (the video's last frame,
        sampling.py) is looked at for continuations only."""
        with self.slot():
            hits = [] if final else self._decided(number, time, query)
            if not hits and not final and grid_cells(query.work):  # a grid: the second look
                hits = self._from_matches(number, time, self.matcher.match(query))
            found = {h.target for h in hits}
            for target, track in self.tracks.items():
                if target not in found and number - track.sample <= CONTINUED_GAP:
                    hit = self._continues(target, track, number, time, query)
                    if hit is not None:
                        hits.append(hit)
            before = self._previous
            if before is not None and before[0] == number - 1:
                for hit in [h for h in hits if h.match is not None and self._starts(h)]:
                    start = _Track(number, time, hit.registered_time, hit.photo_id, hit.mirrored)
                    earlier = self._continues(hit.target, start, *before)
                    if earlier is not None:
                        hits.append(earlier)
        for hit in sorted(hits, key=lambda h: h.sample):
            self._follow(hit)
        for target in [t for t, k in self.tracks.items() if number - k.sample > TRACK_SAMPLES]:
            del self.tracks[target]
        self._previous = (number, time, query)
        return hits

    def continues_into(self, number: int) -> bool:
        """Whether sample ``number`` would be looked at as any track's continuation (else a
        final sample need not even be prepared)."""
        return any(number - track.sample <= CONTINUED_GAP for track in self.tracks.values())

    def _starts(self, hit: FrameHit) -> bool:
        """Whether a decided hit starts its track afresh: nothing followed, or a registered
        video's frame out of step with the track's last hit (the first hit of a held shot
        can name any frame of the hold; the one in step is then looked for again)."""
        track = self.tracks.get(hit.target)
        if track is None:
            return True
        return not hit.target[0] and not in_step(
            hit.time - track.time, hit.registered_time - track.registered_time
        )

    def _decided(self, number: int, time: float, query: Query) -> list[FrameHit]:
        """The sample's candidates verified and decided group by group, each group in its
        order, as the module's description says."""
        t = self.matcher.thresholds
        groups: dict[Target, list[tuple[int, bool, float, float]]] = {}
        index = self.matcher.index
        for candidate in shortlist(index, query.features, t.candidates, query.mirror_features):
            if candidate.votes < t.min_votes:
                break
            for owner in self.owners(candidate.photo_id):
                target, registered = self._target(owner)
                groups.setdefault(target, []).append(
                    (candidate.photo_id, candidate.mirrored, registered, candidate.votes)
                )
        verified: dict[tuple[int, bool], Match | None] = {}
        hits = []
        strongest = 0.0  # the votes of the best-voted candidate verified in this sample
        for target, tried in groups.items():  # by their best candidate's votes, descending
            tries = 1 if tried[0][3] < strongest * OTHER_SHARE else TRIES
            track = self.tracks.get(target)
            if track is not None:
                expected = track.registered_time + time - track.time
                tried.sort(key=lambda c: (abs(c[2] - expected), -c[3]))
            wanted = 1 if track is not None or target[0] else STARTING
            found = 0
            for entry, mirrored, registered, votes in tried[:tries]:
                if (entry, mirrored) not in verified:
                    verified[(entry, mirrored)] = self._verified(entry, query, mirrored)
                match = verified[(entry, mirrored)]
                if match is not None and match.kind != "same_scene":
                    hits.append(FrameHit(number, time, target, entry, registered, match, mirrored))
                    strongest = max(strongest, votes)
                    found += 1
                    if found == wanted:
                        break
        return hits

    def _verified(self, entry: int, query: Query, mirrored: bool) -> Match | None:
        """The photo chain's decision on one candidate (None: no match)."""
        try:
            signature = self.matcher.signature_of(entry)
        except KeyError:  # withdrawn since the index answered
            return None
        return verify_and_decide(
            entry,
            query,
            signature,
            mirrored,
            self.matcher.thresholds,
            registry_size=len(self.matcher.index),
        )

    def _from_matches(self, number: int, time: float, matches: list[Match]) -> list[FrameHit]:
        """Hits from a Matcher's answer (the grid's second look; mirrored is not told there,
        and only a track's continuation reads it)."""
        hits = []
        for match in matches:
            if match.kind == "same_scene":
                continue
            for owner in self.owners(match.photo_id):
                target, registered = self._target(owner)
                hits.append(
                    FrameHit(number, time, target, match.photo_id, registered, match, False)
                )
        return hits

    def _target(self, owner: int) -> tuple[Target, float]:
        frame = self.frames.get(owner)
        if frame is None:
            return (True, owner), 0.0
        return (False, frame.video_id), frame.time

    def _continues(
        self, target: Target, track: _Track, number: int, time: float, query: Query
    ) -> FrameHit | None:
        """The track's frame in step at ``time`` (sample ``number``) verified in ``query`` as a
        continuation (see the module's description), or None."""
        photo_id, registered = track.photo_id, 0.0
        if not target[0]:
            # Where the track says the registered video has got to, rather than the time of
            # the frame nearest it: a continuation at a segment's edge would otherwise pull
            # the segment's registered range in by up to half the registered frames' spacing.
            registered = max(0.0, track.registered_time + time - track.time)
            photo_id = self._in_step(target[1], registered)
        try:
            signature = self.matcher.signature_of(photo_id)
        except KeyError:
            return None
        t = self.matcher.thresholds
        wider = replace(t, max_median_residual=t.max_median_residual * CONTINUED_RESIDUAL)
        bound = math.log10(MAX_NFA)
        size = len(self.matcher.index)
        for instance in verify(query, signature, track.mirrored, wider):
            proved = instance.evidence is not None and instance.evidence.log10_nfa(size) <= bound
            if proved and instance.altered_fraction <= t.max_altered_fraction:
                return FrameHit(number, time, target, photo_id, registered, None, track.mirrored)
        return None

    def _in_step(self, video_id: int, expected: float) -> int:
        """The registered video's frame nearest to ``expected`` seconds (its photo id)."""
        if self._by_video is None:
            by_video: dict[int, list[tuple[float, int]]] = {}
            for photo_id, frame in self.frames.items():
                by_video.setdefault(frame.video_id, []).append((frame.time, photo_id))
            self._by_video = {}
            for video, held in by_video.items():
                held.sort()
                self._by_video[video] = ([h[0] for h in held], [h[1] for h in held])
        times, ids = self._by_video[video_id]
        at = bisect.bisect_left(times, expected)
        nearest = min(
            (i for i in (at - 1, at) if 0 <= i < len(times)),
            key=lambda i: abs(times[i] - expected),
        )
        return ids[nearest]

    def _follow(self, hit: FrameHit) -> None:
        """Move the hit's track on to it, or start one (the registered video is expected to
        play on at its own speed from the last hit: a sample a second apart, a clip sped up
        by a quarter drifts a quarter of a second, well within the next frame in step)."""
        self.tracks[hit.target] = _Track(
            hit.sample, hit.time, hit.registered_time, hit.photo_id, hit.mirrored
        )
