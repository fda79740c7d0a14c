"""Measure H0, the background of evidence.py: how well a *different* photo aligns.

    python -m bench.background --data ../shared/data

Half of the distinct studio photos are registered (bench/sources.py's seeded split) and the
other half scanned; every alignment verification finds between different photos (women in the
same pose on a plain background: the hardest negatives in ../shared/data) is kept. Pooled over
them, it reports the share of visible spots confirmed at each descriptor distance 0..64, and the
share of visible textured grid cells that agree (its 95th percentile over the alignments).
evidence.py's constants are these figures times its MARGIN. The run is saved as
bench/results/background.json.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

from bench.cases import read_rgb
from bench.results import save
from bench.sources import SEED, distinct
from counterfake.evidence import DISTANCES, MARGIN
from counterfake.index.candidates import CandidateIndex
from counterfake.matching import Thresholds, verify
from counterfake.signature.extract import make_query, make_signature


def measure(data: Path) -> dict:
    photos, _ = distinct(sorted((data / "studio").glob("[0-9][0-9][0-9][0-9].jpg")))
    registered = set(random.Random(SEED).sample([p.stem for p in photos], len(photos) // 2))
    index, signatures = CandidateIndex(), {}
    for number, path in enumerate(p for p in photos if p.stem in registered):
        signatures[number] = make_signature(read_rgb(path), path.stem, "0" * 64)
        index.add(number, signatures[number])
    index.prepare()
    t = Thresholds()
    visible, confirmed, textured, agree, rates = 0, [], 0, 0, []
    for path in (p for p in photos if p.stem not in registered):
        query = make_query(read_rgb(path))
        for candidate in index.candidates(query.features.descriptors, t.candidates):
            if candidate.votes < t.min_votes:
                break
            for instance in verify(query, signatures[candidate.photo_id], candidate.mirrored, t):
                found = instance.evidence
                visible += found.visible
                confirmed += found.confirmed
                textured += found.textured
                agree += found.agree
                rates.append(found.agree / max(found.textured, 1))
    distances = np.asarray(confirmed)
    cdf = [float((distances <= d).sum() / visible) for d in range(DISTANCES)]
    return {
        "alignments": len(rates),
        "visible_spots": visible,
        "confirmed_share_by_distance": cdf,
        "textured_agreeing_pooled": agree / max(textured, 1),
        "textured_agreeing_largest": max(rates, default=0.0),
        "textured_agreeing_p95": float(np.percentile(rates, 95)) if rates else 0.0,
        "margin": MARGIN,
        "background_cdf": [round(max(p, 1 / visible) * MARGIN, 5) for p in cdf],
        # a rate 95% of different photos stay under: the largest alone is one pair of the
        # same woman from one shoot (docs/matching.md)
        "grid_agreement_rate": round(float(np.percentile(rates, 95)) * MARGIN, 2) if rates else 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    figures = measure(args.data.resolve())
    path = save("background", figures)
    print(
        f"{figures['alignments']} alignments of different photos, "
        f"{figures['visible_spots']} visible spots -> {path}"
    )
    print("BACKGROUND_CDF =", tuple(figures["background_cdf"]))
    print(
        "GRID_AGREEMENT_RATE =",
        figures["grid_agreement_rate"],
        f"(95th percentile {figures['textured_agreeing_p95']:.3f}, "
        f"largest {figures['textured_agreeing_largest']:.3f}, "
        f"pooled {figures['textured_agreeing_pooled']:.3f})",
    )


if __name__ == "__main__":
    main()
