# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a waiting module in rounds and print a progress line after each round.

A module cannot print while it runs, and `until`/`retries` loops only say "FAILED - RETRYING".
So the action plugins of the waiting modules (rollout_status, verify_namespace, release_lock) call their module
repeatedly, each call waiting at most one round, and print what is done, what is left and for how
long they have waited between rounds. Display calls from a worker process reach the terminal at
once (ansible-core proxies them to the main process).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._lease import LOCK_TIMEOUT, default_holder
from ansible_collections.mybinder.deploy.plugins.module_utils._rollout import ROLLOUT_TIMEOUT, ROUNDS_ARG_SPEC
from ansible_collections.mybinder.deploy.plugins.module_utils._verify_namespace import VERIFY_TIMEOUT
from ansible_collections.mybinder.deploy.plugins.plugin_utils._inprocess import ModuleAction, run_module
from ansible_collections.mybinder.deploy.plugins.plugin_utils._reports import PROGRESS, tell

# The module's own default of its timeout option, for the action plugin's deadline.
DEFAULT_TIMEOUT = {
    "mybinder.deploy.rollout_status": ROLLOUT_TIMEOUT,
    "mybinder.deploy.verify_namespace": VERIFY_TIMEOUT,
    "mybinder.deploy.release_lock": LOCK_TIMEOUT,
}


def release_lock_args(args: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """release_lock's arguments, and whether the run waits in rounds (only taking the lock does).
    The holder is named once for the whole run: the user, the machine and the ansible-playbook
    process (the parent of the worker an action plugin runs in), so that every task of one run,
    whichever release it locks, is the same holder."""
    args = dict(args)
    if not args.get("holder"):
        args["holder"] = default_holder(os.getppid())
    return args, args.get("state", "acquired") == "acquired" and args.get("record_rollout") is None


# A module's arguments as its action plugin completes them, and whether it waits in rounds.
ROUND_ARGS: dict[str, Callable[[dict[str, Any]], tuple[dict[str, Any], bool]]] = {
    "mybinder.deploy.release_lock": release_lock_args,
}


def run_rounds(
    action: Any,
    task_vars: dict[str, Any],
    module: ModuleType,
    module_name: str,
    args: dict[str, Any],
    timeout: float,
    interval: float,
    describe: Callable[[dict[str, Any], float, float], str],
) -> dict[str, Any]:
    """Call `module` (its code; `module_name` its FQCN) with wait_seconds/fail_on_timeout set per
    round until it is done, fails, or `timeout` seconds have passed (the last round fails on
    timeout). `describe(result, elapsed, timeout)` makes the progress line."""
    start = time.monotonic()
    interval = max(1.0, float(interval))
    overhead = 0.0  # time a module run costs besides its waiting (process start, imports, login)
    while True:
        elapsed = time.monotonic() - start
        budget = max(0.0, timeout - elapsed - overhead)
        last = budget <= interval
        wait = min(interval, budget)
        round_args = dict(args, wait_seconds=wait, fail_on_timeout=last)
        t0 = time.monotonic()
        result = run_module(action, module, module_name, round_args, task_vars)
        took = time.monotonic() - t0
        elapsed = time.monotonic() - start
        if result.get("failed") or result.get("done") or last:
            if not result.get("failed") and elapsed >= interval:
                tell(task_vars, describe(result, elapsed, timeout))
            result["elapsed"] = round(elapsed, 1)
            return result
        overhead = max(0.0, took - wait)
        tell(task_vars, describe(result, elapsed, timeout))


class RoundsAction(ModuleAction):
    """Action plugin of a waiting module: runs it in rounds (run_rounds), printing its progress
    line (plugin_utils/_reports.py PROGRESS) between rounds, then what _reports.AFTER says, as
    every ModuleAction does."""

    def execute(self, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        args, in_rounds = ROUND_ARGS.get(self.module_name, lambda a: (a, True))(args)
        if not in_rounds:
            return run_module(self, self.module, self.module_name, args, task_vars)
        timeout = float(args.get("timeout", DEFAULT_TIMEOUT[self.module_name]))
        interval = float(args.get("progress_interval", ROUNDS_ARG_SPEC["progress_interval"]["default"]))
        describe = PROGRESS[self.module_name]
        return run_rounds(self, task_vars, self.module, self.module_name, args, timeout, interval, describe)
