# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mybinder.deploy.ingress_placement: runs the module in Ansible's worker process when
the task runs on the controller with the controller's Python (see plugin_utils/_inprocess.py)."""

from __future__ import annotations

from ansible_collections.mybinder.deploy.plugins.modules import ingress_placement
from ansible_collections.mybinder.deploy.plugins.plugin_utils._inprocess import ModuleAction


class ActionModule(ModuleAction):
    module = ingress_placement
    module_name = "mybinder.deploy.ingress_placement"
