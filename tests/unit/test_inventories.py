"""The inventories' files: inventories/local-fleet shares every setting of inventories/local
(file links: ansible-test refuses links to directories)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_fleet_links_every_group_vars_file_of_the_local_environment():
    local = ROOT / "inventories" / "local" / "group_vars" / "mybinder_clusters"
    fleet = ROOT / "inventories" / "local-fleet" / "group_vars" / "mybinder_clusters"
    assert sorted(p.name for p in fleet.iterdir()) == sorted(p.name for p in local.iterdir())
    for link in fleet.iterdir():
        assert link.is_symlink(), f"{link} should be a link to {local / link.name}"
        assert (fleet / os.readlink(link)).resolve() == (local / link.name).resolve()
