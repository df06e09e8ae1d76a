# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mybinder.deploy.verify_namespace: runs the module in rounds and prints the open
problems between rounds, so a slow certificate or endpoint is visible while it is waited for; with
list_releases, prints the summary of the deploy at the end (releases, hosts, health), which a
debug task with a `helm list` lookup printed before (a task and a helm process per run)."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.mybinder.deploy.plugins.modules import verify_namespace
from ansible_collections.mybinder.deploy.plugins.plugin_utils._inprocess import tell
from ansible_collections.mybinder.deploy.plugins.plugin_utils._rounds import run_rounds

SHOWN = 3


def describe(result: dict[str, Any], elapsed: float, timeout: float) -> str:
    problems = result.get("problems") or []
    pods = result.get("pods") or {}
    head = f"verify: {elapsed:.0f}s of {timeout:.0f}s, {pods.get('ready', 0)}/{pods.get('checked', 0)} pods ready"
    if not problems:
        return f"{head}, healthy"
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    return f"{head}; waiting for: {'; '.join(problems[:SHOWN])}{more}"


def summary(result: dict[str, Any], hosts: list[str]) -> list[str]:
    """The deploy's summary: every release of the cluster, the hosts, the health counts."""
    lines = [
        f"release {r['name']} (namespace {r['namespace']}): revision {r['revision']}, {r['status']}, chart {r['chart']}"
        for r in result.get("releases") or []
    ]
    if result.get("releases_error"):
        lines.append(f"releases: not listed ({result['releases_error']})")
    lines.append(f"hosts: {', '.join(hosts) or 'none'}")
    pods, services = result.get("pods") or {}, result.get("services") or {}
    health = (
        f"health: {pods.get('ready', 0)}/{pods.get('checked', 0)} pods ready, "
        f"{services.get('with_endpoints', 0)}/{services.get('checked', 0)} services with endpoints"
    )
    if result.get("placement"):
        health += f", {result['placement'].get('core_pods', 0)} pods on core nodes, all pinned there"
    lines.append(health)
    return lines


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        timeout = float(args.get("timeout", 120))
        interval = float(args.get("progress_interval", 10))
        result.update(
            run_rounds(
                self, task_vars, verify_namespace, "mybinder.deploy.verify_namespace", args, timeout, interval, describe
            )
        )
        if "releases" in result and not result.get("failed") and not self._task.no_log:
            tell(task_vars, *summary(result, [str(h) for h in args.get("hosts") or []]))
        return result
