#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# BSD 3-Clause License (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: helm_release
short_description: Install or upgrade a Helm release only when what it deploys changed, recovering stuck releases
version_added: 0.1.0
description:
  - Renders the release the way C(helm upgrade --install) would (C(helm upgrade --install --dry-run=server -o json))
    and compares the rendered manifest, hooks, values and chart metadata, object by object, with the release
    currently deployed (C(helm status -o json)). Only when something differs does it run
    C(helm upgrade --install --reset-values) (with C(--create-namespace) and C(--cleanup-on-fail) by default).
  - So a template edit without a chart version bump is deployed (C(kubernetes.core.helm) compares only the chart
    version and the values unless the helm-diff plugin is installed), and a run with nothing to change reports
    RV(ignore:changed=false).
  - Never passes C(--wait) to helm; wait for the rollout afterwards with M(mybinder.deploy.rollout_status). An
    interrupted helm wait is what leaves releases stranded.
  - A release left in C(pending-install), C(pending-upgrade) or C(pending-rollback) by an interrupted run (the
    cause of "another operation (install/upgrade/rollback) is in progress") is recovered first when
    O(recover_pending=true) - rolled back to its last deployed revision, or uninstalled when it never was
    deployed - and the recovery is reported in RV(recovered).
  - In diff mode every added, removed or modified object is shown as its own before/after pair. The data of
    Secrets is never shown, only which keys changed; changed values are named by their path, never shown.
author:
  - mybinder.deploy developers
