# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rollout status of Deployments, StatefulSets and DaemonSets, judged the way
`kubectl rollout status` judges them (k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go), plus
the pods and events that explain a rollout that does not finish.

Why our own instead of kubernetes.core.k8s_info with wait: it waits for one kind at a time, one
object or selector per task, with no progress while it waits and no explanation on timeout; a
deploy waits for every workload of a release together, shows what is left while it waits, and on
failure names the failing objects with their pods' state and their recent events."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KubeClient, connect, short, transient
from ansible_collections.mybinder.deploy.plugins.module_utils._lease import Renewing, lock_option

KINDS = ("Deployment", "StatefulSet", "DaemonSet")

# How long rollout_status waits in all by default (its timeout option, and its action plugin's).
ROLLOUT_TIMEOUT = 300

# The options of a module that its action plugin runs in rounds (plugin_utils/_rounds.py),
# documented in the mybinder.deploy.attributes.rounds doc fragment.
ROUNDS_ARG_SPEC: dict[str, dict[str, Any]] = {
    "progress_interval": {"type": "int", "default": 10},
    "wait_seconds": {"type": "float"},
    "fail_on_timeout": {"type": "bool", "default": True},
}


@dataclass
class State:
    done: bool
    message: str
    failed: bool = False


def deployment_state(obj: dict[str, Any]) -> State:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {}) or {}
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return State(False, "spec update not observed yet")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return State(False, f"exceeded its progress deadline: {cond.get('message', '')}", failed=True)
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    if updated < want:
        return State(False, f"{updated} of {want} new replicas updated")
    if status.get("replicas", 0) > updated:
        old = status.get("replicas", 0) - updated
        return State(
            False,
            f"{old} old replica{'s' if old > 1 else ''} still to be replaced "
            f"({status.get('availableReplicas', 0)} of {want} available)",
        )
    return availability(status.get("availableReplicas", 0), updated, want, "replicas")


def daemonset_state(obj: dict[str, Any]) -> State:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {}) or {}
    if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
        return State(True, "OnDelete update strategy: pods change only when deleted, nothing to wait for")
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return State(False, "spec update not observed yet")
    desired = status.get("desiredNumberScheduled", 0)
    updated = status.get("updatedNumberScheduled", 0)
    if updated < desired:
        return State(False, f"{updated} of {desired} pods updated")
    return availability(status.get("numberAvailable", 0), desired, desired, "pods")


def availability(available: int, updated: int, want: int, what: str) -> State:
    """The last step of a rollout: every updated replica (or pod) available."""
    if available < updated:
        return State(False, f"{available} of {updated} updated {what} available")
    return State(True, f"{available} of {want} {what} available")


def statefulset_state(obj: dict[str, Any]) -> State:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {}) or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return State(True, "OnDelete update strategy: pods change only when deleted, nothing to wait for")
    if not status.get("observedGeneration") or meta.get("generation", 0) > status.get("observedGeneration", 0):
        return State(False, "spec update not observed yet")
    want = spec.get("replicas", 1)
    ready = status.get("readyReplicas", 0)
    if ready < want:
        return State(False, f"{ready} of {want} pods ready")
    partition = (strategy.get("rollingUpdate") or {}).get("partition")
    if partition:
        updated = status.get("updatedReplicas", 0)
        if updated < want - partition:
            return State(False, f"partitioned rollout: {updated} of {want - partition} new pods updated")
        return State(True, f"partitioned rollout complete: {updated} new pods")
    if status.get("updateRevision") != status.get("currentRevision"):
        return State(False, f"{status.get('updatedReplicas', 0)} of {want} pods at the new revision")
    return State(True, f"{ready} of {want} pods ready")


PLURAL = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}

JUDGES: dict[str, Callable[[dict[str, Any]], State]] = {
    "Deployment": deployment_state,
    "StatefulSet": statefulset_state,
    "DaemonSet": daemonset_state,
}


def key(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}"


def selector_string(selector: dict[str, Any] | None) -> str:
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, k, vals = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op == "In":
            parts.append(f"{k} in ({','.join(vals)})")
        elif op == "NotIn":
            parts.append(f"{k} notin ({','.join(vals)})")
        elif op == "Exists":
            parts.append(k)
        elif op == "DoesNotExist":
            parts.append(f"!{k}")
    return ",".join(parts)


def pod_problem(pod: dict[str, Any]) -> str:
    """Why a pod is not ready, in a few words (scheduling, container waiting reasons, phase)."""
    status = pod.get("status") or {}
    name = pod.get("metadata", {}).get("name", "?")
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return f"pod {name}: terminating"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"pod {name}: not scheduled: {cond.get('message') or cond.get('reason', '')}"
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting:
            why = f"{waiting.get('reason', '')} {waiting.get('message', '')}".rstrip()
            return f"pod {name}: container {cs.get('name')} waiting: {why}"
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode"):
            code, reason = terminated.get("exitCode"), terminated.get("reason", "")
            return f"pod {name}: container {cs.get('name')} exited {code} ({reason})"
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return f"pod {name}: {status.get('phase', 'Unknown')}{'' if ready else ', not ready'}"


