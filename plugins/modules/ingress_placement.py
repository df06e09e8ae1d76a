#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ingress_placement
short_description: Check where the ingress controller can run and where it runs, against cordoned nodes
version_added: 0.1.0
description:
  - Reads the nodes and the ingress controller's pods once and checks them the way the
    M(mybinder.deploy.ingress) role needs before and after an upgrade.
  - Every controller pod on a cordoned node is an outage although every pod is Running - cloud load
    balancers stop sending traffic to cordoned nodes (upstream lost 40 minutes this way). Depending on
    O(cordon_check) that is a warning, a failure, or ignored.
  - With O(check_settings), also refuses settings the nodes cannot satisfy (a pinned node that does not exist,
    more replicas with required anti-affinity than nodes matching the node selector), naming every problem at
    once, and warns when cordoned nodes leave too few places for new controller pods.
  - Sets the fact C(ingress_placement) (the same as RV(placement)).
  - Why a module and not tasks - the reads and checks were nine tasks of Jinja over the API's lists; one run in
    Ansible's worker process reads both lists on one connection.
extends_documentation_fragment:
  - mybinder.deploy.module
  - mybinder.deploy.kube_connection
  - mybinder.deploy.attributes.read_only
options:
  namespace:
    description: Namespace of the controller's pods.
    type: str
    required: true
  pod_labels:
    description: Labels that select the controller's pods (all must match).
    type: dict
    required: true
  node_selector:
    description: The controller's node selector; nodes carrying all these labels are the ones it can use.
    type: dict
    default: {}
  pinned_node:
    description: Node the controller is pinned to (host networking); it must exist. Empty for none.
    type: str
    default: ""
  replicas:
    description: Controller replicas the release asks for.
    type: int
    default: 1
  anti_affinity:
    description: The controller's anti-affinity across nodes; V(required) needs a node per replica.
    type: str
    choices: [preferred, required, none]
    default: preferred
  cordon_check:
    description: What every controller pod on a cordoned node means - a warning, a failure, or nothing.
    type: str
    choices: [warn, fail, ignore]
    default: warn
  check_settings:
    description:
      - Also refuse a O(pinned_node) that is not a node and more O(replicas) with required anti-affinity than
        matching nodes, and warn when cordoned nodes leave too few places for new controller pods.
    type: bool
    default: true
  moment:
    description: When the check runs, for the messages and RV(placement) (e.g. V(before the upgrade)).
    type: str
    default: now
  variable_prefix:
    description: Prefix of the settings' names in messages (the role passes V(ingress_), so they name its variables).
    type: str
    default: ""
seealso:
  - module: mybinder.deploy.node_drain
"""

EXAMPLES = r"""
- name: Check where the controller can run and runs, before the upgrade
  mybinder.deploy.ingress_placement:
    namespace: ingress-nginx
    pod_labels:
      app.kubernetes.io/name: ingress-nginx
      app.kubernetes.io/instance: ingress-nginx
      app.kubernetes.io/component: controller
    node_selector: {kubernetes.io/os: linux, mybinder.org/node-purpose: core}
    replicas: 2
    anti_affinity: required
    cordon_check: fail
    moment: before the upgrade
"""

RETURN = r"""
placement:
  description:
    - Where the controller's pods run (pods being deleted and pods not yet scheduled are left out), which nodes
      are cordoned, and whether every pod sits on a cordoned node.
  returned: always
  type: dict
  sample:
    moment: before the upgrade
    pods: [{name: ingress-nginx-controller-5d8f-abcde, node: core-0, phase: Running, cordoned: false}]
    cordoned_nodes: []
    all_on_cordoned: false
matching_nodes:
  description: The nodes that carry every label of O(node_selector), and whether each is cordoned.
  returned: always
  type: list
  elements: dict
  sample: [{name: core-0, cordoned: false}]
nodes:
  description: Names of all nodes.
  returned: always
  type: list
  elements: str
