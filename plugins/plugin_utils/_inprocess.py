# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run this collection's modules inside Ansible's worker process when the target is the controller.

Why: every module task normally starts a new Python interpreter, which unpacks the module, imports
ansible's module_utils and our own (and often the kubernetes client), and only then does its work.
For the deploy's tasks that costs 0.3-1 s each, most of a no-op deploy. The cluster hosts of this
collection are reached with ``ansible_connection: local`` and the controller's own Python, so the
module would run on this machine with this interpreter anyway. In that case the action plugin
calls the module's ``main()`` here, in the worker process Ansible forked for this task, which has
already imported the module (the strategy loads action plugins in the main process before it
forks, and each plugin imports its module). The module sees exactly what it would see in its own
process: the same arguments with the same internal ``_ansible_*`` settings (check mode, diff,
no_log, verbosity), the task's environment, and its result goes through the same decoding and
clean-up as a module's output.

Everything else (another connection, become, async, another interpreter) runs the module the
usual way, and so does every run when ``MYBINDER_DEPLOY_IN_PROCESS=0`` is set on the controller.

The worker is a fork that ends with the task, so what a module changes in its process (the
environment, signal handlers, module-level caches) goes with it, as it would with a process of its own.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import multiprocessing
import os
import sys
from types import ModuleType
from typing import Any

from ansible.module_utils import basic
from ansible.module_utils.common.json import Direction, get_module_encoder
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.vars.clean import remove_internal_keys
from ansible_collections.mybinder.deploy.plugins.plugin_utils._reports import AFTER

display = Display()

LOCAL = ("local", "ansible.builtin.local")
# Our modules declare no serialization profile, so Ansible gives them the legacy one.
PROFILE = "legacy"
SWITCH = "MYBINDER_DEPLOY_IN_PROCESS"
MODULES = "ansible_collections.mybinder.deploy.plugins.modules"


def load_template_plugins_before_fork() -> None:
    """Load Ansible's builtin Jinja filters and tests once, in the controller's main process.

    Why: every task runs in a worker process forked from the main process, and the first filter or
    test a worker templates makes it import and wrap all the builtin ones (about 0.1 s of CPU, 10-20
    ms of a task on a 2-core machine), unless the main process had already loaded them: the fork
    inherits them. Nearly every task of the deploy templates a filter (the play's environment
    alone does), so this saves about a second per run. The strategy imports this file in the main
    process (with the first action plugin of this collection it resolves); in a worker, where the
    load would help no later task, nothing is done.
    """
    if multiprocessing.parent_process() is not None:
        return
    try:
        from ansible.plugins.loader import filter_loader, test_loader

        filter_loader.get("ansible.builtin.default")  # loads every builtin filter file
        test_loader.get("ansible.builtin.defined")  # and every builtin test file
    except Exception:  # pylint: disable=broad-except
        pass  # only an optimisation: the workers load what they need, as without it


load_template_plugins_before_fork()


# What this collection's modules import on their first request, besides what importing them
# imports (module_utils/_kube_client.py imports urllib3 when it builds a client, client_certificate()
# cryptography when it reads a client certificate: a module that does neither does not pay).
MODULE_RUNTIME_IMPORTS = ("urllib3", "cryptography.x509")


def load_module_runtime_imports_before_fork() -> None:
    """Import what the modules import at run time once, in the controller's main process, and
    make the TLS context of chart repository requests there.

    Why: a module run in process imports urllib3 (and http.client, mimetypes) when it builds its
    Kubernetes client, in the worker process forked for its task, so every task that talks to a
    cluster paid for the import again: 40-60 ms of a 2-core machine's CPU per task, about a dozen
    tasks per deploy. Imported here before the workers fork, it is inherited. A package that is
    missing is left to the module, which says so in its own error. Nothing is done in a worker.
    """
    if multiprocessing.parent_process() is not None:
        return
    for name in MODULE_RUNTIME_IMPORTS:
        # only an optimisation: the module imports it, or reports it missing, itself
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    # the TLS context of chart repository requests (the system's CA store, ~30 ms to load)
    with contextlib.suppress(Exception):
        importlib.import_module("ansible_collections.mybinder.deploy.plugins.module_utils._chart_repo").tls_context()


