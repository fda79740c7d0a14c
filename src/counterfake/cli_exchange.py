"""The ``exchange`` commands: PDQ and vPDQ hashes shared with other programmes (ThreatExchange,
HMA, StopNCII), exported under opaque references, imported into their own tables, looked up."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from counterfake.exchange import (
    ExchangeFormatError,
    PdqMatch,
    check_bank_name,
    index_pdq_hashes,
    read_pdq_records,
    write_pdq_records,
)
from counterfake.exchange import (
    lookup_pdq as lookup_in_index,
)
from counterfake.imaging import load_image
from counterfake.references import OpaqueIds, exported_records
from counterfake.registered import default_db_path
from counterfake.registry import Registry
from counterfake.signature.pdq import MIN_QUALITY, PdqHash, pdq_hash
from counterfake.video.exchange import VpdqRecord, read_vpdq_records, write_vpdq_records
from counterfake.video.vpdq import (
    QUERY_MATCH_PERCENT,
    feature_from_line,
    features_from_json,
    match_percent,
    vpdq_hash,
)

err = Console(stderr=True, highlight=False, soft_wrap=True)


def export_pdq(args: argparse.Namespace) -> int:
    """The registered photos' PDQ (original orientation), under opaque references: never the
    subject's name or the photo's label. Hashes under Meta's quality floor are left out."""
    with Registry(args.db or default_db_path()) as registry:
        held = sum(1 for _ in registry.photo_pdq_hashes())
        kept = list(exported_records(registry, OpaqueIds(registry.db)))
    with open(args.output, "w", encoding="utf-8", newline="") as out:
        write_pdq_records(kept, out, args.format)
    print(
        f"exported {len(kept)} PDQ hash(es) to {args.output} ({args.format}); "
        f"{held - len(kept)} under quality {MIN_QUALITY} left out"
    )
    return 0


def import_pdq(args: argparse.Namespace) -> int:
    check_bank_name(args.source)
    records = list(read_pdq_records(args.file))  # all read before any is stored
    withdrawn = sum(record.withdrawn for record in records)
    with Registry(args.db or default_db_path()) as registry:
        added = registry.add_pdq_hashes(records, source=args.source)
    print(
        f"imported {added} PDQ hash(es) from {args.file} as {args.source}; "
        f"{len(records) - withdrawn - added} already held; "
        f"{withdrawn} withdrawn by the sharer (deleted here if held)"
    )
    return 0


def export_vpdq(args: argparse.Namespace) -> int:
    """The registered videos' vPDQ under opaque references (never a subject or a label)."""
    with Registry(args.db or default_db_path()) as registry:
        ids = OpaqueIds(registry.db)
        records = [
            VpdqRecord(
                tuple(map(feature_from_line, registry.video_vpdq(v.video_id).split())),
                ids("video", v.video_id),
            )
            for v in registry.videos()
        ]
    with open(args.output, "w", encoding="utf-8", newline="") as out:
        count = write_vpdq_records(records, out)
    print(f"exported the vPDQ of {count} video(s) to {args.output} (threatexchange)")
    return 0


def import_vpdq(args: argparse.Namespace) -> int:
    check_bank_name(args.source)
    records = list(read_vpdq_records(args.file))  # all read before any is stored
    with Registry(args.db or default_db_path()) as registry:
        added = registry.add_vpdq(records, source=args.source)
    print(
        f"imported {added} vPDQ signal(s) from {args.file} as {args.source}; "
        f"{len(records) - added} already held"
    )
    return 0


def lookup_vpdq(args: argparse.Namespace) -> int:
    """Meta's decision alone (80% of the video's good frames within distance 31)."""
    query = vpdq_hash(args.video)
    found = 0
    with Registry(args.db or default_db_path()) as registry:
        held = [
            (f"{v.subject}: {v.label}", registry.video_vpdq(v.video_id)) for v in registry.videos()
        ]
        candidates = [
            (name, tuple(map(feature_from_line, lines.split()))) for name, lines in held
        ] + [
            (f"{source}: {ref or row_id}", tuple(features_from_json(signal)))
            for row_id, source, signal, ref in registry.imported_vpdq()
        ]
    for name, features in candidates:
        percent = match_percent(query, features)
        if percent >= QUERY_MATCH_PERCENT:
            found += 1
            print(f"{name}\t{percent:.0f}% of the video's frames", flush=True)
    if not found:
        print(f"{args.video}: no registered or imported video matches by vPDQ")
    return 0


def lookup_pdq(args: argparse.Namespace) -> int:
    queries = _lookup_queries(args.query)
    with Registry(args.db or default_db_path()) as registry:
        index = index_pdq_hashes(registry.pdq_hashes(dihedral=True))
        for name, pdq in queries:
            if pdq.quality < MIN_QUALITY:
                err.print(f"{name}: quality {pdq.quality} is under {MIN_QUALITY}", markup=False)
            matches = lookup_in_index(index, pdq.hex(), args.max_distance)
            print(f"{name}: {len(matches)} match(es)")
            for match in matches:
                print(f"  {_describe_pdq_match(registry, match)}, distance {match.distance}")
    return 0


def _lookup_queries(query: str) -> list[tuple[str, PdqHash]]:
    """(name, hash) to look up: a hash given as 64 hex digits, a hash file, or an image."""
    if not Path(query).exists():
        try:
            return [(query, PdqHash.from_hex(query))]
        except ValueError:
            raise ExchangeFormatError(f"{query}: neither a PDQ hash nor a file") from None
    try:
        Path(query).read_text(encoding="utf-8")
    except UnicodeDecodeError:  # binary: an image
        return [(query, pdq_hash(load_image(query)))]
    return [
        (
            f"{query}: {record.ref or record.hash_hex}",
            PdqHash.from_hex(record.hash_hex, record.quality or 100),
        )
        for record in read_pdq_records(query)
    ]


def _describe_pdq_match(registry: Registry, match: PdqMatch) -> str:
    if match.kind == "photo":
        photo = registry.photo(int(match.ref))
        return f"photo {photo.photo_id} {photo.label} ({photo.subject})"
    imported = registry.imported_pdq(int(match.ref))
    if imported is None:  # withdrawn by its sharer since the lookup
        return f"imported {match.ref} (withdrawn since)"
    source, _, _, ref = imported
    return f"imported {match.ref} from {source}" + (f" ({ref})" if ref else "")
