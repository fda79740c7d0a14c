"""Result files: every benchmark run saved with what it ran on, so a figure can be traced.

Each file is JSON with the commit (and whether the work tree had changes), the date, the
machine and the command, beside the run's own figures. They go to bench/results/ (committed;
each is a few kilobytes), and docs are written from them.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import counterfake

RESULTS = Path(__file__).resolve().parent / "results"


def _git(*args: str) -> str:
    found = subprocess.run(
        ["git", *args], capture_output=True, text=True, cwd=RESULTS.parent, check=False
    )
    return found.stdout.strip()


def _module() -> str:
    """The module this run was started as (``bench.accuracy``), not its file's stem."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return spec.name if spec is not None else Path(sys.argv[0]).stem


def run_context() -> dict[str, Any]:
    """Commit, date, machine and command of this run."""
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "work_tree_changed": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "python": platform.python_version(),
        # which counterfake ran: this checkout's, or another one's put first on PYTHONPATH
        "counterfake": str(Path(counterfake.__file__).resolve().parent),
        "command": "python -m " + " ".join([_module(), *sys.argv[1:]]),
    }


def save(name: str, figures: dict[str, Any]) -> Path:
    """Write bench/results/<name>.json with the run's context; return its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"run": run_context(), **figures}, indent=1) + "\n")
    return path
