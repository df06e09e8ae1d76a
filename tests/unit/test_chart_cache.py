"""The chart cache of repository charts (module_utils/_chart_repo.prune): a new version of a chart
removes its versions that no run used for 30 days, and nothing else."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))

from ansible_collections.mybinder.deploy.plugins.module_utils import _chart_repo as cr

DAY = 24 * 3600


def cached(charts: Path, entry: str, chart: str, age_days: float, now: float) -> Path:
    home = charts / entry
    (home / chart).mkdir(parents=True)
    (home / chart / "Chart.yaml").write_text(f"name: {chart}\n")
    os.utime(home, (now - age_days * DAY, now - age_days * DAY))
    return home


def test_a_new_version_removes_only_old_unused_versions_of_the_same_chart(tmp_path):
    now = time.time()
    charts = tmp_path / "charts"
    new = cached(charts, "web-1.1.0-aaaaaaaaaaaaaaaa", "web", 0, now)
    old_unused = cached(charts, "web-1.0.0-bbbbbbbbbbbbbbbb", "web", 31, now)
    still_used = cached(charts, "web-0.9.0-cccccccccccccccc", "web", 29, now)  # another inventory's pin
    other_chart = cached(charts, "web-extra-1.0.0-dddddddddddddddd", "web-extra", 90, now)  # a different chart
    stale_pull = charts / ".pull-x1"
    fresh_pull = charts / ".pull-x2"  # a concurrent run's download in progress
    stale_pull.mkdir()
    fresh_pull.mkdir()
    os.utime(stale_pull, (now - 2 * DAY, now - 2 * DAY))

    removed = cr.prune(str(charts), "web", keep=str(new), now=now)

    assert removed == [".pull-x1", old_unused.name]
    assert new.is_dir() and still_used.is_dir() and other_chart.is_dir() and fresh_pull.is_dir()
    assert not old_unused.exists() and not stale_pull.exists()


def test_the_version_kept_is_never_removed_however_old(tmp_path):
    now = time.time()
    keep = cached(tmp_path, "web-1.0.0-aaaaaaaaaaaaaaaa", "web", 400, now)
    assert cr.prune(str(tmp_path), "web", keep=str(keep), now=now) == []
    assert keep.is_dir()
