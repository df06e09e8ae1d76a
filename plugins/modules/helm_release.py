#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: helm_release
short_description: Install or upgrade a Helm release only when what it deploys changed, recovering stuck releases
version_added: 0.1.0
description:
  - Renders the release the way C(helm upgrade) would (C(helm template --dry-run=server --validate --is-upgrade
    --disable-openapi-validation),
    with live lookups, the cluster's Kubernetes and API versions) and compares the rendered objects (hooks included),
    one by one, with the deployed release, the chart name, version and appVersion, and the values through a digest
    of the values files recorded in the revision's description (when it differs, the merged values are compared).
    Only when something differs does it run C(helm upgrade --install --reset-values) (with C(--create-namespace)
    and C(--cleanup-on-fail) by default).
  - The render is skipped when the serving revision was made by this module from the very same chart files,
    values, helm binary and cluster API (a digest recorded in its description); see O(always_render).
  - The deployed release is read from helm's own record of it (the release Secrets, or ConfigMaps with
    C(HELM_DRIVER=configmap)) through the API, which answers what C(helm history) and C(helm get) would
    without a helm process each. With another storage driver those commands are run.
  - So a template edit without a chart version bump is deployed (C(kubernetes.core.helm) compares only the chart
    version and the values unless the helm-diff plugin is installed), and a run with nothing to change reports
    RV(ignore:changed=false).
  - Objects of the release that were deleted from the cluster by hand are found too (their metadata is read) and
    make an upgrade, which recreates them.
  - Before upgrading (and in check mode) the API server dry-runs every rendered object (O(validate)) - invalid
    values fail here, with nothing changed, instead of half way through the upgrade.
  - Never passes C(--wait) to helm; wait for the rollout afterwards with M(mybinder.deploy.rollout_status). An
    interrupted helm wait is what leaves releases stranded.
  - A release left in C(pending-install), C(pending-upgrade) or C(pending-rollback) by an interrupted run (the
    cause of "another operation (install/upgrade/rollback) is in progress") is recovered first when
    O(recover_pending=true) - rolled back to its last deployed revision, or uninstalled when it never was
    deployed - and the recovery is reported in RV(recovered) and as a warning.
  - In diff mode every added, removed or modified object is shown as its own before/after pair. The data of
    Secrets is never shown, only which keys changed; changed values are named by their path, never shown.
author:
  - mybinder.deploy developers (!UNKNOWN)