requirements:
  - helm >= 3.13 (C(--dry-run=server)), < 4
  - kubectl (for O(validate))
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Renders and compares against the cluster, predicts RV(ignore:changed), changes nothing.
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
    description: Path of the chart directory (its dependencies must already be in its C(charts/) directory).
    type: path
    required: true
  values_files:
    description:
      - Values files passed to helm in this order; a later file wins over an earlier one (helm's rule).
      - Chart defaults (the chart's own C(values.yaml)) always come first.
    type: list
    elements: path
    default: []
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
    type: bool
    default: false
  recover_pending:
    description:
      - Recover a release stuck in a pending state before upgrading (see the description).
      - When V(false), such a release is an error that names the state and how to recover.
    type: bool
    default: true
  validate:
    description:
      - Before upgrading (and in check mode), send every rendered object to the API server as a server-side
        apply dry run, and fail without changing anything when the server rejects one (wrong value types,
        invalid quantities, missing required fields, admission). C(helm --dry-run) only renders, so such values
        otherwise fail half way through the upgrade, after other objects were already changed.
      - Skipped for a first install into a namespace that does not exist yet. Needs C(kubectl).
    type: bool
    default: true
  kubectl_binary:
    description: The kubectl binary for O(validate); found on E(PATH) when not set.
    type: path
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
    values_changed: [hub.image.tag]
    chart_changed: false
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

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible_collections.mybinder.deploy.plugins.module_utils._helm import (
    HAS_YAML,
    PENDING_STATES,
    YAML_IMPORT_ERROR,
    Helm,
    HelmError,
    UpgradeOptions,
    chart_id,
    compare,
    last_good_revision,
    server_validate,
    valid_duration,
    workloads,
)


def summarize(rel: dict | None) -> dict:
    if not rel:
        return {"name": "", "namespace": "", "revision": 0, "status": "", "chart": ""}
    return {
        "name": rel.get("name", ""),
        "namespace": rel.get("namespace", ""),
        "revision": int(rel.get("version") or 0),
        "status": (rel.get("info") or {}).get("status", ""),
        "chart": chart_id(rel)["chart"],
    }


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
    opts = UpgradeOptions(
        create_namespace=p["create_namespace"],
        cleanup_on_fail=p["cleanup_on_fail"],
        history_max=p["history_max"],
        timeout=p["timeout"],
        take_ownership=p["take_ownership"],
    )
    chart, values = p["chart_ref"], p["values_files"]

    history = helm.history(name)
    current = helm.release(name, history=history)
    recovered = None
    changed = False
    if current and current["info"]["status"] in PENDING_STATES:
        state, stuck = current["info"]["status"], int(current["version"])
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
        changed = True
        if module.check_mode:
            # helm refuses even a dry-run upgrade of a pending release: compare with what recovery restores.
            current = helm.release(name, revision=target, history=history) if target else None
        else:
            if target:
                helm.rollback(name, target, timeout=p["timeout"])
            else:
                helm.uninstall(name, timeout=p["timeout"])
            history = helm.history(name)
            current = helm.release(name, history=history)

    if recovered:
        what = (
            f"rolled back to revision {recovered['to_revision']}"
            if recovered["action"] == "rollback"
            else "uninstalled (it never was deployed)"
        )
        module.warn(
            f"release {name} was stuck in {recovered['from_status']} (revision {recovered['from_revision']}), "
            "left by an interrupted run: " + (f"it would be {what} first" if module.check_mode else f"it was {what}")
        )
    try:
        if module.check_mode and recovered:
            # helm refuses even a dry-run upgrade while the pending record exists: render the chart
            # without looking at release records, as an upgrade.
            rendered = helm.template(name, chart, values, opts, is_upgrade=current is not None)
            rendered["config"] = (current or {}).get("config")
        else:
            rendered = helm.render(name, chart, values, opts)
    except HelmError as exc:
        # Nothing was deployed: say so, and which revision still serves.
        serving = int(current["version"]) if current and current["info"]["status"] == "deployed" else 0
        exc.msg = f"rendering release {name} (chart {chart}) failed, nothing was deployed: {exc.msg}"
        exc.extra = {"changed": changed, "upgraded": False, "previous_revision": serving, "recovered": recovered}
        raise

    cmp = compare(current, rendered, want_diff=module._diff)
    cur_status = (current or {}).get("info", {}).get("status", "")
    if module.check_mode and recovered and current is not None:
        cur_status = "deployed"  # what the recovery (a rollback) would leave
    # A release whose last upgrade failed is redeployed even if the render equals it: its status must
    # become "deployed" again.
    upgrade = current is None or cur_status != "deployed" or cmp.changed
    if current is None:
        previous = 0
    elif cur_status == "deployed":
        previous = int(current["version"])
    else:
        previous = last_good_revision(history) or 0

    if upgrade and p["validate"]:
        kubectl = [p["kubectl_binary"] or module.get_bin_path("kubectl", required=True)]
        if p["kubeconfig"]:
            kubectl += ["--kubeconfig", p["kubeconfig"]]
        if p["context"]:
            kubectl += ["--context", p["context"]]
        problem = server_validate(kubectl, ns, rendered)
        if problem:
            raise HelmError(
                f"the API server rejects what release {name} would deploy, so nothing was deployed"
                + (f" (revision {previous} still serves)" if previous else "")
                + f": {problem}",
                extra={"changed": changed, "upgraded": False, "previous_revision": previous, "recovered": recovered},
            )

    result: dict = {
        "changed": changed or upgrade,
        "upgraded": upgrade,
        "recovered": recovered,
        "previous_revision": previous,
        "changes": cmp.summary(),
        "workloads": workloads(rendered),
    }
    if module._diff:
        result["diff"] = cmp.diffs
    if upgrade:
        result["command"] = " ".join(helm.base() + helm.upgrade_args(name, chart, values, opts))
        if not module.check_mode:
            try:
                helm.upgrade(name, chart, values, opts)
            except HelmError as exc:
                # The caller rolls back to previous_revision if the failed upgrade left a revision.
                after_hist = helm.history(name, max_revisions=1)
                after = (
                    {
                        "name": name,
                        "namespace": ns,
                        "version": after_hist[-1]["revision"],
                        "info": {"status": after_hist[-1].get("status")},
                        "chart_ref": after_hist[-1].get("chart", ""),
                    }
                    if after_hist
                    else None
                )
                exc.msg = f"helm upgrade of release {name} in namespace {ns} failed: {exc.msg}"
                exc.extra = {
                    "changed": after is not None
                    and (current is None or after.get("version") != current.get("version")),
                    "upgraded": True,
                    "previous_revision": previous,
                    "release": summarize(after),
                    "recovered": recovered,
                    "changes": cmp.summary(),
                    "workloads": result["workloads"],
                }
                raise
            last = helm.history(name, max_revisions=1)
            if last:
                rendered = dict(rendered, version=last[-1]["revision"], info={"status": last[-1].get("status", "")})
    result["release"] = summarize(rendered if upgrade else current)
    if module.check_mode and upgrade:
        # The revision the upgrade would create (after the rollback a recovery would add).
        latest = int(history[-1]["revision"]) if history else 0
        if recovered and recovered["action"] == "uninstall":
            latest = 0
        elif recovered:
            latest += 1
        result["release"].update(status="deployed", revision=latest + 1, name=name, namespace=ns)
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True, "aliases": ["release_name"]},
            "namespace": {"type": "str", "required": True, "aliases": ["release_namespace"]},
            "chart_ref": {"type": "path", "required": True},
            "values_files": {"type": "list", "elements": "path", "default": []},
            "create_namespace": {"type": "bool", "default": True},
            "cleanup_on_fail": {"type": "bool", "default": True},
            "history_max": {"type": "int", "default": 10},
            "timeout": {"type": "str", "default": "5m"},
            "take_ownership": {"type": "bool", "default": False},
            "recover_pending": {"type": "bool", "default": True},
            "validate": {"type": "bool", "default": True},
            "kubectl_binary": {"type": "path"},
            "binary_path": {"type": "path"},
            "kubeconfig": {
                "type": "path",
                "aliases": ["kubeconfig_path"],
                "fallback": (env_fallback, ["K8S_AUTH_KUBECONFIG"]),
            },
            "context": {"type": "str", "aliases": ["kube_context"], "fallback": (env_fallback, ["K8S_AUTH_CONTEXT"])},
        },
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=YAML_IMPORT_ERROR)
    try:
        module.exit_json(**run(module))
    except HelmError as exc:
        module.fail_json(**exc.result())


if __name__ == "__main__":
    main()
