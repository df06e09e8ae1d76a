# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of the modules that run in process: runs the module in Ansible's worker process
when the task runs on the controller with the controller's Python (see plugin_utils/_inprocess.py),
then prints what the operator wants to see of its result (plugin_utils/_reports.py).

One file serves them all, as kubernetes.core links its action plugins to one file: the action
plugins of chart_build, cluster_check, git_crypt, helm_release, helm_rollback, helm_template,
ingress_placement, kube_apply, secrets_check, tls_check and values_layers are links to this one,
and each runs the module it is named after.
"""

from __future__ import annotations

from ansible_collections.mybinder.deploy.plugins.plugin_utils._inprocess import ModuleAction, module_named


class ActionModule(ModuleAction):
    module, module_name = module_named(__name__)
