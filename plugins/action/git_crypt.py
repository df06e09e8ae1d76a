# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mybinder.deploy.git_crypt: runs the module in Ansible's worker process when the
task runs on the controller with the controller's Python (see plugin_utils/_inprocess.py).

A task that passes the key inline must be ``no_log`` (the key is in its arguments), and Ansible
then hides the whole result, the reason of a failure included. The module's messages never
contain key material (tests/integration/test_secrets_leak.py searches every output for the
key), so for a no_log task this plugin prints them itself: what the run did, or why it failed.
Nothing else of the result is printed.
"""

from __future__ import annotations

from typing import Any

from ansible import constants as C
from ansible_collections.mybinder.deploy.plugins.modules import git_crypt
from ansible_collections.mybinder.deploy.plugins.plugin_utils._inprocess import ModuleAction, tell


def summary(result: dict[str, Any]) -> str:
    """One line saying what the run did (no key material: a key name, states, counts, paths)."""
    fixed = ", ".join(result.get("permissions_fixed") or []) or "none"
    return (
        f"git-crypt key {result.get('key_name') or 'default'}: {result.get('state_before')} -> {result.get('state')}; "
        f"{len(result.get('decrypted') or [])} files readable; made private: {fixed}"
    )


class ActionModule(ModuleAction):
    module = git_crypt
    module_name = "mybinder.deploy.git_crypt"

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        if self._task.no_log:
            if result.get("failed"):
                tell(task_vars, f"git_crypt failed: {result.get('msg', 'no message')}", color=C.COLOR_ERROR)
            elif "state" in result:
                tell(task_vars, summary(result))
        return result
