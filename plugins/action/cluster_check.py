# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mybinder.deploy.cluster_check: runs the module in Ansible's worker process when the
task runs on the controller with the controller's Python (see plugin_utils/_inprocess.py), and
prints which cluster answered (server version, URL, context, user): the one line an operator
wants to see before a deploy touches a cluster, without a debug task to show it."""

from __future__ import annotations

from typing import Any

from ansible_collections.mybinder.deploy.plugins.modules import cluster_check
from ansible_collections.mybinder.deploy.plugins.plugin_utils._inprocess import ModuleAction, tell


def report(result: dict[str, Any]) -> str:
    user = f", user {result['user']}" if result.get("user") else ""
    return (
        f"Kubernetes {result.get('server_version')} at {result.get('server')} (context {result.get('context')}{user})"
    )


class ActionModule(ModuleAction):
    module = cluster_check
    module_name = "mybinder.deploy.cluster_check"

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        if not result.get("failed") and result.get("server_version") and not self._task.no_log:
            tell(task_vars, report(result))
        return result