requirements:
  - helm >= 3.13 (C(--dry-run=server)), < 4
  - kubernetes (Python client) >= 24, for kubeconfig contexts other than plain certificates or tokens (the module
    reads the release's objects and dry-runs them through the API)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Renders and compares against the cluster, predicts RV(ignore:changed), changes nothing in the cluster.
      - A chart from O(chart_repo_url) is still downloaded into O(chart_cache_dir) (a local cache) to be rendered.
  diff_mode:
    support: full
    details: One before/after pair per changed object; Secret data and values are redacted.
  platform:
    platforms: posix
  idempotent:
    description: A second run with the same chart and values reports no change.
    support: full
options:
  name:
    description: Release name.
    type: str
    required: true
    aliases: [release_name]
  namespace:
    description: Namespace of the release.
    type: str
    required: true
    aliases: [release_namespace]
  chart_ref:
    description:
      - Path of the chart directory (its dependencies must already be in its C(charts/) directory).
      - With O(chart_repo_url), the name of the chart in that repository.
    type: path
    required: true
  chart_repo_url:
    description:
      - URL of the Helm chart repository that serves O(chart_ref) (upstream, or a mirror).
      - The chart is downloaded once per digest into O(chart_cache_dir); later runs ask the repository only
        whether its index changed (a 304 answer costs no download), so a no-op deploy downloads nothing.
      - The archive must have the digest the repository's index gives for O(chart_version).
    type: str
  chart_version:
    description: The exact chart version to install from O(chart_repo_url).
    type: str
  chart_cache_dir:
    description:
      - Where charts from repositories are kept; E(XDG_CACHE_HOME)/mybinder.deploy/charts by default.
      - When a new version of a chart is fetched, its other versions that no run used for 30 days are removed.
    type: path
  values_files:
    description:
      - Values files passed to helm in this order; a later file wins over an earlier one (helm's rule).
      - Chart defaults (the chart's own C(values.yaml)) always come first.
    type: list
    elements: path
    default: []
  values:
    description:
      - Values given inline, applied after O(values_files). They reach helm on its standard input, never on its
        command line or in a file.
      - Keep secrets in O(values_files) (from the decrypted secret tree).
    type: dict
  skip_crds:
    description: Do not install the chart's C(crds/) directory (C(--skip-crds)), for CRDs applied separately.
    type: bool
    default: false
  create_namespace:
    description: Create the release namespace if it does not exist (C(--create-namespace)).
    type: bool
    default: true
  cleanup_on_fail:
    description: Delete the objects a failed upgrade created (C(--cleanup-on-fail)).
    type: bool
    default: true
  history_max:
    description: Revisions helm keeps for this release (C(--history-max)); V(0) keeps all.
    type: int
    default: 10
  timeout:
    description: Time helm may spend on each Kubernetes operation and on hooks, as a Go duration (C(5m), C(90s)).
    type: str
    default: 5m
  take_ownership:
    description:
      - Adopt objects that already exist in the cluster but belong to no release (C(--take-ownership), helm >= 3.17),
        instead of failing with "already exists".
      - Without it, such an object makes a first install fail before anything is made, with an error that names
        the object and both fixes (delete it, or adopt it).
    type: bool
    default: false
  recover_pending:
    description:
      - Recover a release stuck in a pending state before upgrading (see the description).
      - When V(false), such a release is an error that names the state and how to recover.
    type: bool
    default: true
  always_render:
    description:
      - Render and compare even when the serving revision was made from the very same inputs.
      - Each revision this module makes records a digest of what its render depended on - every file of the chart
        (subcharts included), the values, the helm binary, the Kubernetes version and every group, version and kind
        the API serves, the release name and namespace. When that digest equals the current one, a render would
        give what the revision deployed, so by default it is skipped (RV(compared=inputs)), and only objects deleted
        by hand are looked for. What the digest cannot see is the result of a template's C(lookup) of live objects
        changing since; set this to V(true) for charts whose output depends on that.
      - Templates with random values or timestamps (without C(lookup)) no longer make every run a change, as they
        do when rendered.
    type: bool
    default: false
  validate:
    description:
      - Before upgrading (and in check mode), send every rendered object to the API server as a dry run (a
        server-side apply; for an existing object the apply's merge makes invalid, a replacement), and fail without
        changing anything when the server rejects one (wrong value types, invalid quantities, missing required
        fields, admission). C(helm --dry-run) only renders, so such values otherwise fail half way through the
        upgrade, after other objects were already changed.
      - For a first install into a namespace that does not exist yet (with O(create_namespace=true)), the
        namespace is created first, as helm would create it, so that its objects can be checked too, and deleted
        again when the server rejects one. In check mode nothing is created, and the namespaced objects of such
        an install are not checked.
      - When the server accepted every object, C(helm upgrade) runs with C(--disable-openapi-validation), since
        its client-side schema check of the same objects would only add the cost of fetching the schema.
    type: bool
    default: true
  binary_path:
    description: The helm binary; found on E(PATH) when not set.
    type: path
  kubeconfig:
    description:
      - Path of the kubeconfig file; E(K8S_AUTH_KUBECONFIG), else helm's default (E(KUBECONFIG), C(~/.kube/config)).
    type: path
    aliases: [kubeconfig_path]
  context:
    description: Kubeconfig context; E(K8S_AUTH_CONTEXT), else the kubeconfig's current context.
    type: str
    aliases: [kube_context]
notes:
  - Templates that render something new on every run (random passwords without C(lookup), timestamps,
    C(.Release.Revision)) make every run a change; keep such values stable.
  - Only the helm storage driver C(secret) (helm's default) has been tested.
seealso:
  - module: mybinder.deploy.rollout_status
  - module: mybinder.deploy.helm_rollback
  - module: kubernetes.core.helm
"""

EXAMPLES = r"""
- name: Deploy the meta chart
  mybinder.deploy.helm_release:
    name: prod
    namespace: prod
    chart_ref: "{{ playbook_dir }}/mybinder"
    values_files:
      - config/prod.yaml
      - secret/config/prod.yaml
    kubeconfig: "{{ cluster_access_kubeconfig_path }}"
  register: release

- name: Install ingress-nginx from its repository, values inline
  mybinder.deploy.helm_release:
    name: ingress-nginx
    namespace: ingress-nginx
    chart_ref: ingress-nginx
    chart_repo_url: https://kubernetes.github.io/ingress-nginx
    chart_version: 4.14.1
    values:
      controller:
        replicaCount: 2
  register: ingress

- name: Show what a deploy would change, per object, without changing anything
  mybinder.deploy.helm_release:
    name: staging
    namespace: staging
    chart_ref: mybinder
    values_files: [config/staging.yaml]
  check_mode: true
  diff: true
"""

RETURN = r"""
release:
  description: The release after this run (as predicted in check mode).
  returned: always
  type: dict
  contains:
    name:
      description: Release name.
      type: str
    namespace:
      description: Release namespace.
      type: str
    revision:
      description: Revision deployed now (the revision an upgrade would create, in check mode); V(0) when none.
      type: int
    status:
      description: Helm status of that revision (C(deployed), C(failed), ...).
      type: str
    chart:
      description: Chart name and version, C(name-version).
      type: str
  sample: {name: prod, namespace: prod, revision: 7, status: deployed, chart: mybinder-0.1.0}
previous_revision:
  description:
    - The revision that was serving before this run (after any recovery), the one to roll back to when the
      rollout fails; V(0) when the release was not deployed before.
  returned: always
  type: int
  sample: 6
upgraded:
  description: Whether helm upgrade/install ran (or would run, in check mode).
  returned: always
  type: bool
recovered:
  description: The recovery of a stuck release, or V(null) when none was needed.
  returned: always
  type: dict
  contains:
    from_status:
      description: The pending state found.
      type: str
    from_revision:
      description: The stuck revision.
      type: int
    action:
      description: V(rollback) or V(uninstall).
      type: str
    to_revision:
      description: Revision rolled back to (V(0) for an uninstall).
      type: int
  sample: {from_status: pending-upgrade, from_revision: 5, action: rollback, to_revision: 4}
changes:
  description: What differs between the deployed release and the new render (object keys are C(Kind namespace/name)).
  returned: always
  type: dict
  contains:
    added:
      description: Objects to create.
      type: list
      elements: str
    removed:
      description: Objects to delete.
      type: list
      elements: str
    modified:
      description: Objects to change.
      type: list
      elements: str
    missing:
      description: Objects of the deployed release that are gone from the cluster (deleted by hand); an upgrade
        recreates them, as C(helm upgrade) does.
      type: list
      elements: str
    values_changed:
      description: Paths of values that changed (the values themselves are never returned).
      type: list
      elements: str
    chart_changed:
      description: Whether chart name, version or appVersion changed.
      type: bool
  sample:
    added: []
    removed: []
    modified: ["Deployment prod/hub"]
    missing: []
    values_changed: [hub.image.tag]
    chart_changed: false
msg:
  description: Says that the chart is a test stand-in, not the real chart (the action plugin also prints it).
  returned: when the chart is a stand-in
  type: str
chart_info:
  description: The chart that was rendered, and whether it is a test stand-in (annotation C(mybinder.org/stand-in)).
  returned: always
  type: dict
  contains:
    name:
      description: Chart name.
      type: str
    version:
      description: Chart version.
      type: str
    app_version:
      description: The chart's appVersion.
      type: str
    stand_in:
      description: Whether the chart is a stand-in for offline tests (it runs none of the real software).
      type: bool
    stand_in_for:
      description: What the stand-in stands in for (annotation C(mybinder.org/stand-in-for)); empty otherwise.
      type: str
  sample: {name: ingress-nginx, version: 4.14.1, app_version: 1.14.1, stand_in: false, stand_in_for: ""}
compared:
  description:
    - How the module decided. V(inputs) - the serving revision was made from the same inputs (see O(always_render)),
      nothing was rendered. V(render) - the chart was rendered and compared object by object.
  returned: success
  type: str
  sample: inputs
workloads:
  description: Deployments, StatefulSets and DaemonSets of the release, for M(mybinder.deploy.rollout_status).
  returned: always
  type: list
  elements: dict
  sample: [{kind: Deployment, namespace: prod, name: hub}]
command:
  description: The helm upgrade command run (or that would run); no values or credentials are on it.
  returned: when an upgrade ran or would run
  type: str
"""

import contextlib

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible_collections.mybinder.deploy.plugins.module_utils._chart_repo import (
    ChartRepoError,
    chart_info,
    pulled_chart,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._helm import (
    HAS_YAML,
    PENDING_STATES,
    YAML_IMPORT_ERROR,
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


def run(module: AnsibleModule) -> dict:
    p = module.params
    name, ns = p["name"], p["namespace"]
    if not valid_duration(p["timeout"]):
        module.fail_json(
            msg=f"timeout={p['timeout']!r} is not a duration helm understands; write it like 5m, 90s or 1h30m"
        )
    helm = Helm(
        binary=p["binary_path"] or module.get_bin_path("helm", required=True),
        kubeconfig=p["kubeconfig"],
        context=p["context"],
        namespace=ns,
    )
    chart, values, inline = p["chart_ref"], p["values_files"], p["values"]
    if p["chart_repo_url"]:
        try:
            chart = pulled_chart(p["chart_repo_url"], chart, p["chart_version"], p["chart_cache_dir"])
        except ChartRepoError as exc:
            raise HelmError(f"release {name}: {exc}; nothing was deployed") from exc
    digest = values_digest(values, inline)
    opts = UpgradeOptions(
        create_namespace=p["create_namespace"],
        cleanup_on_fail=p["cleanup_on_fail"],
        history_max=p["history_max"],
        timeout=p["timeout"],
        take_ownership=p["take_ownership"],
        description=f"{DIGEST_MARK}{digest}",
        skip_crds=p["skip_crds"],
    )

    # The release record is read straight from its storage objects (see _helm_records), so the
    # connection is opened first; the objects are checked through it too.
    client = kube_client(p, name)
    records = records_for(helm, client, ns)
    history = records.history(name)
    recovered = recover(module, helm, name, ns, history)
    if recovered and not module.check_mode:
        history = records.history(name)
    # What serves now (in check mode: what the recovery would leave serving).
    if recovered and recovered["action"] == "uninstall":
        current = None
    elif recovered and module.check_mode:
        current = records.release(name, revision=recovered["to_revision"], history=history)
    else:
        current = records.release(name, history=history)
    serving_status = "deployed" if recovered and current else (current or {}).get("info", {}).get("status", "")

    # The revision records what it was rendered from; when nothing of that changed, a render would
    # give back what it deployed (live lookups, random values and timestamps aside), so the render
    # is skipped. Objects deleted by hand are still looked for.
    try:
        capabilities = capabilities_digest(client)
    except KubeApiError as exc:
        raise HelmError(f"release {name}: reading the cluster's API versions failed: {exc.message}") from exc
    inputs = inputs_digest(chart, f"{digest} skip_crds={p['skip_crds']}", helm.binary, capabilities, name, ns)
    opts.description = f"{DIGEST_MARK}{digest}{INPUTS_MARK}{inputs}"
    if (
        current is not None
        and current.get("chart")  # read from the record itself (not through the CLI)
        and not recovered
        and serving_status == "deployed"
        and not p["always_render"]
        and recorded_inputs(current["info"].get("description", "")) == inputs
    ):
        unchanged = unchanged_result(module, client, current, name, ns)
        if unchanged is not None:
            return unchanged

    try:
        rendered = helm.template(
            name,
            chart,
            values,
            is_upgrade=current is not None,
            inline=inline,
            skip_crds=p["skip_crds"],
            take_ownership=p["take_ownership"],
        )
    except HelmError as exc:
        exc.msg = f"rendering release {name} (chart {chart}) failed, nothing was deployed: {exc.msg}"
        exc.msg += adopt_hint(exc.msg)
        exc.extra = {
            "changed": bool(recovered),
            "upgraded": False,
            "previous_revision": serving_revision(current, serving_status, history),
            "recovered": recovered,
        }
        raise

    values_changed: list[str] = []
    if current is not None and recorded_digest(current["info"].get("description", "")) != digest:
        # The files changed (or this revision was not made by this module): compare the values.
        values_changed = value_paths(records.values(name, current["version"]), user_values(values, inline))
    cmp = compare(current, rendered, values_changed, want_diff=module._diff)
    if current is not None:
        # Objects deleted by hand: helm's record still lists them, `helm upgrade` would recreate them.
        try:
            cmp.note_missing(missing_objects(client, Resources(client), cmp.shared, ns), module._diff)
        except KubeApiError as exc:
            raise HelmError(f"release {name}: reading its objects from the cluster failed: {exc}") from exc
    # A release whose last upgrade failed is redeployed even when the render equals it: its status
    # must become "deployed" again.
    upgrade = current is None or serving_status != "deployed" or cmp.changed
    previous = serving_revision(current, serving_status, history)

    made_namespace = False
    if upgrade and p["validate"]:
        # A first install into a namespace that does not exist yet: create it now (as helm would)
        # so that the API server can dry-run the namespaced objects too, and delete it again when
        # the server rejects one: a refused install leaves nothing behind.
        if current is None and p["create_namespace"] and not module.check_mode:
            try:
                made_namespace = create_namespace(client, ns)
            except KubeApiError as exc:
                raise HelmError(f"release {name}: creating namespace {ns} failed: {exc.message}") from exc
        try:
            problem = server_validate(client, ns, rendered)
        except Exception:
            if made_namespace:  # best effort: the error that got here is the one to report
                with contextlib.suppress(Exception):
                    delete_namespace(client, ns)
            raise
        opts.disable_openapi_validation = problem is None
        if problem and made_namespace:
            problem += f" ({delete_namespace(client, ns)})"
        if problem:
            raise HelmError(
                f"the API server rejects what release {name} would deploy, so nothing was deployed"
                + (f" (revision {previous} still serves)" if previous else "")
                + f": {problem}",
                extra={
                    "changed": bool(recovered),
                    "upgraded": False,
                    "previous_revision": previous,
                    "recovered": recovered,
                },
            )

    result: dict = {
        "changed": bool(recovered) or upgrade,
        "upgraded": upgrade,
        "recovered": recovered,
        "previous_revision": previous,
        "changes": cmp.summary(),
        "workloads": workloads(rendered),
        "release": summarize(current, name, ns),
        "chart_info": chart_info(rendered["chart"]["metadata"]),
        "compared": "render",
    }
    if module._diff:
        result["diff"] = cmp.diffs
    if not upgrade:
        return result
    result["command"] = " ".join(helm.base() + helm.upgrade_args(name, chart, values, opts, inline is not None))
    if module.check_mode:
        # The revision the upgrade would create (after the rollback a recovery would add).
        latest = 0 if recovered and recovered["action"] == "uninstall" else (history[-1]["revision"] if history else 0)
        latest += 1 if recovered and recovered["action"] == "rollback" else 0
        result["release"] = dict(
            result["release"], revision=latest + 1, status="deployed", chart=chart_id(rendered)["chart"]
        )
        return result
    try:
        made = helm.upgrade(name, chart, values, opts, inline)
    except HelmError as exc:
        # The caller rolls back to previous_revision when the failed upgrade left a revision.
        after = records.latest_entry(name)
        exc.msg = f"helm upgrade of release {name} in namespace {ns} failed: {exc.msg}"
        exc.msg += adopt_hint(exc.msg)
        if made_namespace and after is None:
            # helm stopped before it recorded a revision (a CRD of crds/ refused, a conflicting object
            # made since the render): nothing of the release exists, so the namespace made for the dry
            # run goes too, as when the dry run refuses.
            exc.msg += f" ({delete_namespace(client, ns)})"
        exc.extra = {
            "changed": bool(after) and (current is None or after["revision"] != current["version"]),
            "upgraded": True,
            "previous_revision": previous,
            "release": summarize_entry(after, name, ns),
            "recovered": recovered,
            "changes": cmp.summary(),
            "workloads": result["workloads"],
        }
        raise
    result["release"] = summarize_entry(made or records.latest_entry(name), name, ns)
    return result


ADOPT_HINT = (
    "; that object was made outside this release: delete it, or set take_ownership=true to let the release adopt it"
)


def adopt_hint(msg: str) -> str:
    """The fix for helm's refusal to install over an object it did not make ("" for other errors);
    helm 3 words that refusal as below (pkg/action/validate.go)."""
    return ADOPT_HINT if "exists and cannot be imported into the current release" in msg else ""


def unchanged_result(module: AnsibleModule, client: KubeClient, current: dict, name: str, ns: str) -> dict | None:
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
    if module._diff:
        result["diff"] = []
    return result


def kube_client(p: dict, name: str) -> KubeClient:
    try:
        return build_client({"kubeconfig": p["kubeconfig"], "context": p["context"]}, user_agent="mybinder.deploy/helm")
    except KubeConnectionError as exc:
        raise HelmError(f"release {name}: cannot connect to the cluster: {exc}") from exc


def recover(module: AnsibleModule, helm: Helm, name: str, ns: str, history: list[dict]) -> dict | None:
    """Get a release out of pending-install/-upgrade/-rollback left by an interrupted run (the
    cause of "another operation (install/upgrade/rollback) is in progress"): roll it back to its
    last deployed revision, or uninstall it when it never was deployed."""
    latest = history[-1] if history else None
    if not latest or latest.get("status") not in PENDING_STATES:
        return None
    state, stuck = latest["status"], int(latest["revision"])
    if not module.params["recover_pending"]:
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
    module.warn(
        f"release {name} was stuck in {state} (revision {stuck}), left by an interrupted run: "
        + (f"it would be {what} first" if module.check_mode else f"it was {what}")
    )
    if not module.check_mode:
        if target:
            helm.rollback(name, target, timeout=module.params["timeout"])
        else:
            helm.uninstall(name, timeout=module.params["timeout"])
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


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True, "aliases": ["release_name"]},
            "namespace": {"type": "str", "required": True, "aliases": ["release_namespace"]},
            "chart_ref": {"type": "path", "required": True},
            "chart_repo_url": {"type": "str"},
            "chart_version": {"type": "str"},
            "chart_cache_dir": {"type": "path"},
            "values_files": {"type": "list", "elements": "path", "default": []},
            "values": {"type": "dict"},
            "skip_crds": {"type": "bool", "default": False},
            "create_namespace": {"type": "bool", "default": True},
            "cleanup_on_fail": {"type": "bool", "default": True},
            "history_max": {"type": "int", "default": 10},
            "timeout": {"type": "str", "default": "5m"},
            "take_ownership": {"type": "bool", "default": False},
            "recover_pending": {"type": "bool", "default": True},
            "validate": {"type": "bool", "default": True},
            "always_render": {"type": "bool", "default": False},
            "binary_path": {"type": "path"},
            "kubeconfig": {
                "type": "path",
                "aliases": ["kubeconfig_path"],
                "fallback": (env_fallback, ["K8S_AUTH_KUBECONFIG"]),
            },
            "context": {"type": "str", "aliases": ["kube_context"], "fallback": (env_fallback, ["K8S_AUTH_CONTEXT"])},
        },
        supports_check_mode=True,
        required_together=[("chart_repo_url", "chart_version")],
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=YAML_IMPORT_ERROR)
    try:
        result = run(module)
        if result.get("chart_info", {}).get("stand_in"):
            result["msg"] = stand_in_note(module.params, result["chart_info"])
        module.exit_json(**result)
    except HelmError as exc:
        module.fail_json(**exc.result())


if __name__ == "__main__":
    main()
