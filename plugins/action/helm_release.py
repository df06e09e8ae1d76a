# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mybinder.deploy.helm_release: runs the module in Ansible's worker process when the
task runs on the controller with the controller's Python (see plugin_utils/_inprocess.py), and
prints the module's note when the chart is a test stand-in, so that no run presents a stand-in
as the real chart (an ok task's result is not shown without -v). When helm refuses an object made
outside the release, it adds the take_ownership variable of the role the task belongs to (roles
prefix their variables with their name: ingress_take_ownership, tls_take_ownership...)."""

from __future__ import annotations

from typing import Any

from ansible_collections.mybinder.deploy.plugins.modules import helm_release
from ansible_collections.mybinder.deploy.plugins.plugin_utils._inprocess import ModuleAction, tell


class ActionModule(ModuleAction):
    module = helm_release
    module_name = "mybinder.deploy.helm_release"

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        if (result.get("chart_info") or {}).get("stand_in") and result.get("msg") and not result.get("failed"):
            tell(task_vars, result["msg"])
        if result.get("failed") and str(result.get("msg", "")).endswith(helm_release.ADOPT_HINT):
            # The module names its own option; a role user sets the role's variable.
            role = getattr(self._task, "_role", None)
            variable = f"{role.get_name().rsplit('.', 1)[-1]}_take_ownership" if role else ""
            if variable in (task_vars or {}):
                result["msg"] += f" (in this role: {variable}: true)"
        return result
