# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mybinder.deploy.rollout_status: runs the module in rounds and prints, between
rounds, how long it has waited, how many workloads are done and what the others wait for."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.mybinder.deploy.plugins.modules import rollout_status
from ansible_collections.mybinder.deploy.plugins.plugin_utils._rounds import run_rounds

SHOWN = 4


def describe(result: dict[str, Any], elapsed: float, timeout: float) -> str:
    pending = result.get("pending") or []
    total = len(pending) + len(result.get("ready") or [])
    head = f"rollout: {elapsed:.0f}s of {timeout:.0f}s, {total - len(pending)}/{total} workloads ready"
    if not pending:
        return head
    items = [f"{p['kind']} {p['namespace']}/{p['name']} ({p['message']})" for p in pending[:SHOWN]]
    more = f" and {len(pending) - SHOWN} more" if len(pending) > SHOWN else ""
    return f"{head}; waiting for {', '.join(items)}{more}"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        timeout = float(args.get("timeout", 300))
        interval = float(args.get("progress_interval", 10))
        result.update(
            run_rounds(
                self, task_vars, rollout_status, "mybinder.deploy.rollout_status", args, timeout, interval, describe
            )
        )
        return result
