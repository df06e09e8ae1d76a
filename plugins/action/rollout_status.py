# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of the modules that wait and report in rounds: runs the module repeatedly, each
run waiting at most one round, and prints between rounds how long it has waited, what is done and
what the rest waits for (see plugin_utils/_rounds.py; the lines are made in
plugin_utils/_reports.py).

One file serves all three, as kubernetes.core links its action plugins to one file: the action plugins
of verify_namespace and release_lock are links to this one, and each runs the module it is named after.
"""

from __future__ import annotations

from ansible_collections.mybinder.deploy.plugins.plugin_utils._inprocess import module_named
from ansible_collections.mybinder.deploy.plugins.plugin_utils._rounds import RoundsAction


class ActionModule(RoundsAction):
    module, module_name = module_named(__name__)
