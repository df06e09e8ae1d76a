# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the action plugins print for the operator, module by module, in one place.

A module cannot print while it runs, and an ok task's result is not shown without -v. So the
action plugins print, after (or between) module runs, the few lines an operator wants to see:

- cluster_check: which cluster answered (server version, URL, context, user), before a deploy
  touches it;
- git_crypt: for a no_log task (the key is in its arguments) what the run did, or why it failed;
  the module's messages never contain key material (tests/integration/test_secrets_leak.py
  searches every output for the key), and nothing else of the result is printed;
- helm_release: the module's note when the chart is a test stand-in, so that no run presents a
  stand-in as the real chart; and when helm refuses an object made outside the release, the
  take_ownership variable of the role the task belongs to (roles prefix their variables with
  their name: ingress_take_ownership, tls_take_ownership...);
- release_lock: whom a run took an expired lock over from, and the rollout a dead run left
  unconfirmed;
- rollout_status, verify_namespace, release_lock: a progress line between rounds (plugin_utils/_rounds.py), and
  for verify_namespace with list_releases the summary of the deploy at the end (releases, hosts,
  health), which a debug task with a `helm list` lookup printed before.

``AFTER`` maps a module's FQCN to what its action plugin does with the final result,
``PROGRESS`` a waiting module's FQCN to its progress line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible import constants as C
from ansible.utils.display import Display
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_release import ADOPT_HINT

display = Display()

ROLLOUT_SHOWN = 4
VERIFY_SHOWN = 3


def tell(task_vars: dict[str, Any] | None, *lines: str, color: str | None = None) -> None:
    """Print lines for the operator from an action plugin, each after the host's name as Ansible
    prints it ("[host] ..."). From a worker process, ansible-core passes them to the main process,
    which prints them at once, even while the task still runs."""
    host = (task_vars or {}).get("inventory_hostname", "")
    display.display("\n".join(f"[{host}] {line}" for line in lines), color=color)


# ---- cluster_check


def cluster_report(result: dict[str, Any]) -> str:
    user = f", user {result['user']}" if result.get("user") else ""
    return (
        f"Kubernetes {result.get('server_version')} at {result.get('server')} (context {result.get('context')}{user})"
    )


def after_cluster_check(action: Any, result: dict[str, Any], task_vars: dict[str, Any]) -> None:
    if not result.get("failed") and result.get("server_version") and not action._task.no_log:
        tell(task_vars, cluster_report(result))


# ---- git_crypt


def git_crypt_summary(result: dict[str, Any]) -> str:
    """One line saying what the run did (no key material: a key name, states, counts, paths)."""
    fixed = ", ".join(result.get("permissions_fixed") or []) or "none"
    return (
        f"git-crypt key {result.get('key_name') or 'default'}: {result.get('state_before')} -> {result.get('state')}; "
        f"{len(result.get('decrypted') or [])} files readable; made private: {fixed}"
    )


def after_git_crypt(action: Any, result: dict[str, Any], task_vars: dict[str, Any]) -> None:
    if action._task.no_log:
        if result.get("failed"):
            tell(task_vars, f"git_crypt failed: {result.get('msg', 'no message')}", color=C.COLOR_ERROR)
        elif "state" in result:
            tell(task_vars, git_crypt_summary(result))


# ---- helm_release


def after_helm_release(action: Any, result: dict[str, Any], task_vars: dict[str, Any]) -> None:
    if (result.get("chart_info") or {}).get("stand_in") and result.get("msg") and not result.get("failed"):
        tell(task_vars, result["msg"])
    if result.get("failed") and str(result.get("msg", "")).endswith(ADOPT_HINT):
        # The module names its own option; a role user sets the role's variable.
        role = getattr(action._task, "_role", None)
        variable = f"{role.get_name().rsplit('.', 1)[-1]}_take_ownership" if role else ""
        if variable in (task_vars or {}):
            result["msg"] += f" (in this role: {variable}: true)"


# ---- rollout_status


