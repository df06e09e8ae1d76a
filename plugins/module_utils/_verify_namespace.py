# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verify_namespace runner (collection-private): is a deployed namespace healthy? Pods ready,
pods on the node pool they are pinned to, Services with ready endpoints, every host served by an
Ingress with TLS and an issued certificate; checked again with growing pauses until healthy or the
round is over, then, for the deploy's summary, every Helm release of the cluster.

The module (plugins/modules/verify_namespace.py) only documents, declares its options and calls
``verify_namespace``.
"""

from __future__ import annotations

import time
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._helm import Helm, HelmError
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_records import list_releases
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import (
    KubeApiError,
    KubeClient,
    KubeError,
    connect,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._rollout import pauses, pod_problem, selector_string

# How long verify_namespace waits for a healthy namespace by default (its timeout option, and its
# action plugin's).
VERIFY_TIMEOUT = 120


def host_matches(pattern: str, host: str) -> bool:
    """TLS host matching: a wildcard covers exactly one leftmost label."""
    if pattern == host:
        return True
    if pattern.startswith("*."):
        return "." in host and host.split(".", 1)[1] == pattern[2:]
    return False


def placement(kube: KubeClient, ns: str, pools: dict[str, Any], problems: list[str]) -> dict[str, int]:
    """Core components on core nodes, and nothing else there (DaemonSet pods excepted). All pods of
    the namespace count here, user servers and builds included."""
    pods = kube.items(f"/api/v1/namespaces/{ns}/pods")
    label, core, user = pools["label"], pools["core"], pools["user"]
    node_pool = {
        n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(label) for n in kube.items("/api/v1/nodes")
    }
    counts = {"core_pods": 0, "user_pods": 0}
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or []):
            continue
        name, node = f"{meta.get('namespace')}/{meta.get('name')}", spec.get("nodeName")
        pinned = (spec.get("nodeSelector") or {}).get(label)
        if pinned not in (core, user):
            problems.append(f"pod {name} is not pinned to a node pool (no nodeSelector {label}={core} or {user})")
        if not node:
            continue
        on = node_pool.get(node)
        if on == core:
            counts["core_pods"] += 1
            if pinned != core:
                problems.append(f"pod {name} runs on core node {node} but is not a core component ({label}={pinned})")
        elif on == user:
            counts["user_pods"] += 1
        if pinned == core and on != core:
            problems.append(f"core component {name} runs on node {node}, which is not in the core pool")
    counts["user_node_strays"] = user_node_strays(kube, node_pool, pools, problems)
    return counts


# What belongs on a user node besides DaemonSet pods: user servers, builds and the placeholders
# that keep room for them (their `component` labels in the JupyterHub and BinderHub charts).
USER_COMPONENTS = frozenset({"singleuser-server", "binderhub-build", "user-placeholder"})


def user_node_strays(kube: KubeClient, node_pool: dict[str, Any], pools: dict[str, Any], problems: list[str]) -> int:
    """Cluster-wide, every namespace: a pod on a user node that is not a user server, a build, a
    placeholder or a DaemonSet pod keeps the cluster autoscaler from removing that node (the
    kube-dns problem of the original deployment), so each one is a problem."""
    label, core, user = pools["label"], pools["core"], pools["user"]
    strays = 0
    for node in sorted(n for n, pool in node_pool.items() if pool == user):
        for pod in kube.items("/api/v1/pods", fieldSelector=f"spec.nodeName={node}"):
            meta = pod.get("metadata") or {}
            if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            if any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or []):
                continue
            if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
                continue
            if (meta.get("labels") or {}).get("component") in USER_COMPONENTS:
                continue
            strays += 1
            problems.append(
                f"pod {meta.get('namespace')}/{meta.get('name')} runs on user node {node}, where only user servers, "
                f"builds, placeholders and DaemonSet pods belong (it keeps the autoscaler from removing the node): "
                f"pin it to the core pool (nodeSelector {label}={core})"
            )
    return strays


def check(kube: KubeClient, p: dict[str, Any]) -> dict[str, Any]:
    ns = p["namespace"]
    problems: list[str] = []
    pods = kube.items(f"/api/v1/namespaces/{ns}/pods", labelSelector=p["pod_selector"] or None)
    checked = ready = 0
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") == "Succeeded":
            continue
        if status.get("phase") == "Failed" and any(o.get("kind") == "Job" for o in meta.get("ownerReferences") or []):
            continue
        checked += 1
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
            ready += 1
        else:
            problems.append(f"{pod_problem(pod)} (namespace {ns})")
    result: dict[str, Any] = {"pods": {"checked": checked, "ready": ready}}
    if p["node_pools"]:
        result["placement"] = placement(kube, ns, p["node_pools"], problems)

    svc_checked = with_ep = 0
    if p["check_services"]:
        slices = kube.items(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices")
        ready_by_svc: dict[str, int] = {}
        for sl in slices:
            svc = ((sl.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")
            n = sum(1 for ep in sl.get("endpoints") or [] if (ep.get("conditions") or {}).get("ready") is not False)
            if svc:
                ready_by_svc[svc] = ready_by_svc.get(svc, 0) + n
        for svc in kube.items(f"/api/v1/namespaces/{ns}/services"):
            spec = svc.get("spec") or {}
            if not spec.get("selector") or spec.get("type") == "ExternalName":
                continue
            svc_checked += 1
            name = svc["metadata"]["name"]
            if ready_by_svc.get(name):
                with_ep += 1
            else:
                sel = selector_string({"matchLabels": spec["selector"]})
                problems.append(f"Service {ns}/{name} has no ready endpoint (selector {sel})")
    result["services"] = {"checked": svc_checked, "with_endpoints": with_ep}

    hosts: dict[str, dict[str, str]] = {}
    if p["hosts"]:
        ingresses = kube.items(f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses")
        served = sorted(
            {r.get("host") for i in ingresses for r in (i.get("spec") or {}).get("rules") or [] if r.get("host")}
        )
        secrets_needed: dict[str, list[str]] = {}
        for host in p["hosts"]:
            ing = next(
                (i for i in ingresses if any(r.get("host") == host for r in (i.get("spec") or {}).get("rules") or [])),
                None,
            )
            if ing is None:
                problems.append(
                    f"no Ingress in namespace {ns} serves host {host} (hosts served: {', '.join(served) or 'none'})"
                )
                hosts[host] = {"ingress": "", "tls_secret": ""}
                continue
            iname = ing["metadata"]["name"]
            tls = next(
                (
                    t
                    for t in (ing.get("spec") or {}).get("tls") or []
                    if any(host_matches(h, host) for h in t.get("hosts") or [])
                ),
                None,
            )
            secret = (tls or {}).get("secretName", "")
            hosts[host] = {"ingress": iname, "tls_secret": secret}
            if p["require_tls"]:
                if tls is None:
                    problems.append(f"Ingress {ns}/{iname} serves {host} without TLS (no tls entry lists it)")
                elif not secret:
                    problems.append(f"Ingress {ns}/{iname} lists {host} under tls without a secretName")
                else:
                    secrets_needed.setdefault(secret, []).append(host)
        for secret, for_hosts in sorted(secrets_needed.items()) if p["require_certificates"] else []:
            obj = kube.get_or_none(f"/api/v1/namespaces/{ns}/secrets/{secret}")
            if obj is None:
                problems.append(
                    f"TLS secret {ns}/{secret} for {', '.join(for_hosts)} does not exist yet "
                    f"(certificate not issued? see `kubectl describe certificate -n {ns}`)"
                )
                continue
            if not (obj.get("data") or {}).get("tls.crt"):
                problems.append(f"TLS secret {ns}/{secret} for {', '.join(for_hosts)} holds no certificate (tls.crt)")
    result["hosts"] = hosts
    result["problems"] = problems
    return result


def releases(kube: KubeClient, p: dict[str, Any]) -> list[dict[str, Any]]:
    """Every Helm release of the cluster (module_utils/_helm_records.list_releases)."""
    helm = Helm(p["helm_binary"], p["kubeconfig"], p["context"])
    try:
        return list_releases(helm, kube.plain())
    except (KubeApiError, HelmError) as exc:
        raise KubeError(f"listing the cluster's Helm releases failed: {exc}") from exc


def verify_namespace(p: dict[str, Any]) -> dict[str, Any]:
    """One run of verify_namespace with its module parameters: check until healthy or the round is
    over; the result, or a ModuleError listing every problem when it must fail."""
    t0 = time.monotonic()
    kube = connect(p["kubeconfig"], p["context"])
    seconds = p["wait_seconds"] if p["wait_seconds"] is not None else float(p["timeout"])
    deadline = t0 + seconds
    # Each check lists the nodes, pods, services, endpoint slices and ingresses: it keeps the
    # pauses that grow from the first one, not the rollout wait's fast first seconds.
    for pause in pauses(p["interval"], first=0.1, fast_seconds=0):
        res = check(kube, p)
        if not res["problems"] or time.monotonic() + pause > deadline:
            break
        time.sleep(pause)
    if p["list_releases"] and not res["problems"]:
        # Only for the summary: a cluster that lets this user list its namespace but not every
        # namespace's release records (a 403 from a namespaced role) still passes the check.
        try:
            res["releases"] = releases(kube, p)
        except KubeError as exc:
            res["releases"], res["releases_error"] = [], str(exc)
    res.update({"changed": False, "done": not res["problems"], "elapsed": round(time.monotonic() - t0, 1)})
    if res["problems"] and p["fail_on_timeout"]:
        raise ModuleError(
            f"namespace {p['namespace']} is not healthy after {p['timeout']} s:\n"
            + "\n".join(f"- {x}" for x in res["problems"]),
            **res,
        )
    return res
