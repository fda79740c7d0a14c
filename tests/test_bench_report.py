"""bench.report sets a run before a change beside the same run after it, figure by figure."""

from __future__ import annotations

import json

import bench.report


def _save(folder, name, figures):
    run = {"commit": name, "command": f"python -m bench.pairs --name {name}"}
    (folder / f"{name}.json").write_text(json.dumps({"run": run, **figures}))


def test_runs_before_and_after_are_compared_on_every_figure_but_timings(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.report, "RESULTS", tmp_path)
    figures = {"images": 10, "pair_recall": 0.9, "pairs_seconds": 12.0, "by_case": {"a": 1.0}}
    _save(tmp_path, "pairs-x-before", figures)
    _save(tmp_path, "pairs-x-after", {**figures, "pairs_seconds": 30.0})
    _save(tmp_path, "pairs-y-before", figures)
    _save(tmp_path, "pairs-y-after", {**figures, "by_case": {"a": 0.5}})
    _save(tmp_path, "pairs-z-before", figures)  # no after: not compared
    page = "\n".join(bench.report.comparisons())
    assert "**pairs-x**: 3 figures compared, all equal." in page
    assert "**pairs-y**: 3 figures compared, 1 differ: ['by_case.a']." in page
    assert "pairs-z" not in page
    assert "| pair_recall | 0.9 | 0.9 |" in page
