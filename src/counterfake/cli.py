"""The command line. Thin: one argument parser (what a user reads with ``--help``) and one
short function per command, calling the layers below; the ``exchange`` commands are in
cli_exchange.py, and what a scan writes beside its results in scan_output.py."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from counterfake import __version__, cli_exchange, cli_serve, scan_output
from counterfake.atomic import atomic_writer, check_writable
from counterfake.cluster import ClusterError, connect
from counterfake.cluster.pairs import ClusterSpread
from counterfake.cluster.scan import scan_on_cluster
from counterfake.exchange import (
    FORMATS,
    ExchangeFormatError,
)
from counterfake.imaging import ImageError
from counterfake.journal import Journal, JournalError
from counterfake.keys import ROLES, ApiKeyError, KeyStore
from counterfake.loading import new_index
from counterfake.pairs import PairFinder
from counterfake.parallel import default_workers
from counterfake.registered import (
    RegistryError,
    check_subject_name,
    default_db_path,
    registry_exists,
)
from counterfake.registry import Registry
from counterfake.registry_migrate import migrate
from counterfake.registry_tables import SCHEMA_VERSION
from counterfake.reports.csv_report import write_csv, write_pairs_csv
from counterfake.reports.evidence import (
    EvidenceError,
    check_evidence_target,
    verify_evidence,
    write_evidence,
)
from counterfake.reports.html import write_pairs_report
from counterfake.reports.json_report import write_results
from counterfake.results import FileResult
from counterfake.scan import Scanner, hash_files
from counterfake.signature import cfsig
from counterfake.signature.pdq import MATCH_THRESHOLD
from counterfake.sources.telegram import ExportSummary

T = TypeVar("T")
err = Console(stderr=True, highlight=False, soft_wrap=True)


_PATHS_HELP = "photos, videos or folders (recursive)"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (
        ClusterError,
        RegistryError,
        cfsig.SignatureFileError,
        JournalError,
        ApiKeyError,
        ExchangeFormatError,
        ImageError,
    ) as error:
        err.print(f"counterfake: {error}", markup=False)
        return 2
    except OSError as error:  # an output that cannot be written: --json, --masks, -o
        err.print(f"counterfake: {error.filename or ''}: {error.strerror or error}", markup=False)
        return 2
    except KeyboardInterrupt:
        err.print("counterfake: interrupted", markup=False)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="counterfake",
        description="Find reposts and manipulated derivatives of registered photos.",
    )
    parser.add_argument("--version", action="version", version=f"counterfake {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    register = command(
        "register", _register, "register photos and videos (or a .cfsig file) for a subject"
    )
    register.add_argument("paths", nargs="*", metavar="PATH", help=_PATHS_HELP)
    register.add_argument("--subject", required=True, help="whose photos these are")
    register.add_argument("--signatures", metavar="FILE", help="a .cfsig file made by 'hash'")
    _db_option(register)
    _decoding_options(register)

    hash_ = command(
        "hash", _hash, "write the signatures of photos and videos to a .cfsig file (offline)"
    )
    hash_.add_argument("paths", nargs="+", metavar="PATH", help=_PATHS_HELP)
    hash_.add_argument("-o", "--output", required=True, metavar="FILE", help="the .cfsig to write")
    hash_.add_argument(
        "--mirror",
        action="store_true",
        help="also keep each image's mirror image's features: for signatures to be matched "
        "(POST /match/signatures finds mirrored copies with them), not registered",
    )
    _decoding_options(hash_)

    scan = command("scan", _scan, "scan images for registered photos and their derivatives")
    scan.add_argument(
        "paths", nargs="+", metavar="PATH", help="images, folders (recursive), Telegram exports"
    )
    scan.add_argument(
        "--json",
        metavar="FILE",
        help="write the results as JSON; an interrupted scan resumes from FILE.journal",
    )
    _report_options(scan, "match", "one CSV row per match and per error")
    _db_option(scan)
    _decoding_options(scan)
    cli_serve.index_option(scan)
    cli_serve.cluster_options(scan)

    pairs = command(
        "pairs",
        _pairs,
        "find source -> derivative pairs within a collection (no registry needed)",
    )
    pairs.add_argument(
        "paths", nargs="+", metavar="PATH", help="images, folders (recursive), Telegram exports"
    )
    pairs.add_argument("--json", metavar="FILE", required=True, help="write the pairs as JSON")
    _report_options(pairs, "pair", "one CSV row per pair")
    _decoding_options(pairs)
    cli_serve.cluster_options(pairs, "the images at the same paths")

    verify = command(
        "verify-evidence", _verify_evidence, "check an evidence folder written by scan --evidence"
    )
    verify.add_argument("directory", metavar="DIR")
    verify.add_argument(
        "--expect", metavar="HASH", help="the last-line hash kept elsewhere when it was written"
    )

    subjects = command("subjects", _subjects, "list the registered subjects")
    _db_option(subjects)

    withdraw = command("withdraw", _withdraw, "delete a subject and all her signatures")
    withdraw.add_argument("--subject", required=True)
    _db_option(withdraw)

    registry = commands.add_parser(
        "registry", help="maintain a registry", description="maintain a registry"
    ).add_subparsers(required=True, metavar="ACTION")
    migrate = registry.add_parser(
        "migrate", help="rewrite a registry of an older version in the current signature form"
    )
    migrate.add_argument(
        "registry",
        nargs="?",
        metavar="REGISTRY",
        help="a SQLite file or a postgresql:// URL (else --db, $COUNTERFAKE_DB, ./counterfake.db)",
    )
    migrate.set_defaults(run=_registry_migrate)
    _db_option(migrate)

    keys = commands.add_parser(
        "keys", help="API keys of the matching service", description="API keys of the service"
    ).add_subparsers(required=True, metavar="ACTION")
    create = keys.add_parser("create", help="create a key; its secret is printed once")
    create.set_defaults(run=_keys_create)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", required=True, help="whose key it is (e.g. the platform)")
    list_ = keys.add_parser("list", help="list keys (never their secrets)")
    list_.set_defaults(run=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key at once")
    revoke.set_defaults(run=_keys_revoke)
    revoke.add_argument("key_id", type=int, metavar="ID")
    for sub in (create, list_, revoke):
        _db_option(sub)

    exchange = commands.add_parser(
        "exchange",
        help="PDQ hash exchange with StopNCII, ThreatExchange and HMA",
        description="PDQ hash exchange with StopNCII, ThreatExchange and HMA (docs/exchange.md)",
    ).add_subparsers(required=True, metavar="ACTION")
    export = exchange.add_parser("export", help="write the registered photos' PDQ hashes")
    export.set_defaults(run=cli_exchange.export_pdq)
    export.add_argument("-o", "--output", required=True, metavar="FILE")
    export.add_argument("--format", required=True, choices=FORMATS)
    import_ = exchange.add_parser("import", help="store PDQ hashes shared by a programme")
    import_.set_defaults(run=cli_exchange.import_pdq)
    import_.add_argument("file", metavar="FILE", help="any of the formats; detected")
    import_.add_argument("--source", required=True, help="who shared them (e.g. stopncii)")
    export_v = exchange.add_parser(
        "export-vpdq", help="write the registered videos' vPDQ (ThreatExchange CSV)"
    )
    export_v.set_defaults(run=cli_exchange.export_vpdq)
    export_v.add_argument("-o", "--output", required=True, metavar="FILE")
    import_v = exchange.add_parser(
        "import-vpdq", help="store vPDQ signals shared in a ThreatExchange CSV"
    )
    import_v.set_defaults(run=cli_exchange.import_vpdq)
    import_v.add_argument("file", metavar="FILE")
    import_v.add_argument("--source", required=True, help="who shared them")
    lookup_v = exchange.add_parser(
        "lookup-vpdq", help="registered and imported videos a video matches by vPDQ alone"
    )
    lookup_v.set_defaults(run=cli_exchange.lookup_vpdq)
    lookup_v.add_argument("video", metavar="VIDEO")
    for sub in (export_v, import_v, lookup_v):
        _db_option(sub)
    lookup = exchange.add_parser("lookup", help="PDQ hashes held near a hash or an image's")
    lookup.set_defaults(run=cli_exchange.lookup_pdq)
    lookup.add_argument("query", metavar="HEX|FILE", help="a PDQ hash, a hash file or an image")
    lookup.add_argument(
        "--max-distance",
        type=int,
        default=MATCH_THRESHOLD,
        help=f"most differing bits of 256 (default {MATCH_THRESHOLD}, Meta's threshold)",
    )
    for sub in (export, import_, lookup):
        _db_option(sub)

    serve = command("serve", cli_serve.serve, "run the HTTP matching service (see docs/service.md)")
    cli_serve.serve_options(serve)
    return parser


def _report_options(parser: argparse.ArgumentParser, finding: str, csv_rows: str) -> None:
    """The outputs scan and pairs share: masks, HTML report, CSV and evidence."""
    masks_help = f"write a PNG mask per manipulated {finding}"
    parser.add_argument("--masks", metavar="DIR", help=masks_help)
    parser.add_argument("--report", metavar="FILE", help="write a self-contained HTML report")
    parser.add_argument("--csv", metavar="FILE", help=f"write {csv_rows}")
    parser.add_argument(
        "--evidence", metavar="DIR", help="write a hash-chained evidence folder (new or empty)"
    )


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help="registry: a SQLite file or a postgresql:// URL "
        "(default: $COUNTERFAKE_DB, else ./counterfake.db)",
    )


def _decoding_options(parser: argparse.ArgumentParser) -> None:
    cli_serve.max_pixels_option(parser)
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="processes to use (default: cores)"
    )


def _db(args: argparse.Namespace) -> str:
    return args.db or default_db_path()


@contextmanager
def _progress(description: str) -> Iterator[Progress | None]:
    """A progress bar on a terminal; nothing when output goes to a file or a pipe."""
    if not err.is_terminal:
        yield None
        return
    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        yield progress


def _tracked(progress: Progress | None, items: Iterator[T]) -> Iterator[T]:
    if progress is None:
        yield from items
        return
    task = progress.add_task("", total=None)
    for item in items:
        progress.advance(task)
        yield item


def _signatures_of(args: argparse.Namespace) -> cfsig.Contents:
    """Hash the files named on the command line, reporting each unreadable one on stderr."""
    contents = cfsig.Contents()
    with _progress("hashing") as progress:
        results = hash_files(
            args.paths,
            max_pixels=args.max_pixels,
            workers=args.workers,
            mirror=getattr(args, "mirror", False),
        )
        for result in _tracked(progress, results):
            if result.error:
                err.print(f"skipped {result.error}", markup=False)
            elif result.video is not None:
                contents.videos.append(result.video)
            elif result.signature is not None:
                contents.photos.append(result.signature)
    return contents


def _register(args: argparse.Namespace) -> int:
    if not args.paths and not args.signatures:
        err.print("counterfake register: give photos or folders, or --signatures FILE")
        return 2
    try:
        check_subject_name(args.subject)
    except ValueError as error:
        err.print(f"counterfake register: --subject {args.subject!r}: {error}", markup=False)
        return 2
    contents = cfsig.read_contents(args.signatures) if args.signatures else cfsig.Contents()
    if args.paths:
        hashed = _signatures_of(args)
        contents.photos += hashed.photos
        contents.videos += hashed.videos
    with Registry(_db(args)) as registry:
        added, existing = registry.register(args.subject, contents.photos)
        videos = sum(registry.register_video(args.subject, v) for v in contents.videos)
    if contents.photos or not contents.videos:
        print(f"registered {added} photo(s) for {args.subject}; {existing} already registered")
    if contents.videos:
        print(
            f"registered {videos} video(s) for {args.subject}; "
            f"{len(contents.videos) - videos} already registered"
        )
    return 0


def _hash(args: argparse.Namespace) -> int:
    contents = _signatures_of(args)
    cfsig.write(args.output, contents.photos, contents.videos)
    videos = f" and {len(contents.videos)} video(s)" if contents.videos else ""
    print(
        f"wrote {len(contents.photos)} signature(s){videos} to {args.output} "
        "(signatures only, no pixels)"
    )
    return 0


def _scan(args: argparse.Namespace) -> int:
    db = _db(args)
    if not registry_exists(db):
        err.print(f"counterfake: {db}: no registry here; register photos first (or pass --db)")
        return 2
    for output in (args.json, args.report, args.csv):
        if output:
            check_writable(output)  # an OSError here is one line and exit 2, before any work
    if args.evidence:
        check_evidence_target(args.evidence)
    journal = Journal(args.json, scan_output.scan_settings(args, db)) if args.json else None
    if journal is not None and journal.done:
        err.print(f"resuming: {len(journal.done)} result(s) from {journal.path}", markup=False)
    index = cli_serve.sharded_index(args, db)  # None without --cluster
    chosen = new_index(args.index) if index is None else index  # an empty index is false
    scanner = Scanner(db, max_pixels=args.max_pixels, index=chosen)
    results: list[FileResult] = []
    exports: list[ExportSummary] = []
    interrupted = False
    started = datetime.now(UTC)
    scratch = scan_output.scratch_masks(args)
    try:
        with _progress("scanning") as progress:
            done, masks = journal.done if journal else None, args.masks or scratch
            if index is None:
                found = scanner.scan(
                    args.paths, masks_dir=masks, workers=args.workers, exports=exports, done=done
                )
            else:
                found = scan_on_cluster(
                    scanner, index, args.paths, masks_dir=masks, exports=exports, done=done
                )
            for result in _tracked(progress, found):
                if journal is not None:
                    journal.add(result)
                results.append(result)
                if result.error:
                    err.print(result.error, markup=False)
    except KeyboardInterrupt:
        interrupted = True
    anchor = scan_output.write_reports(args, results, scanner, started, interrupted)
    if scratch is not None:
        for result in results:  # the scratch masks are not the user's: do not point at them
            result.matches = [replace(match, mask=None) for match in result.matches]
        if not (interrupted and journal is not None):
            shutil.rmtree(scratch, ignore_errors=True)
    if journal is not None:
        journal.close()
        write_results(args.json, results, registry=db, interrupted=interrupted, telegram=exports)
        if interrupted:
            err.print(f"run the same command again to resume from {journal.path}", markup=False)
        else:
            journal.remove()
    if args.csv:
        write_csv(args.csv, results)
    scan_output.summarise(results, interrupted, exports)
    if anchor:
        print(
            f"evidence in {args.evidence}; keep this hash elsewhere to prove it unchanged: {anchor}"
        )
    return 130 if interrupted else 0


def _pairs(args: argparse.Namespace) -> int:
    for output in (args.json, args.report, args.csv):
        if output:
            check_writable(output)
    if args.evidence:
        check_evidence_target(args.evidence)
    scratch = None
    if not args.masks and (args.report or args.evidence):
        scratch = Path(tempfile.mkdtemp(prefix="counterfake-masks-"))
    started = datetime.now(UTC)
    spread = None
    if args.cluster:
        ray = connect(args.cluster)
        spread = ClusterSpread(ray, cli_serve.shard_count(args, ray))
    finder = PairFinder(max_pixels=args.max_pixels, workers=args.workers, spread=spread)
    exports: list[ExportSummary] = []
    try:
        doc = finder.find(args.paths, masks_dir=args.masks or scratch, exports=exports)
        doc.telegram = [export.to_json() for export in exports]
        for error in doc.errors:
            err.print(error["error"], markup=False)
        if args.report:
            write_pairs_report(args.report, doc, max_pixels=args.max_pixels)
        anchor = None
        if args.evidence:
            anchor = write_evidence(
                args.evidence,
                doc.file_results(),
                registry=None,
                started=started,
                thresholds=finder.thresholds,
                settings={
                    "command": "pairs",
                    "paths": list(args.paths),
                    "max_pixels": args.max_pixels,
                },
            )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if scratch is not None:
        # the scratch masks are gone: do not point at them
        doc.pairs = [replace(pair, mask=None) for pair in doc.pairs]
    with atomic_writer(args.json) as file:
        json.dump(doc.to_json(), file, indent=1, ensure_ascii=False)
    if args.csv:
        write_pairs_csv(args.csv, doc)
    kinds = [p.kind for p in doc.pairs]
    print(
        f"examined {doc.images} image(s): {len(doc.pairs)} pair(s) "
        f"({kinds.count('manipulated')} manipulated, {kinds.count('repost')} repost(s)) in "
        f"{len(doc.clusters)} cluster(s); {doc.photos_affected} original photo(s) affected, "
        f"{doc.scenes} scene(s); {len(doc.errors)} unreadable"
    )
    for pair in doc.pairs:
        print(
            f"  {pair.kind:<11} {pair.derivative}  <-  {pair.source}, "
            f"score {pair.score:.2f}, altered {pair.altered_fraction:.0%}"
        )
    if anchor:
        print(
            f"evidence in {args.evidence}; keep this hash elsewhere to prove it unchanged: {anchor}"
        )
    return 0


def _verify_evidence(args: argparse.Namespace) -> int:
    if not Path(args.directory).is_dir():
        err.print(f"counterfake: {args.directory}: no such folder", markup=False)
        return 2
    try:
        print(verify_evidence(args.directory, expect=args.expect))
    except EvidenceError as error:
        err.print(f"BROKEN {args.directory}: {error}", markup=False)
        return 1
    return 0


def _subjects(args: argparse.Namespace) -> int:
    with Registry(_db(args)) as registry:
        for name, count in registry.subjects():
            print(f"{name}\t{count} photo(s)")
    return 0


def _withdraw(args: argparse.Namespace) -> int:
    from counterfake.service.records import ReviewStore  # a service's records of her, if any

    with Registry(_db(args)) as registry:
        count = registry.withdraw(args.subject)
        ReviewStore(registry.db).forget_subject(args.subject)
    print(f"withdrew {args.subject}: {count} signature(s) deleted")
    return 0


def _registry_migrate(args: argparse.Namespace) -> int:
    done = migrate(args.registry or _db(args))
    if done.done_before:
        print(f"{done.name}: already in the current form (schema {SCHEMA_VERSION}); nothing to do")
    else:
        print(
            f"{done.name}: migrated {done.photos} signature(s) from schema {done.old_version} to "
            f"{SCHEMA_VERSION}: {done.bytes_before:,} bytes became {done.bytes_after:,}"
        )
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    with Registry(_db(args)) as registry:
        key, secret = KeyStore(registry.db).create(args.role, args.name)
    print(secret)
    err.print(
        f"created key {key.id} ({key.role}, {key.name}); the line above is its secret, "
        "shown only this once",
        markup=False,
    )
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    with Registry(_db(args)) as registry:
        for key in KeyStore(registry.db).list():
            state = f"revoked {key.revoked_at}" if key.revoked_at else "active"
            print(f"{key.id}\t{key.role}\t{key.name}\tcreated {key.created_at}\t{state}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    with Registry(_db(args)) as registry:
        KeyStore(registry.db).revoke(args.key_id)
    print(f"revoked key {args.key_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
