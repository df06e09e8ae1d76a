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
requirements:
  - helm >= 3.13 (C(--dry-run=server)), < 4
  - kubernetes (Python client) >= 24, for kubeconfig contexts other than plain certificates or tokens (the module
    reads the release's objects and dry-runs them through the API)
extends_documentation_fragment:
  - mybinder.deploy.lock
  - mybinder.deploy.module
  - mybinder.deploy.kubeconfig
  - mybinder.deploy.helm_release
attributes:
  check_mode:
    support: full
    details:
      - Renders and compares against the cluster, predicts RV(ignore:changed), changes nothing in the cluster.
      - A chart from O(chart_repo_url) is still downloaded into O(chart_cache_dir) (a local cache) to be rendered.
  diff_mode:
    support: full
    details: One before/after pair per changed object; Secret data and values are redacted.
  idempotent:
    description: A second run with the same chart and values reports no change.
    support: full
options:
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


from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_release import (
    RELEASE_ARG_SPEC,
    deploy_release,
    stand_in_note,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KUBECONFIG_ARG_SPEC
from ansible_collections.mybinder.deploy.plugins.module_utils._lease import LOCK_ARG_SPEC
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import PYYAML


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **RELEASE_ARG_SPEC,
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
            "take_ownership": {"type": "bool", "default": False},
            "recover_pending": {"type": "bool", "default": True},
            "validate": {"type": "bool", "default": True},
            "always_render": {"type": "bool", "default": False},
            **KUBECONFIG_ARG_SPEC,
            **LOCK_ARG_SPEC,
        },
        supports_check_mode=True,
        required_together=[("chart_repo_url", "chart_version")],
    )
    conclude(module, lambda: release(module), PYYAML)


def release(module: AnsibleModule) -> dict[str, Any]:
    """deploy_release, with the note an operator must read when the chart is a stand-in."""
    result = deploy_release(
        module.params,
        module.check_mode,
        module._diff,
        module.warn,
        lambda name: module.get_bin_path(name, required=True),
    )
    if result.get("chart_info", {}).get("stand_in"):
        result["msg"] = stand_in_note(module.params, result["chart_info"])
    return result


if __name__ == "__main__":
    main()
