"""The scan results as one JSON document (the format is described in the README)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from counterfake import __version__
from counterfake.atomic import atomic_writer
from counterfake.db import display_name
from counterfake.results import FileResult
from counterfake.sources.telegram import ExportSummary


def write_results(
    path: str | os.PathLike,
    results: Iterable[FileResult],
    *,
    registry: str,
    interrupted: bool,
    telegram: Iterable[ExportSummary] = (),
) -> None:
    """Write the scan's JSON document atomically (a reader never sees half of it).

    ``telegram`` lists what each Telegram export scanned held (chats, messages, images, media
    not included, refused paths).
    """
    document = {
        "tool": f"counterfake {__version__}",
        "registry": display_name(registry),
        "interrupted": interrupted,
        "telegram": [summary.to_json() for summary in telegram],
        "results": [r.to_json() for r in results],
    }
    with atomic_writer(path) as file:
        json.dump(document, file, indent=2)