"""

import json
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError, conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import (
    KUBE_CONNECTION_ARG_SPEC,
    KubeApiError,
    build_client,
)


def node_view(nodes: list[dict[str, Any]], node_selector: dict[str, Any]) -> list[dict[str, Any]]:
    """The nodes that carry every label of the node selector, and whether each is cordoned."""
    wanted = {str(k): str(v) for k, v in node_selector.items()}
    out = []
    for node in nodes:
        labels = node.get("metadata", {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in wanted.items()):
            out.append({"name": node["metadata"]["name"], "cordoned": bool(node.get("spec", {}).get("unschedulable"))})
    return out


def placement(pods: list[dict[str, Any]], nodes: list[dict[str, Any]], moment: str) -> dict[str, Any]:
    cordoned = [n["metadata"]["name"] for n in nodes if (n.get("spec") or {}).get("unschedulable")]
    running = []
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or pod["metadata"].get("deletionTimestamp"):
            continue
        running.append(
            {
                "name": pod["metadata"]["name"],
                "node": node,
                "phase": (pod.get("status") or {}).get("phase", ""),
                "cordoned": node in cordoned,
            }
        )
    return {
        "moment": moment,
        "pods": running,
        "cordoned_nodes": cordoned,
        "all_on_cordoned": bool(running) and all(p["cordoned"] for p in running),
    }


def setting_problems(p: dict[str, Any], names: list[str], matching: list[dict[str, Any]]) -> list[str]:
    pre = p["variable_prefix"]
    problems = []
    if p["pinned_node"] and p["pinned_node"] not in names:
        problems.append(
            f"{pre}pinned_node={p['pinned_node']} is not a node of this cluster (nodes: {', '.join(names)}). "
            "Set it to the node that the ingress host name resolves to."
        )
    if p["anti_affinity"] == "required" and p["replicas"] > len(matching):
        problems.append(
            f"{pre}anti_affinity=required puts each of the {p['replicas']} replicas on its own node, but only "
            f"{len(matching)} node(s) match {json.dumps(p['node_selector'], sort_keys=True)} "
            f"({', '.join(n['name'] for n in matching) or 'none'}): some replicas would stay Pending and the rollout "
            f"would never finish. Lower {pre}replicas, add nodes, or use {pre}anti_affinity=preferred."
        )
    return problems


def capacity_warning(p: dict[str, Any], matching: list[dict[str, Any]]) -> str | None:
    """Cordoned nodes that leave too few places for new controller pods."""
    cordoned = [n["name"] for n in matching if n["cordoned"]]
    free = len(matching) - len(cordoned)
    if p["cordon_check"] == "ignore" or not cordoned:
        return None
    if free > 0 and not (p["anti_affinity"] == "required" and p["replicas"] > free):
        return None
    consequence = (
        "New controller pods cannot start"
        if free == 0
        else "With required anti-affinity some new controller pods would stay Pending"
    )
    return (
        f"only {free} schedulable node(s) match the controller's node selector "
        f"{json.dumps(p['node_selector'], sort_keys=True)} (cordoned: {', '.join(cordoned)}). "
        f"{consequence} until a node is uncordoned."
    )


def all_on_cordoned_message(p: dict[str, Any], where: dict[str, Any]) -> str:
    pods = ", ".join(f"{pod['name']} on {pod['node']}" for pod in where["pods"])
    if p["cordon_check"] == "fail":
        return (
            f"Every ingress-nginx controller pod sits on a cordoned node ({p['moment']}): {pods}. Cloud load "
            "balancers drop cordoned nodes. Uncordon a node the controller can use and restart it there (or set "
            f"{p['variable_prefix']}cordon_check: warn to continue anyway)."
        )
    return (
        f"({p['moment']}): every ingress-nginx controller pod sits on a cordoned node ({pods}). Cloud load balancers "
        "stop sending traffic to cordoned nodes, so the site can go dark although the pods run (upstream lost 40 "
        "minutes this way). Uncordon a node the controller can use, then restart the controller there (kubectl -n "
        f"{p['namespace']} rollout restart deployment), before cordoning or draining more."
    )


def main() -> None:
    spec: dict[str, Any] = {
        "namespace": {"type": "str", "required": True},
        "pod_labels": {"type": "dict", "required": True},
        "node_selector": {"type": "dict", "default": {}},
        "pinned_node": {"type": "str", "default": ""},
        "replicas": {"type": "int", "default": 1},
        "anti_affinity": {"type": "str", "choices": ["preferred", "required", "none"], "default": "preferred"},
        "cordon_check": {"type": "str", "choices": ["warn", "fail", "ignore"], "default": "warn"},
        "check_settings": {"type": "bool", "default": True},
        "moment": {"type": "str", "default": "now"},
        "variable_prefix": {"type": "str", "default": ""},
    }
    spec.update(KUBE_CONNECTION_ARG_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    conclude(module, lambda: check_placement(module.params, module.warn))


def check_placement(p: dict[str, Any], warn: Callable[[str], None]) -> dict[str, Any]:
    """Where the controller's pods run and where they may run; a ModuleError when the settings
    cannot work or (cordon_check: fail) every pod runs on cordoned nodes."""
    selector = ",".join(f"{k}={v}" for k, v in sorted(p["pod_labels"].items()))
    try:
        client = build_client(p, user_agent="mybinder.deploy/ingress_placement")
        nodes = list(client.list_items("/api/v1/nodes"))
        pods = list(client.list_items(f"/api/v1/namespaces/{p['namespace']}/pods", labelSelector=selector))
    except KubeApiError as exc:
        raise ModuleError(f"reading the nodes and the controller pods failed: {exc}", status=exc.status) from exc

    names = [n["metadata"]["name"] for n in nodes]
    matching = node_view(nodes, p["node_selector"])
    where = placement(pods, nodes, p["moment"])
    result: dict[str, Any] = {
        "changed": False,
        "placement": where,
        "matching_nodes": matching,
        "nodes": names,
        "ansible_facts": {"ingress_placement": where},
    }
    if p["check_settings"]:
        problems = setting_problems(p, names, matching)
        if problems:
            raise ModuleError(" ".join(problems), **result)
        warning = capacity_warning(p, matching)
        if warning:
            warn(warning)
    if where["all_on_cordoned"] and p["cordon_check"] != "ignore":
        message = all_on_cordoned_message(p, where)
        if p["cordon_check"] == "fail":
            raise ModuleError(message, **result)
        warn(message)
    return result


if __name__ == "__main__":
    main()