def describe_rollout(result: dict[str, Any], elapsed: float, timeout: float) -> str:
    pending = result.get("pending") or []
    total = len(pending) + len(result.get("ready") or [])
    head = f"rollout: {elapsed:.0f}s of {timeout:.0f}s, {total - len(pending)}/{total} workloads ready"
    if not pending:
        return head
    items = [f"{p['kind']} {p['namespace']}/{p['name']} ({p['message']})" for p in pending[:ROLLOUT_SHOWN]]
    more = f" and {len(pending) - ROLLOUT_SHOWN} more" if len(pending) > ROLLOUT_SHOWN else ""
    return f"{head}; waiting for {', '.join(items)}{more}"


# ---- release_lock


def describe_lock(result: dict[str, Any], elapsed: float, timeout: float) -> str:
    lock = result.get("lock") or {}
    if result.get("done"):
        return f"deploy lock {lock.get('namespace')}/{lock.get('name')}: taken after {elapsed:.0f}s"
    return f"deploy lock: {elapsed:.0f}s of {timeout:.0f}s; {result.get('waiting_for')}"


def after_release_lock(action: Any, result: dict[str, Any], task_vars: dict[str, Any]) -> None:
    if result.get("failed") or not result.get("acquired"):
        return
    lock = result.get("lock") or {}
    dead = result.get("took_over")
    if dead:
        tell(
            task_vars,
            f"took over the deploy lock {lock.get('namespace')}/{lock.get('name')} from {dead.get('holder')}, "
            f"which stopped renewing it at {dead.get('renewed')} (that run ended without giving it back)",
        )
    unconfirmed = result.get("unconfirmed_rollout")
    if unconfirmed:
        tell(
            task_vars,
            f"revision {unconfirmed['revision']} (replacing {unconfirmed['replaces']}) was never confirmed to roll "
            "out by the run that made it: this run waits for it, and rolls back when it does not roll out",
        )


# ---- verify_namespace


def describe_verify(result: dict[str, Any], elapsed: float, timeout: float) -> str:
    problems = result.get("problems") or []
    pods = result.get("pods") or {}
    head = f"verify: {elapsed:.0f}s of {timeout:.0f}s, {pods.get('ready', 0)}/{pods.get('checked', 0)} pods ready"
    if not problems:
        return f"{head}, healthy"
    more = f" (and {len(problems) - VERIFY_SHOWN} more)" if len(problems) > VERIFY_SHOWN else ""
    return f"{head}; waiting for: {'; '.join(problems[:VERIFY_SHOWN])}{more}"


def deploy_summary(result: dict[str, Any], hosts: list[str]) -> list[str]:
    """The deploy's summary: every release of the cluster, the hosts, the health counts."""
    lines = [
        f"release {r['name']} (namespace {r['namespace']}): revision {r['revision']}, {r['status']}, chart {r['chart']}"
        + (f" with {', '.join(r['subcharts'])}" if r.get("subcharts") else "")
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


def after_verify_namespace(action: Any, result: dict[str, Any], task_vars: dict[str, Any]) -> None:
    if "releases" in result and not result.get("failed") and not action._task.no_log:
        tell(task_vars, *deploy_summary(result, [str(h) for h in action._task.args.get("hosts") or []]))


AFTER: dict[str, Callable[[Any, dict[str, Any], dict[str, Any]], None]] = {
    "mybinder.deploy.cluster_check": after_cluster_check,
    "mybinder.deploy.git_crypt": after_git_crypt,
    "mybinder.deploy.helm_release": after_helm_release,
    "mybinder.deploy.release_lock": after_release_lock,
    "mybinder.deploy.verify_namespace": after_verify_namespace,
}

PROGRESS: dict[str, Callable[[dict[str, Any], float, float], str]] = {
    "mybinder.deploy.rollout_status": describe_rollout,
    "mybinder.deploy.verify_namespace": describe_verify,
    "mybinder.deploy.release_lock": describe_lock,
}