def event_time(ev: dict[str, Any]) -> str:
    return ev.get("lastTimestamp") or ev.get("eventTime") or (ev.get("metadata") or {}).get("creationTimestamp") or ""


def describe_event(ev: dict[str, Any]) -> str:
    inv = ev.get("involvedObject") or {}
    count = ev.get("count") or 1
    what = f"{inv.get('kind', '')}/{inv.get('name', '')}"
    text = f"{event_time(ev)} {ev.get('type', '')} {ev.get('reason', '')} {what}: {ev.get('message', '').strip()}"
    return text + (f" (x{count})" if count > 1 else "")


@dataclass
class Watcher:
    """Reads the workloads of a rollout and judges them."""

    kube: KubeClient
    objects: list[dict[str, str]]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def list_kind(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        return self.kube.items(f"/apis/apps/v1/namespaces/{namespace}/{PLURAL[kind]}")

    def poll(self) -> dict[str, dict[str, Any]]:
        """Judge every object once. Objects are listed per (kind, namespace) in one call each."""
        wanted: dict[tuple[str, str], set[str]] = {}
        for obj in self.objects:
            wanted.setdefault((obj["kind"], obj["namespace"]), set()).add(obj["name"])
        out: dict[str, dict[str, Any]] = {}
        for (kind, ns), names in sorted(wanted.items()):
            found = {o["metadata"]["name"]: o for o in self.list_kind(kind, ns) if o["metadata"]["name"] in names}
            for name in sorted(names):
                k = key(kind, ns, name)
                o = found.get(name)
                if o is None:
                    out[k] = {
                        "kind": kind,
                        "namespace": ns,
                        "name": name,
                        "done": False,
                        "failed": False,
                        "message": "does not exist",
                        "object": None,
                    }
                    continue
                st = JUDGES[kind](o)
                out[k] = {
                    "kind": kind,
                    "namespace": ns,
                    "name": name,
                    "done": st.done,
                    "failed": st.failed,
                    "message": st.message,
                    "object": o,
                }
        self.results = out
        return out

    def explain(self, k: str, events_per_object: int) -> dict[str, Any]:
        """Pods and recent events of a workload that did not finish its rollout."""
        res = self.results[k]
        obj = res.get("object")
        info: dict[str, Any] = {
            "kind": res["kind"],
            "namespace": res["namespace"],
            "name": res["name"],
            "message": res["message"],
            "pods": [],
            "events": [],
        }
        if obj is None:
            return info
        ns = res["namespace"]
        selector = selector_string((obj.get("spec") or {}).get("selector"))
        pods = self.kube.items(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector) if selector else []
        problems = []
        for pod in pods:
            conds = (pod.get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                problems.append(pod_problem(pod))
        info["pods"] = problems
        names = {res["name"]} | {p["metadata"]["name"] for p in pods}
        prefix = res["name"] + "-"
        events = [
            ev
            for ev in self.kube.items(f"/api/v1/namespaces/{ns}/events")
            if (ev.get("involvedObject") or {}).get("name") in names
            # ReplicaSets of a Deployment (name-<hash>) carry FailedCreate events (quota, admission).
            or (
                (ev.get("involvedObject") or {}).get("kind") == "ReplicaSet"
                and (ev.get("involvedObject") or {}).get("name", "").startswith(prefix)
            )
        ]
        events.sort(key=event_time)
        info["events"] = [describe_event(ev) for ev in events[-events_per_object:]] if events_per_object else []
        return info


# The pause between two polls at first, and for how long. A rollout that needs nothing from the
# nodes (an unchanged pod template, or pods that start at once) finishes within a second or two;
# polling every 0.05 s until then returns within a twentieth of a second of it, about as soon as a
# watch would, and a list of a few workloads costs the API server next to nothing. After that the
# pauses grow by half each round up to the interval: a longer rollout waits for images and nodes,
# and a second more or less does not matter there.
FIRST_PAUSE = 0.05
FAST_SECONDS = 2.0


def pauses(interval: float, first: float = FIRST_PAUSE, fast_seconds: float = FAST_SECONDS) -> Iterator[float]:
    """Pauses between polls: ``first`` until ``fast_seconds`` have passed in pauses, then half as long
    again each time, never above ``interval``."""
    pause = min(first, interval)
    slept = 0.0
    while True:
        yield pause
        slept += pause
        if slept >= fast_seconds:
            pause = min(interval, pause * 1.5)


def wait(watcher: Watcher, seconds: float, interval: float = 1.0) -> dict[str, dict[str, Any]]:
    """Poll until every object is done, one failed for good, or `seconds` passed (pauses()).

    The API server may restart meanwhile (an upgrade of the control plane, a moment of overload):
    a poll that fails for such a reason is retried until the deadline (the caller sets the
    client's retry_until), and if the server has not answered by then, every workload is "not
    done yet" with that reason, so that the next round (or the caller's deadline) decides, not one
    refused request."""
    deadline = time.monotonic() + max(0.0, seconds)
    delays = pauses(interval)
    while True:
        try:
            res = watcher.poll()
        except Exception as exc:
            if not transient(exc, "GET"):
                raise
            return unanswered(watcher, exc)
        if all(r["done"] for r in res.values()) or any(r["failed"] for r in res.values()):
            return res
        pause = next(delays)
        if time.monotonic() + pause > deadline:
            return res
        time.sleep(pause)


def unanswered(watcher: Watcher, exc: BaseException) -> dict[str, dict[str, Any]]:
    """Every workload not done yet, because the API server did not answer."""
    message = f"the API server did not answer ({short(exc)}), still waiting"
    return {
        key(o["kind"], o["namespace"], o["name"]): {**o, "done": False, "failed": False, "message": message}
        for o in watcher.objects
    }


# ---- the rollout_status runner


def rollout_status(p: dict[str, Any]) -> dict[str, Any]:
    """One run of rollout_status with its module parameters: the result once every workload is
    ready or the round is over, or a ModuleError naming what failed or did not finish in time."""
    t0 = time.monotonic()
    if p["timeout"] < 1:
        raise ModuleError(f"timeout={p['timeout']} must be a whole number of seconds above 0 (how long to wait)")
    watcher = Watcher(kube=connect(p["kubeconfig"], p["context"]), objects=[])
    if p["objects"] is not None:
        objs = []
        for o in p["objects"]:
            if o.get("kind") in KINDS:
                if not o.get("name") or not o.get("namespace"):
                    raise ModuleError(f"each entry of objects needs kind, namespace and name; got {o!r}")
                objs.append({"kind": o["kind"], "namespace": o["namespace"], "name": o["name"]})
        watcher.objects = objs
    else:
        watcher.objects = [
            {"kind": kind, "namespace": p["namespace"], "name": item["metadata"]["name"]}
            for kind in KINDS
            for item in watcher.list_kind(kind, p["namespace"])
        ]
    seconds = p["wait_seconds"] if p["wait_seconds"] is not None else float(p["timeout"])
    # The deploy lock this run holds (release_lock) is renewed while it waits; the API server not
    # answering for a moment is ridden out until the round's end (see wait()).
    watcher.kube.retry_until(time.monotonic() + seconds)
    with Renewing(watcher.kube, lock_option(p.get("lock"))):
        res = wait(watcher, seconds, p["interval"]) if watcher.objects else {}
    ready = sorted(k for k, r in res.items() if r["done"])
    pending = [
        {"kind": r["kind"], "namespace": r["namespace"], "name": r["name"], "message": r["message"]}
        for k, r in sorted(res.items())
        if not r["done"]
    ]
    result = {
        "changed": False,
        "done": not pending,
        "ready": ready,
        "pending": pending,
        "elapsed": round(time.monotonic() - t0, 1),
    }
    broken = [k for k, r in res.items() if r["failed"]]
    if pending and (broken or p["fail_on_timeout"]):
        failed = [explain_or_brief(watcher, x, p["events"]) for x in pending]
        result["failed"] = failed
        why = "failed" if broken else f"did not finish within {p['timeout']} s"
        raise ModuleError(
            f"rollout of {len(pending)} of {len(res)} workloads {why}:\n" + format_failures(failed), **result
        )
    return result


def explain_or_brief(watcher: Watcher, pending: dict[str, Any], events: int) -> dict[str, Any]:
    """What is wrong with a workload (its pods and events), or only its last state when the API
    server does not answer."""
    try:
        return watcher.explain(key(pending["kind"], pending["namespace"], pending["name"]), events)
    except Exception as exc:
        if not transient(exc, "GET"):
            raise
        return {**pending, "pods": [], "events": []}


def format_failures(failed: list[dict]) -> str:
    lines = []
    for f in failed:
        lines.append(f"- {f['kind']} {f['namespace']}/{f['name']}: {f['message']}")
        lines.extend(f"    {p}" for p in f["pods"][:5])
        if len(f["pods"]) > 5:
            lines.append(f"    ... and {len(f['pods']) - 5} more pods not ready")
        if f["events"]:
            lines.append("    recent events:")
            lines.extend(f"      {e}" for e in f["events"])
    return "\n".join(lines)
