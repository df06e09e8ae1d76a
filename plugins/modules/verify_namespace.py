#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: verify_namespace
short_description: Check a deployed namespace serves - pods Ready, Services with endpoints, Ingress hosts with TLS
version_added: 0.1.0
description:
  - Waits up to O(timeout) seconds until the namespace is healthy, then reports; fails listing every problem
    when it is not.
  - Every pod selected by O(pod_selector) is Ready (finished pods and pods being deleted do not count; user
    servers and image builds are left out by the default selector, they come and go).
  - Every Service with a selector has at least one ready endpoint (EndpointSlices).
  - Every host of O(hosts) is a rule host of an Ingress in the namespace and, when O(require_tls=true), is
    covered by that Ingress's C(tls) section whose secret exists and holds a certificate.
  - The checks need several kinds read together and judged against each other, with one deadline and
    progress while waiting, which a chain of kubernetes.core.k8s_info tasks cannot do.
  - Read-only.
requirements:
  - kubernetes (Python client) >= 24
extends_documentation_fragment:
  - mybinder.deploy.module
  - mybinder.deploy.attributes.read_only
  - mybinder.deploy.attributes.rounds
  - mybinder.deploy.kubeconfig
options:
  namespace:
    description: Namespace to check.
    type: str
    required: true
  hosts:
    description: Host names the namespace's Ingresses must serve.
    type: list
    elements: str
    default: []
  require_tls:
    description:
      - Whether each host of O(hosts) must be in a C(tls) section of its Ingress, with an existing certificate secret.
    type: bool
    default: true
  require_certificates:
    description:
      - With O(require_tls=true), whether the certificate secret each C(tls) entry names must exist and hold a
        certificate. V(false) checks the Ingress TLS configuration only (for a cluster whose TLS provider cannot
        issue certificates, such as a local cluster that reaches no ACME server).
    type: bool
    default: true
  pod_selector:
    description: Label selector of the pods that must be Ready.
    type: str
    default: component notin (singleuser-server,binderhub-build)
  check_services:
    description: Whether Services with a selector must have a ready endpoint.
    type: bool
    default: true
  node_pools:
    description:
      - With a core and a user node pool, check placement in the namespace - every pod that is not a DaemonSet
        pod must be pinned to a pool (C(nodeSelector) on O(node_pools.label)), pods pinned to the core pool run on
        core nodes, and nothing that is not pinned to the core pool runs on a core node.
      - And in the whole cluster, every namespace - a user node holds nothing but user servers, builds, user
        placeholders and DaemonSet pods (anything else keeps the cluster autoscaler from removing the node).
      - Not checked when not set.
    type: dict
    suboptions:
      label:
        description: The node label that tells pools apart.
        type: str
        default: mybinder.org/node-purpose
      core:
        description: Label value of the core pool.
        type: str
        required: true
      user:
        description: Label value of the user pool.
        type: str
        required: true
  timeout:
    description: Seconds to wait for the namespace to become healthy before failing.
    type: int
    default: 120
  interval:
    description:
      - Longest pause between two checks. The first pause is 0.1 s and each next one half as long again, up to
        this, so a namespace that becomes healthy just after the first check is seen at once.
    type: float
    default: 2.0
  list_releases:
    description:
      - Once the namespace is healthy, also list every Helm release of the cluster (RV(releases)), as
        C(helm list --all-namespaces) does, from Helm's release records (Secrets, or ConfigMaps with
        E(HELM_DRIVER=configmap)), or with O(helm_binary) for other storage drivers. The action plugin then
        prints a summary - releases, hosts, health.
    type: bool
    default: false
  helm_binary:
    description: The helm CLI, for O(list_releases) when E(HELM_DRIVER) names a driver other than Secrets or ConfigMaps.
    type: str
    default: helm
seealso:
  - module: mybinder.deploy.rollout_status
"""

EXAMPLES = r"""
- name: Check the production namespace after a deploy
  mybinder.deploy.verify_namespace:
    namespace: prod
    hosts: [mybinder.org, gke.mybinder.org]
    timeout: 180
"""

RETURN = r"""
done:
  description: Whether every check passed.
  returned: always
  type: bool
problems:
  description: What is wrong, one sentence each.
  returned: always
  type: list
  elements: str
  sample: ["Service prod/binder has no ready endpoint (selector component=binder)"]
pods:
  description: Counts of checked pods.
  returned: always
  type: dict
  sample: {checked: 9, ready: 9}
services:
  description: Counts of checked Services.
  returned: always
  type: dict
  sample: {checked: 6, with_endpoints: 6}
placement:
  description: Result of the node pool check (with O(node_pools)).
  returned: when O(node_pools) is set
  type: dict
  sample: {core_pods: 7, user_pods: 2, user_node_strays: 0}
hosts:
  description: For each expected host, the Ingress serving it and its TLS secret (empty when none).
  returned: always
  type: dict
  sample: {mybinder.org: {ingress: binderhub, tls_secret: binder-tls}}
releases:
  description:
    - Every Helm release of the cluster, latest revision first by namespace and name (with O(list_releases)).
    - C(subcharts) (when the release records are read from the cluster, i.e. the Secrets or ConfigMaps driver) names
      the charts, as name-version, whose chart labels (C(helm.sh/chart) or C(chart)) the release's objects carry,
      the release's own chart left out; a nested subchart (binderhub's jupyterhub) included.
  returned: when O(list_releases) is set and the namespace is healthy
  type: list
  elements: dict
  sample:
    - {name: prod, namespace: prod, revision: 42, status: deployed, chart: mybinder-0.1.0, app_version: "",
       subcharts: [binderhub-1.0.0-0.dev.git.3958.haf9ca8b1, grafana-10.5.15, jupyterhub-4.2.0]}
releases_error:
  description: Why RV(releases) is empty with O(list_releases) (for example, no right to list every namespace).
  returned: when listing the releases failed
  type: str
elapsed:
  description: Seconds this module run waited.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KUBECONFIG_ARG_SPEC, KUBERNETES
from ansible_collections.mybinder.deploy.plugins.module_utils._rollout import ROUNDS_ARG_SPEC
from ansible_collections.mybinder.deploy.plugins.module_utils._verify_namespace import VERIFY_TIMEOUT, verify_namespace


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "namespace": {"type": "str", "required": True},
            "hosts": {"type": "list", "elements": "str", "default": []},
            "require_tls": {"type": "bool", "default": True},
            "require_certificates": {"type": "bool", "default": True},
            "pod_selector": {"type": "str", "default": "component notin (singleuser-server,binderhub-build)"},
            "check_services": {"type": "bool", "default": True},
            "node_pools": {
                "type": "dict",
                "options": {
                    "label": {"type": "str", "default": "mybinder.org/node-purpose"},
                    "core": {"type": "str", "required": True},
                    "user": {"type": "str", "required": True},
                },
            },
            "timeout": {"type": "int", "default": VERIFY_TIMEOUT},
            **ROUNDS_ARG_SPEC,
            "interval": {"type": "float", "default": 2.0},
            "list_releases": {"type": "bool", "default": False},
            "helm_binary": {"type": "str", "default": "helm"},
            **KUBECONFIG_ARG_SPEC,
        },
        supports_check_mode=True,
    )
    conclude(module, lambda: verify_namespace(module.params), KUBERNETES)


if __name__ == "__main__":
    main()