load_module_runtime_imports_before_fork()


def on_controller(action: ActionBase) -> bool:
    """True when the task runs on the controller itself, as this user and to its end: a local
    connection, no become, not async. The gate of every action plugin of this collection."""
    if getattr(action._connection, "transport", "") not in LOCAL:
        return False
    return not (action._play_context.become or action._task.async_val)


def in_process_possible(action: ActionBase, task_vars: dict[str, Any]) -> bool:
    """True when the module would run on this machine with this very interpreter."""
    if os.environ.get(SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not on_controller(action):
        return False
    interpreter = task_vars.get("ansible_python_interpreter")
    if not interpreter:
        return False  # interpreter discovery would choose one; let it
    interpreter = action._templar.template(interpreter)
    return os.path.realpath(os.path.expanduser(str(interpreter))) == os.path.realpath(sys.executable)


def run_module(
    action: ActionBase, module: ModuleType, module_name: str, module_args: dict[str, Any], task_vars: dict[str, Any]
) -> dict[str, Any]:
    """Run ``module`` (imported module code of this collection) with ``module_args``, here if
    possible, in its own process otherwise; return the cleaned result as _execute_module does."""
    if not in_process_possible(action, task_vars):
        return action._execute_module(module_name=module_name, module_args=module_args, task_vars=task_vars)

    args = dict(module_args)
    action._update_module_args(module_name, args, task_vars)
    encoder = get_module_encoder(PROFILE, Direction.CONTROLLER_TO_MODULE)
    params = json.dumps({"ANSIBLE_MODULE_ARGS": args}, cls=encoder).encode()

    environment: dict[str, Any] = {}
    action._compute_environment_string(environment)
    os.environ.update({str(k): str(v) for k, v in environment.items()})

    basic._ANSIBLE_ARGS = params
    basic._ANSIBLE_PROFILE = PROFILE
    basic._PARSED_MODULE_ARGS = None  # parsed once per process: a second run here must parse again
    out = io.StringIO()
    display.vvv(f"Running module {module_name} in the worker process (local connection, same interpreter)")
    try:
        with contextlib.redirect_stdout(out):
            module.main()
        failure: dict[str, Any] | None = {"failed": True, "msg": f"module {module_name} returned without a result"}
    except SystemExit:
        failure = None  # exit_json / fail_json printed the result and exited, as modules do
    except Exception as exc:  # what the AnsiballZ wrapper reports for an unhandled module exception
        failure = {"failed": True, "msg": f"module {module_name} failed: {type(exc).__name__}: {exc}"}
    finally:
        basic._ANSIBLE_ARGS = None
        basic._PARSED_MODULE_ARGS = None
    if failure is not None:
        return failure

    data = action._parse_returned_data({"stdout": out.getvalue(), "stderr": "", "rc": 0}, PROFILE)
    remove_internal_keys(data)
    for stream in ("stdout", "stderr"):
        if stream in data and f"{stream}_lines" not in data:
            data[f"{stream}_lines"] = (data.get(stream) or "").splitlines()
    return data


def module_named(plugin: str) -> tuple[ModuleType, str]:
    """The module code and FQCN of the module an action plugin is named after. ``plugin`` is the
    plugin's ``__name__``: the action plugins that share one file are links to it, and Ansible
    imports each link under its own name (ansible_collections.mybinder.deploy.plugins.action.NAME).
    Imported when the plugin is, in the controller's main process, before the workers fork."""
    name = plugin.rsplit(".", 1)[-1]
    return importlib.import_module(f"{MODULES}.{name}"), f"mybinder.deploy.{name}"


class ModuleAction(ActionBase):
    """Action plugin of one of this collection's modules: runs it in process when possible, then
    prints what plugin_utils/_reports.py says the operator wants to see of its result.

    Subclasses set ``module`` (the imported module code) and ``module_name`` (its FQCN)."""

    TRANSFERS_FILES = False
    _requires_connection = True
    module: ModuleType
    module_name: str

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        result.update(self.execute(dict(self._task.args), task_vars))
        after = AFTER.get(self.module_name)
        if after is not None:
            after(self, result, task_vars)
        return result

    def execute(self, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        """The module's result for the task's arguments: one run."""
        return run_module(self, self.module, self.module_name, args, task_vars)
