# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ingress_placement runner (collection-private): where the ingress controller's pods run and
where they may run, whether the settings can work, and whether every pod is on a cordoned node.

The module (plugins/modules/ingress_placement.py) only documents, declares its options and calls ``check_placement``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KubeApiError, build_client


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
