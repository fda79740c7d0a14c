"""The command line. Thin: it parses, calls the layers below, and prints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from counterfake import __version__
from counterfake.imaging import DEFAULT_MAX_PIXELS
from counterfake.journal import Journal, JournalError
from counterfake.registry import Registry, RegistryError, default_db_path
from counterfake.reports.json_report import write_results
from counterfake.scan import FileResult, Scanner, default_workers, hash_files
from counterfake.signature import cfsig
from counterfake.sources.telegram import ExportSummary

T = TypeVar("T")
err = Console(stderr=True, highlight=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (RegistryError, cfsig.SignatureFileError, JournalError) as error:
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

    register = command("register", _register, "register photos (or a .cfsig file) for a subject")
    register.add_argument("paths", nargs="*", metavar="PATH", help="photos or folders (recursive)")
    register.add_argument("--subject", required=True, help="whose photos these are")
    register.add_argument("--signatures", metavar="FILE", help="a .cfsig file made by 'hash'")
    _db_option(register)
    _decoding_options(register)

    hash_ = command("hash", _hash, "write the signatures of photos to a .cfsig file (offline)")
    hash_.add_argument("paths", nargs="+", metavar="PATH", help="photos or folders (recursive)")
    hash_.add_argument("-o", "--output", required=True, metavar="FILE", help="the .cfsig to write")
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
    scan.add_argument("--masks", metavar="DIR", help="write a PNG mask per manipulated match")
    _db_option(scan)
    _decoding_options(scan)

    subjects = command("subjects", _subjects, "list the registered subjects")
    _db_option(subjects)

    withdraw = command("withdraw", _withdraw, "delete a subject and all her signatures")
    withdraw.add_argument("--subject", required=True)
    _db_option(withdraw)
    return parser


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default=None, help="registry file (default: $COUNTERFAKE_DB, else ./counterfake.db)"
    )


def _decoding_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse images with more pixels than this (default {DEFAULT_MAX_PIXELS:,})",
    )
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


def _signatures_of(args: argparse.Namespace) -> list:
    """Hash the files named on the command line, reporting each unreadable one on stderr."""
    signatures = []
    with _progress("hashing") as progress:
        results = hash_files(args.paths, max_pixels=args.max_pixels, workers=args.workers)
        for result in _tracked(progress, results):
            if result.error:
                err.print(f"skipped {result.error}", markup=False)
            else:
                signatures.append(result.signature)
    return signatures


def _register(args: argparse.Namespace) -> int:
    if not args.paths and not args.signatures:
        err.print("counterfake register: give photos or folders, or --signatures FILE")
        return 2
    signatures = cfsig.read(args.signatures) if args.signatures else []
    signatures += _signatures_of(args) if args.paths else []
    with Registry(_db(args)) as registry:
        added, existing = registry.register(args.subject, signatures)
    print(f"registered {added} photo(s) for {args.subject}; {existing} already registered")
    return 0


def _hash(args: argparse.Namespace) -> int:
    signatures = _signatures_of(args)
    cfsig.write(args.output, signatures)
    print(f"wrote {len(signatures)} signature(s) to {args.output} (signatures only, no pixels)")
    return 0


def _scan(args: argparse.Namespace) -> int:
    db = _db(args)
    if not Path(db).exists():
        err.print(f"counterfake: {db}: no registry here; register photos first (or pass --db)")
        return 2
    journal = Journal(args.json, _scan_settings(args, db)) if args.json else None
    if journal is not None and journal.done:
        err.print(f"resuming: {len(journal.done)} result(s) from {journal.path}", markup=False)
    scanner = Scanner(db, max_pixels=args.max_pixels)
    results: list[FileResult] = []
    exports: list[ExportSummary] = []
    interrupted = False
    try:
        with _progress("scanning") as progress:
            found = scanner.scan(
                args.paths,
                masks_dir=args.masks,
                workers=args.workers,
                exports=exports,
                done=journal.done if journal else None,
            )
            for result in _tracked(progress, found):
                if journal is not None:
                    journal.add(result)
                results.append(result)
                if result.error:
                    err.print(result.error, markup=False)
    except KeyboardInterrupt:
        interrupted = True
    if journal is not None:
        journal.close()
        write_results(args.json, results, registry=db, interrupted=interrupted, telegram=exports)
        if interrupted:
            err.print(f"run the same command again to resume from {journal.path}", markup=False)
        else:
            journal.remove()
    _summarise(results, interrupted, exports)
    return 130 if interrupted else 0


def _scan_settings(args: argparse.Namespace, db: str) -> dict[str, object]:
    """What must be the same for a scan to resume another: inputs, registry, decoding, masks."""
    return {
        "inputs": [str(Path(path).absolute()) for path in args.paths],
        "registry": str(Path(db).absolute()),
        "max_pixels": args.max_pixels,
        "masks": str(Path(args.masks).absolute()) if args.masks else None,
    }


def _summarise(results: list[FileResult], interrupted: bool, exports: list[ExportSummary]) -> None:
    errors = sum(1 for r in results if r.error)
    kinds = [m["kind"] for r in results for m in r.matches]
    print(
        f"scanned {len(results)} file(s): {kinds.count('manipulated')} manipulated, "
        f"{kinds.count('repost')} repost(s), {errors} unreadable"
        + (" (interrupted)" if interrupted else "")
    )
    for export in exports:
        counts = export.to_json()
        print(
            f"  telegram export {export.path}: {counts['chats']} chat(s), "
            f"{counts['messages']} message(s), {counts['images']} image(s), "
            f"{counts['not_included']} not included in the export, "
            f"{counts['refused_paths']} refused path(s)"
        )
    for result in results:
        for match in result.matches:
            print(
                f"  {match['kind']:<11} {result.path}  <-  {match['photo']} ({match['subject']}), "
                f"score {match['score']:.2f}, altered {match['altered_fraction']:.0%}"
            )


def _subjects(args: argparse.Namespace) -> int:
    with Registry(_db(args)) as registry:
        for name, count in registry.subjects():
            print(f"{name}\t{count} photo(s)")
    return 0


def _withdraw(args: argparse.Namespace) -> int:
    with Registry(_db(args)) as registry:
        count = registry.withdraw(args.subject)
    print(f"withdrew {args.subject}: {count} signature(s) deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
