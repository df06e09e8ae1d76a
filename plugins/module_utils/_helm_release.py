# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The helm_release runner (collection-private): one run of the module, reading top to bottom as a
release is deployed: read the deployed release, get it out of a pending state left by an
interrupted run, skip the render when nothing it depends on changed, render, compare object by
object, let the API server validate, upgrade; on a failure, say what serves (the role rolls back).

The module (plugins/modules/helm_release.py) only documents, declares its options and calls
``deploy_release``; this file knows nothing of Ansible but the parameters it is given.

Why not only kubernetes.core.helm: it decides "changed" from the chart version and the values
(or needs the helm-diff plugin, which an offline machine does not have), so an edited template
without a version bump is reported "ok" and never deployed; it treats a release stuck in
pending-install/pending-upgrade as absent and runs into "another operation is in progress"; it
cannot show per-object manifest changes in check/diff mode without helm-diff; and it copies the
kubeconfig to a temporary file outside the repository.

How a change is found: the chart is rendered as the upgrade would render it (`helm template
--dry-run=server --validate --is-upgrade`: live lookups, the cluster's capabilities) and every
object (hooks included) is compared with the deployed release; the chart name, version and
appVersion too; the values through a digest of the values files recorded in the revision
description (and, when it differs, the merged values). The deployed release is read from helm's
storage objects through the API (_helm_records.py), or with `helm history` and `helm get` for
storage drivers that reader does not know. `helm upgrade --dry-run` would give the same answer but
costs seconds more: it builds and schema-checks every object against the API server, which a
no-op deploy does not need (the API server's own dry run checks the objects when an upgrade is
due, see server_validate).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._chart_repo import (
    ChartRepoError,
    chart_info,
    pulled_chart,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._helm import (
    PENDING_STATES,
    Helm,
    HelmError,
    UpgradeOptions,
    last_good_revision,
    valid_duration,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_manifests import (
    Comparison,
    chart_id,
    compare,
    release_objects,
    workloads,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_records import records_for
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_validate import server_validate
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_values import (
    DIGEST_MARK,
    INPUTS_MARK,
    capabilities_digest,
    inputs_digest,
    recorded_digest,
    recorded_inputs,
    user_values,
    value_paths,
    values_digest,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import (
    KubeApiError,
    KubeClient,
    KubeConnectionError,
    build_client,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_objects import (
    Resources,
    create_namespace,
    delete_namespace,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_objects import missing as missing_objects
from ansible_collections.mybinder.deploy.plugins.module_utils._lease import Renewing, lock_option

# The release a helm module acts on and how helm runs, shared by helm_release and helm_rollback
# (documented in the mybinder.deploy.helm_release doc fragment).
RELEASE_ARG_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True, "aliases": ["release_name"]},
    "namespace": {"type": "str", "required": True, "aliases": ["release_namespace"]},
    "timeout": {"type": "str", "default": "5m"},
    "binary_path": {"type": "path"},
}


def deploy_release(
    p: dict[str, Any],
    check_mode: bool,
    diff: bool,
    warn: Callable[[str], None],
    bin_path: Callable[[str], str],
) -> dict:
    """One run of helm_release with its module parameters ``p``: the result, or a ModuleError
    (HelmError with what was done). ``warn`` receives warnings, ``bin_path`` finds an executable."""
    run = ReleaseRun(p, check_mode, diff, warn, release_helm(p, bin_path))
    # The deploy lock this run holds (release_lock) is renewed while it works; a lock lost to
    # another run stops it before it changes anything.
    with Renewing(run.connect(), lock_option(p.get("lock"))) as lock:
        run.read_deployed()
        unchanged = run.unchanged()
        if unchanged is not None:
            return unchanged
        run.render()
        result = run.compare()
        if not run.upgrade_due:
            return result
        run.validate()
        lock.check()
        return run.upgrade(result)


class ReleaseRun:
    """The steps of deploy_release, in their order, and what they learn on the way."""

    def __init__(
        self, p: dict[str, Any], check_mode: bool, diff: bool, warn: Callable[[str], None], helm: Helm
    ) -> None:
        self.p, self.check_mode, self.diff, self.warn, self.helm = p, check_mode, diff, warn, helm
        self.name, self.ns = p["name"], p["namespace"]
        self.chart, self.values, self.inline = p["chart_ref"], p["values_files"], p["values"]
        if p["chart_repo_url"]:
            try:
                self.chart = pulled_chart(p["chart_repo_url"], self.chart, p["chart_version"], p["chart_cache_dir"])
            except ChartRepoError as exc:
                raise HelmError(f"release {self.name}: {exc}; nothing was deployed") from exc
        self.digest = values_digest(self.values, self.inline)
        self.opts = UpgradeOptions(
            create_namespace=p["create_namespace"],
            cleanup_on_fail=p["cleanup_on_fail"],
            history_max=p["history_max"],
            timeout=p["timeout"],
            take_ownership=p["take_ownership"],
            description=f"{DIGEST_MARK}{self.digest}",
            skip_crds=p["skip_crds"],
        )
        self.made_namespace = False
        self.upgrade_due = False

    def connect(self) -> KubeClient:
        """The connection to the cluster: the release record is read straight from its storage
        objects (see _helm_records), the objects are checked and the lock renewed through it."""
        self.client = kube_client(self.p, self.name)
        return self.client

    def read_deployed(self) -> None:
        """What serves now, after getting a release out of a pending state (in check mode: what
        the recovery would leave serving)."""
        name = self.name
        self.records = records_for(self.helm, self.client, self.ns)
        self.history = self.records.history(name)
        recovered = self.recovered = recover(self.p, self.check_mode, self.warn, self.helm, self.history)
        if recovered and not self.check_mode:
            self.history = self.records.history(name)
        if recovered and recovered["action"] == "uninstall":
            current = None
        elif recovered and self.check_mode:
            current = self.records.release(name, revision=recovered["to_revision"], history=self.history)
        else:
            current = self.records.release(name, history=self.history)
        self.current = current
        self.serving_status = "deployed" if recovered and current else (current or {}).get("info", {}).get("status", "")
        self.previous = serving_revision(current, self.serving_status, self.history)

    def unchanged(self) -> dict | None:
        """The result when nothing the deployed revision was rendered from changed, else None.

        The revision records what it was rendered from; when nothing of that changed, a render
        would give back what it deployed (live lookups, random values and timestamps aside), so
        the render is skipped. Objects deleted by hand are still looked for."""
        p, current = self.p, self.current
        try:
            capabilities = capabilities_digest(self.client)
        except KubeApiError as exc:
            raise HelmError(f"release {self.name}: reading the cluster's API versions failed: {exc.message}") from exc
        inputs = inputs_digest(
            self.chart, f"{self.digest} skip_crds={p['skip_crds']}", self.helm.binary, capabilities, self.name, self.ns
        )
        self.opts.description = f"{DIGEST_MARK}{self.digest}{INPUTS_MARK}{inputs}"
        if (
            current is not None
            and current.get("chart")  # read from the record itself (not through the CLI)
            and not self.recovered
            and self.serving_status == "deployed"
            and not p["always_render"]
            and recorded_inputs(current["info"].get("description", "")) == inputs
        ):
            return unchanged_result(self.diff, self.client, current, self.name, self.ns)
        return None

    def render(self) -> None:
        """The chart rendered as the upgrade would render it."""
        try:
            self.rendered = self.helm.template(
                self.name,
                self.chart,
                self.values,
                is_upgrade=self.current is not None,
                inline=self.inline,
                skip_crds=self.p["skip_crds"],
                take_ownership=self.p["take_ownership"],
            )
        except HelmError as exc:
            exc.msg = f"rendering release {self.name} (chart {self.chart}) failed, nothing was deployed: {exc.msg}"
            exc.msg += adopt_hint(exc.msg)
            exc.extra = {
                "changed": bool(self.recovered),
                "upgraded": False,
                "previous_revision": self.previous,
                "recovered": self.recovered,
            }
            raise

    def compare(self) -> dict:
        """The render against the deployed release, object by object (values and chart too, and
        objects deleted by hand); the result of a run that upgrades nothing."""
        current, name, ns, diff = self.current, self.name, self.ns, self.diff
        values_changed: list[str] = []
        if current is not None and recorded_digest(current["info"].get("description", "")) != self.digest:
            # The files changed (or this revision was not made by this module): compare the values.
            values_changed = value_paths(
                self.records.values(name, current["version"]), user_values(self.values, self.inline)
            )
        cmp = self.cmp = compare(current, self.rendered, values_changed, want_diff=diff)
        if current is not None:
            # Objects deleted by hand: helm's record still lists them, `helm upgrade` would recreate them.
            try:
                cmp.note_missing(missing_objects(self.client, Resources(self.client), cmp.shared, ns), diff)
            except KubeApiError as exc:
                raise HelmError(f"release {name}: reading its objects from the cluster failed: {exc}") from exc
        # A release whose last upgrade failed is redeployed even when the render equals it: its status
        # must become "deployed" again.
        self.upgrade_due = current is None or self.serving_status != "deployed" or cmp.changed
        result: dict = {
            "changed": bool(self.recovered) or self.upgrade_due,
            "upgraded": self.upgrade_due,
            "recovered": self.recovered,
            "previous_revision": self.previous,
            "changes": cmp.summary(),
            "workloads": workloads(self.rendered),
            "release": summarize(current, name, ns),
            "chart_info": chart_info(self.rendered["chart"]["metadata"]),
            "compared": "render",
        }
        if diff:
            result["diff"] = cmp.diffs
        return result

    def validate(self) -> None:
        """The API server's dry run of every rendered object (unless validate is off); a refusal
        deploys nothing."""
        if not self.p["validate"]:
            return
        client, name, ns = self.client, self.name, self.ns
        # A first install into a namespace that does not exist yet: create it now (as helm would)
        # so that the API server can dry-run the namespaced objects too, and delete it again when
        # the server rejects one: a refused install leaves nothing behind.
        if self.current is None and self.p["create_namespace"] and not self.check_mode:
            try:
                self.made_namespace = create_namespace(client, ns)
            except KubeApiError as exc:
                raise HelmError(f"release {name}: creating namespace {ns} failed: {exc.message}") from exc
        try:
            problem = server_validate(client, ns, self.rendered)
        except Exception:
            if self.made_namespace:  # best effort: the error that got here is the one to report
                with contextlib.suppress(Exception):
                    delete_namespace(client, ns)
            raise
        self.opts.disable_openapi_validation = problem is None
        if problem and self.made_namespace:
            problem += f" ({delete_namespace(client, ns)})"
        if problem:
            raise HelmError(
                f"the API server rejects what release {name} would deploy, so nothing was deployed"
                + (f" (revision {self.previous} still serves)" if self.previous else "")
                + f": {problem}",
                extra={
                    "changed": bool(self.recovered),
                    "upgraded": False,
                    "previous_revision": self.previous,
                    "recovered": self.recovered,
                },
            )

    def upgrade(self, result: dict) -> dict:
        """helm upgrade (in check mode: the revision it would make); on a failure, what it left
        (the role rolls back to previous_revision when the failed upgrade left a revision)."""
        helm, name, ns, recovered, history = self.helm, self.name, self.ns, self.recovered, self.history
        upgrade_args = helm.upgrade_args(name, self.chart, self.values, self.opts, self.inline is not None)
        result["command"] = " ".join(helm.base() + upgrade_args)
        if self.check_mode:
            # The revision the upgrade would create (after the rollback a recovery would add).
            latest = (
                0 if recovered and recovered["action"] == "uninstall" else (history[-1]["revision"] if history else 0)
            )
            latest += 1 if recovered and recovered["action"] == "rollback" else 0
            result["release"] = dict(
                result["release"], revision=latest + 1, status="deployed", chart=chart_id(self.rendered)["chart"]
            )
            return result
        try:
            made = helm.upgrade(name, self.chart, self.values, self.opts, self.inline)
        except HelmError as exc:
            after = self.records.latest_entry(name)
            exc.msg = f"helm upgrade of release {name} in namespace {ns} failed: {exc.msg}"
            exc.msg += adopt_hint(exc.msg)
            if self.made_namespace and after is None:
                # helm stopped before it recorded a revision (a CRD of crds/ refused, a conflicting
                # object made since the render): nothing of the release exists, so the namespace
                # made for the dry run goes too, as when the dry run refuses.
                exc.msg += f" ({delete_namespace(self.client, ns)})"
            exc.extra = {
                "changed": bool(after) and (self.current is None or after["revision"] != self.current["version"]),
                "upgraded": True,
                "previous_revision": self.previous,
                "release": summarize_entry(after, name, ns),
                "recovered": recovered,
                "changes": self.cmp.summary(),
                "workloads": result["workloads"],
            }
            raise
        result["release"] = summarize_entry(made or self.records.latest_entry(name), name, ns)
        return result


ADOPT_HINT = (
    "; that object was made outside this release: delete it, or set take_ownership=true to let the release adopt it"
)


def adopt_hint(msg: str) -> str:
    """The fix for helm's refusal to install over an object it did not make ("" for other errors);
    helm 3 words that refusal as below (pkg/action/validate.go)."""
    return ADOPT_HINT if "exists and cannot be imported into the current release" in msg else ""


def unchanged_result(diff: bool, client: KubeClient, current: dict, name: str, ns: str) -> dict | None:
    """The result for a release whose inputs did not change, or None when some of its objects are
    gone from the cluster (the full comparison then names them, and the upgrade recreates them)."""
    objects = {k: o for k, o in release_objects(current).items() if not k.startswith("hook ")}
    try:
        if missing_objects(client, Resources(client), objects, ns):
            return None
    except KubeApiError as exc:
        raise HelmError(f"release {name}: reading its objects from the cluster failed: {exc}") from exc
    result = {
        "changed": False,
        "upgraded": False,
        "recovered": None,
        "previous_revision": int(current["version"]),
        "changes": Comparison([], [], [], [], False, []).summary(),
        "workloads": workloads(current),
        "release": summarize(current, name, ns),
        "chart_info": chart_info(current["chart"]["metadata"]),
        "compared": "inputs",
    }
    if diff:
        result["diff"] = []
    return result


def kube_client(p: dict, name: str) -> KubeClient:
    try:
        return build_client({"kubeconfig": p["kubeconfig"], "context": p["context"]}, user_agent="mybinder.deploy/helm")
    except KubeConnectionError as exc:
        raise HelmError(f"release {name}: cannot connect to the cluster: {exc}") from exc


def recover(
    p: dict[str, Any], check_mode: bool, warn: Callable[[str], None], helm: Helm, history: list[dict]
) -> dict | None:
    """Get a release out of pending-install/-upgrade/-rollback left by an interrupted run (the
    cause of "another operation (install/upgrade/rollback) is in progress"): roll it back to its
    last deployed revision, or uninstall it when it never was deployed."""
    name, ns = p["name"], p["namespace"]
    latest = history[-1] if history else None
    if not latest or latest.get("status") not in PENDING_STATES:
        return None
    state, stuck = latest["status"], int(latest["revision"])
    if not p["recover_pending"]:
        raise HelmError(
            f"release {name} in namespace {ns} is stuck in {state} (revision {stuck}), left by an interrupted "
            "helm run; set recover_pending=true to roll it back to its last deployed revision (or uninstall it "
            "when it never was deployed), or run `helm rollback` yourself"
        )
    target = last_good_revision(history, exclude=stuck)
    recovered = {
        "from_status": state,
        "from_revision": stuck,
        "action": "rollback" if target else "uninstall",
        "to_revision": target or 0,
    }
    what = f"rolled back to revision {target}" if target else "uninstalled (it never was deployed)"
    warn(
        f"release {name} was stuck in {state} (revision {stuck}), left by an interrupted run: "
        + (f"it would be {what} first" if check_mode else f"it was {what}")
    )
    if not check_mode:
        if target:
            helm.rollback(name, target, timeout=p["timeout"])
        else:
            helm.uninstall(name, timeout=p["timeout"])
    return recovered


def serving_revision(current: dict | None, status: str, history: list[dict]) -> int:
    """The revision serving now: the one to roll back to when this run fails (0: none)."""
    if current is None:
        return 0
    if status == "deployed":
        return int(current["version"])
    return last_good_revision(history) or 0


def summarize(rel: dict | None, name: str, ns: str) -> dict:
    if not rel:
        return {"name": name, "namespace": ns, "revision": 0, "status": "", "chart": ""}
    return {
        "name": name,
        "namespace": ns,
        "revision": int(rel.get("version") or 0),
        "status": (rel.get("info") or {}).get("status", ""),
        "chart": chart_id(rel)["chart"],
    }


def summarize_entry(entry: dict | None, name: str, ns: str) -> dict:
    """summarize() for a `helm history` entry."""
    if not entry:
        return summarize(None, name, ns)
    return {
        "name": name,
        "namespace": ns,
        "revision": int(entry["revision"]),
        "status": entry.get("status", ""),
        "chart": entry.get("chart", ""),
    }


def stand_in_note(p: dict, info: dict) -> str:
    """What an operator must be told about a stand-in chart (never present one as the real chart)."""
    source = p["chart_repo_url"] or p["chart_ref"]
    what = info["stand_in_for"] or "a test chart"
    return (
        f"{info['name']} {info['version']} from {source} is a STAND-IN ({what}), not the real chart: "
        "its pods run none of the real software."
    )


def release_helm(p: dict[str, Any], bin_path: Callable[[str], str]) -> Helm:
    """The helm CLI for the release the parameters name, after checking their timeout."""
    if not valid_duration(p["timeout"]):
        raise ModuleError(
            f"timeout={p['timeout']!r} is not a duration helm understands; write it like 5m, 90s or 1h30m"
        )
    return Helm(
        binary=p["binary_path"] or bin_path("helm"),
        kubeconfig=p["kubeconfig"],
        context=p["context"],
        namespace=p["namespace"],
    )


# ---- the helm_rollback runner: the role rolls a failed upgrade back with it


def rollback_release(p: dict[str, Any], check_mode: bool, bin_path: Callable[[str], str]) -> dict:
    """One run of helm_rollback with its module parameters ``p``: roll the release back to
    ``revision`` unless that revision's objects and values already serve; or a ModuleError."""
    lock = lock_option(p.get("lock"))
    if lock is None:
        return rollback_locked(p, check_mode, bin_path)
    with Renewing(kube_client(p, p["name"]), lock):
        return rollback_locked(p, check_mode, bin_path)


def rollback_locked(p: dict[str, Any], check_mode: bool, bin_path: Callable[[str], str]) -> dict:
    name, ns, target = p["name"], p["namespace"], p["revision"]
    helm = release_helm(p, bin_path)
    history = helm.history(name)
    current = helm.release(name, history=history, values=True)
    if current is None:
        raise HelmError(f"release {name} does not exist in namespace {ns}: there is nothing to roll back")
    made = p.get("from_revision")
    if made and int(current["version"]) != made:
        # Another run deployed after this one: its revision is not this run's to undo.
        raise HelmError(
            f"release {name} in namespace {ns} was not rolled back: revision {current['version']} serves, made "
            f"after revision {made} of this run by another run (or by hand), and a rollback only undoes this "
            f"run's own revision; see `helm history {name} -n {ns}`"
        )
    wanted = helm.release(name, revision=target, history=history, values=True)
    if wanted is None:
        raise HelmError(
            f"release {name} in namespace {ns} has no revision {target} (see `helm history {name} -n {ns}`)"
        )
    same = (
        current["info"]["status"] == "deployed"
        and release_objects(current) == release_objects(wanted)
        and (current.get("config") or {}) == (wanted.get("config") or {})
    )
    if same:
        return {
            "changed": False,
            "revision": int(current["version"]),
            "rolled_back_to": target,
            "workloads": workloads(wanted),
        }
    cmd = [*helm.base(), "rollback", name, str(target), "--cleanup-on-fail", "--timeout", p["timeout"]]
    if check_mode:
        return {
            "changed": True,
            "revision": int(current["version"]) + 1,
            "rolled_back_to": target,
            "command": " ".join(cmd),
            "workloads": workloads(wanted),
        }
    helm.rollback(name, target, timeout=p["timeout"])
    after = (helm.history(name, max_revisions=1) or [{}])[-1]
    return {
        "changed": True,
        "revision": int(after.get("revision") or 0),
        "rolled_back_to": target,
        "command": " ".join(cmd),
        "workloads": workloads(wanted),
    }
