# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning logic of the node_drain module (collection-private, pure, unit tested).

Everything here works on Kubernetes objects as plain JSON dictionaries (the API's camelCase form)
and never talks to the API server, so each rule can be tested with a small dictionary:

- which pods of a node are evicted, skipped or waited for, and why (``classify_pod``);
- which of them keep the cluster autoscaler from removing the node (``autoscaler_reasons``);
- node selection by name, label selector, age and count (``select_nodes``);
- the safety rules: never cordon the last schedulable node of a pool, never leave every pod of a
  critical workload (ingress controller, hub) on cordoned nodes (``last_node_problems``,
  ``critical_pod_problems``);
- the node patches that cordon and uncordon while recording who did it (``cordon_patch``,
  ``uncordon_patch``);
- durations, label selectors and PodDisruptionBudget selectors, which kubectl's Go libraries
  implement but the Python client does not (``parse_duration``, ``parse_label_selector``,
  ``pdb_selects``).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError

Obj = Mapping[str, Any]

DEFAULT_USER_POD_SELECTOR = "component in (singleuser-server,binderhub-build)"
DEFAULT_POOL_LABELS = ("mybinder.org/node-purpose", "hub.jupyter.org/node-purpose")
DEFAULT_CRITICAL_POD_SELECTORS = (
    "component=hub",
    "app.kubernetes.io/name=ingress-nginx,app.kubernetes.io/component=controller",
    "app=nginx-ingress,component=controller",
)
# What this module adds to a node it retires. The taint is what really keeps new pods away: BinderHub's
# image cleaner flips spec.unschedulable back to false, but it does not touch taints.
RETIRING_TAINT_KEY = "mybinder.org/retiring"
RETIRING_TAINT_VALUE = "true"
CORDON_ANNOTATION = "mybinder.org/cordoned-by"
TOOL_NAME = "mybinder.deploy.node_drain"
IMAGE_CLEANER_ANNOTATION = "hub.jupyter.org/image-cleaner-cordoned"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
SAFE_TO_EVICT_ANNOTATION = "cluster-autoscaler.kubernetes.io/safe-to-evict"
SCALE_DOWN_DISABLED_ANNOTATION = "cluster-autoscaler.kubernetes.io/scale-down-disabled"
BUILD_COMPONENT = "binderhub-build"


class DrainInputError(ModuleError, ValueError):
    """Bad input: the message names the option, the problem and the fix."""


# ------------------------------------------------------------------------------------------------
# time and durations

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])", re.IGNORECASE)
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: Any, option: str) -> int | None:
    """Seconds from an int, a digit string, or units like ``90s``, ``30m``, ``6h``, ``4d``, ``1d12h``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise DrainInputError(f"{option}: {value!r} is not a duration; use seconds or e.g. 30m, 6h, 4d, 1d12h")
    if isinstance(value, (int, float)):
        seconds = int(value)
    else:
        text = str(value).strip()
        if text.isdigit():
            seconds = int(text)
        else:
            compact = text.replace(" ", "")
            parts = _DURATION_RE.findall(compact)
            if not parts or "".join(n + u for n, u in parts).lower() != compact.lower():
                raise DrainInputError(
                    f"{option}: {value!r} is not a duration; use a number of seconds or a value like "
                    "90s, 30m, 6h, 4d or 1d12h"
                )
            seconds = int(sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in parts))
    if seconds < 0:
        raise DrainInputError(f"{option}: {value!r} is negative; give a duration of zero or more")
    return seconds


def parse_time(value: str | None) -> datetime.datetime | None:
    """An RFC 3339 timestamp from the API (``2024-01-02T03:04:05Z``) as an aware datetime."""
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso(moment: datetime.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def human_seconds(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


# ------------------------------------------------------------------------------------------------
# label selectors

_KEY_RE = re.compile(r"^([a-z0-9A-Z]([-a-z0-9A-Z.]*[a-z0-9A-Z])?/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$")
_VALUE_RE = re.compile(r"^([a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?)?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        raise ValueError(f"unknown operator {self.operator}")


def _split_requirements(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def parse_label_selector(text: str | None, option: str) -> list[Requirement]:
    """The string form kubectl takes: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``,
    ``a``, ``!a``, joined by commas (all must match). Empty means everything."""
    if text is None or not text.strip():
        return []
    requirements = []
    for part in _split_requirements(text):
        req = _parse_requirement(part)
        if req is None:
            raise DrainInputError(
                f"{option}: {part!r} in {text!r} is not a label selector requirement; use key=value, key!=value, "
                "'key in (a,b)', 'key notin (a,b)', key or !key, separated by commas"
            )
        if not _KEY_RE.match(req.key) or any(not _VALUE_RE.match(v) or len(v) > 63 for v in req.values):
            raise DrainInputError(f"{option}: {part!r} has an invalid label key or value")
        requirements.append(req)
    return requirements


def _parse_requirement(part: str) -> Requirement | None:
    if not part:
        return None
    set_match = re.match(r"^(\S+)\s+(in|notin)\s*\((.*)\)$", part)
    if set_match:
        values = tuple(v.strip() for v in set_match.group(3).split(",") if v.strip())
        if not values:
            return None
        return Requirement(set_match.group(1), "In" if set_match.group(2) == "in" else "NotIn", values)
    eq_match = re.match(r"^([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)$", part)
    if eq_match:
        op = "NotIn" if eq_match.group(2) == "!=" else "In"
        return Requirement(eq_match.group(1), op, (eq_match.group(3),))
    if part.startswith("!") and re.match(r"^!\s*\S+$", part):
        return Requirement(part[1:].strip(), "DoesNotExist")
    if re.match(r"^\S+$", part) and "=" not in part:
        return Requirement(part, "Exists")
    return None


def selector_matches(requirements: Sequence[Requirement], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in requirements)


def pdb_selects(pdb: Obj, pod: Obj) -> bool:
    """Whether a PodDisruptionBudget (policy/v1) covers a pod: same namespace and its selector
    matches. An empty selector matches every pod of the namespace; a missing one matches none."""
    if pdb.get("metadata", {}).get("namespace") != pod.get("metadata", {}).get("namespace"):
        return False
    selector = pdb.get("spec", {}).get("selector")
    if selector is None:
        return False
    labels = pod.get("metadata", {}).get("labels") or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        req = Requirement(expr["key"], expr["operator"], tuple(expr.get("values") or ()))
        if not req.matches(labels):
            return False
    return True


def matching_pdbs(pod: Obj, pdbs: Iterable[Obj]) -> list[Obj]:
    return [p for p in pdbs if pdb_selects(p, pod)]


# ------------------------------------------------------------------------------------------------
# pods


def pod_ref(pod: Obj) -> str:
    meta = pod.get("metadata", {})
    return f"{meta.get('namespace')}/{meta.get('name')}"


def controller_of(pod: Obj) -> Mapping[str, Any] | None:
    for ref in pod.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def is_mirror(pod: Obj) -> bool:
    return MIRROR_ANNOTATION in (pod.get("metadata", {}).get("annotations") or {})


def is_terminating(pod: Obj) -> bool:
    return bool(pod.get("metadata", {}).get("deletionTimestamp"))


def is_finished(pod: Obj) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def daemonset_ref(pod: Obj) -> Mapping[str, Any] | None:
    ref = controller_of(pod)
    if ref and ref.get("kind") == "DaemonSet":
        return ref
    return None


def local_storage(pod: Obj) -> list[str]:
    """Volumes that keep data on the node: hostPath, and emptyDir unless it lives in memory."""
    found = []
    for vol in pod.get("spec", {}).get("volumes") or []:
        if "hostPath" in vol:
            found.append(f"hostPath volume {vol.get('name')} ({vol['hostPath'].get('path')})")
        elif "emptyDir" in vol and (vol.get("emptyDir") or {}).get("medium") != "Memory":
            found.append(f"emptyDir volume {vol.get('name')}")
    return found


@dataclass
class PodPlan:
    """What the drain does with one pod, and why."""

    namespace: str
    name: str
    uid: str
    category: str  # mirror, daemonset, orphaned-daemonset, terminating, finished, user, build, workload, bare
    action: str  # evict, skip
    reason: str
    autoscaler: list[str] = field(default_factory=list)  # why the autoscaler would keep the node for it
    pdbs: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def stays_on_empty_node(self) -> bool:
        """DaemonSet and mirror pods stay on a node that counts as empty."""
        return self.category in ("mirror", "daemonset")

    def brief(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "reason": self.reason}


def classify_pod(
    pod: Obj,
    *,
    evict: str,
    user_selector: Sequence[Requirement],
    daemonsets: Mapping[tuple[str, str], str] | None,
    pdbs: Sequence[Obj] = (),
) -> PodPlan:
    """Decide one pod's fate.

    ``evict`` is ``blockers`` (leave user sessions and builds alone) or ``all``. ``daemonsets`` maps
    (namespace, name) of every existing DaemonSet to its UID; None means unknown (then no DaemonSet
    pod is taken for orphaned). The rules, in order:

    1. mirror pods (static pods of the kubelet) cannot be evicted through the API: skip;
    2. pods of an existing DaemonSet: skip (the autoscaler ignores them; they would come back);
    3. pods already terminating: no new eviction, they are only waited for;
    4. finished pods (Succeeded/Failed): evict, they hold nothing;
    5. pods of a DaemonSet that no longer exists (orphaned): evict, nothing recreates them;
    6. user servers and builds (``user_selector``): skip with ``blockers``, evict with ``all``;
    7. everything else (controller-managed or bare): evict; it is what blocks the autoscaler.
    """
    meta = pod.get("metadata", {})
    labels = meta.get("labels") or {}
    ns, name, uid = meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", "")
    covering = matching_pdbs(pod, pdbs)
    plan = PodPlan(ns, name, uid, "", "", "", pdbs=[p["metadata"]["name"] for p in covering])
    reasons = autoscaler_reasons(pod, covering)

    ds = daemonset_ref(pod)
    orphaned = False
    if ds is not None and daemonsets is not None:
        current = daemonsets.get((ns, ds.get("name", "")))
        orphaned = current is None or (bool(ds.get("uid")) and current != ds.get("uid"))

    if is_mirror(pod):
        plan.category, plan.action, plan.reason = "mirror", "skip", "mirror pod: cannot be evicted through the API"
    elif ds is not None and not orphaned:
        plan.category, plan.action = "daemonset", "skip"
        plan.reason = f"DaemonSet pod ({ds.get('name')}): the autoscaler ignores it"
    elif is_terminating(pod):
        plan.category, plan.action = "terminating", "skip"
        plan.reason = f"already terminating (deletion requested {meta.get('deletionTimestamp')})"
        plan.autoscaler = reasons
    elif is_finished(pod):
        plan.category, plan.action = "finished", "evict"
        plan.reason = f"finished ({pod.get('status', {}).get('phase')})"
    elif ds is not None:
        plan.category, plan.action = "orphaned-daemonset", "evict"
        plan.reason = f"orphaned DaemonSet pod: DaemonSet {ns}/{ds.get('name')} no longer exists"
        plan.autoscaler = reasons
    elif user_selector and selector_matches(user_selector, labels):
        plan.category = "build" if labels.get("component") == BUILD_COMPONENT else "user"
        what = "image build" if plan.category == "build" else "user session"
        plan.autoscaler = reasons
        if evict == "all":
            plan.action, plan.reason = "evict", f"{what} (evict: all)"
        else:
            plan.action, plan.reason = "skip", f"{what}: left to end on its own (evict: blockers)"
    else:
        plan.category = "workload" if controller_of(pod) else "bare"
        plan.action = "evict"
        plan.autoscaler = reasons
        plan.reason = "blocks the autoscaler: " + "; ".join(reasons) if reasons else "not a user pod"
    return plan


def autoscaler_reasons(pod: Obj, covering_pdbs: Sequence[Obj]) -> list[str]:
    """Why the cluster autoscaler would not remove a node because of this pod (its drain rules).
    Empty for pods it moves by itself."""
    if is_mirror(pod) or daemonset_ref(pod) is not None or is_finished(pod):
        return []
    meta = pod.get("metadata", {})
    annotations = meta.get("annotations") or {}
    safe = annotations.get(SAFE_TO_EVICT_ANNOTATION)
    if safe == "false":
        return [f"annotated {SAFE_TO_EVICT_ANNOTATION}=false"]
    reasons = []
    for pdb in covering_pdbs:
        if int(pdb.get("status", {}).get("disruptionsAllowed", 0) or 0) <= 0:
            reasons.append(f"PodDisruptionBudget {pdb['metadata']['name']} allows no disruption now")
    if safe == "true":
        return reasons
    if controller_of(pod) is None:
        reasons.append("no controller (bare pod)")
    if meta.get("namespace") == "kube-system" and not covering_pdbs:
        reasons.append("kube-system pod without a PodDisruptionBudget")
    reasons.extend(f"local storage: {v}" for v in local_storage(pod))
    return reasons


def pod_started(pod: Obj) -> datetime.datetime | None:
    return parse_time(pod.get("status", {}).get("startTime")) or parse_time(
        pod.get("metadata", {}).get("creationTimestamp")
    )


def user_pod_info(pod: Obj, plan: PodPlan, max_age: int, now: datetime.datetime) -> dict[str, Any]:
    """A user server or build left on the node: how old it is and when its max age ends it."""
    started = pod_started(pod) or now
    end = started + datetime.timedelta(seconds=max_age)
    return {
        "namespace": plan.namespace,
        "name": plan.name,
        "kind": plan.category,
        "started": iso(started),
        "age": human_seconds((now - started).total_seconds()),
        "age_seconds": int((now - started).total_seconds()),
        "expected_end": iso(end),
        "overdue": end < now,
        "terminating": is_terminating(pod),
    }


# ------------------------------------------------------------------------------------------------
# nodes


def node_name(node: Obj) -> str:
    return str(node.get("metadata", {}).get("name", ""))


def node_ready(node: Obj) -> bool:
    for cond in node.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def node_pool(node: Obj, pool_labels: Sequence[str]) -> str:
    """``key=value`` of the first pool label the node carries, or ``(no pool label)``."""
    labels = node.get("metadata", {}).get("labels") or {}
    for key in pool_labels:
        if key in labels:
            return f"{key}={labels[key]}"
    return "(no pool label)"


def has_retiring_taint(node: Obj) -> bool:
    return any(t.get("key") == RETIRING_TAINT_KEY for t in node.get("spec", {}).get("taints") or [])


def cordon_record(node: Obj) -> dict[str, Any] | None:
    """This module's annotation on a node (who cordoned it, when, what it found), or None."""
    raw = (node.get("metadata", {}).get("annotations") or {}).get(CORDON_ANNOTATION)
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    return record if isinstance(record, dict) else {"by": str(raw)}


def marked_by_us(node: Obj) -> bool:
    return cordon_record(node) is not None or has_retiring_taint(node)


def schedulable(node: Obj) -> bool:
    """A node new pods can land on: Ready, not cordoned, not retiring."""
    return node_ready(node) and not node.get("spec", {}).get("unschedulable") and not has_retiring_taint(node)


def select_nodes(
    nodes: Sequence[Obj],
    *,
    names: Sequence[str] | None,
    selector: Sequence[Requirement] | None,
    older_than: int | None,
    max_nodes: int | None,
    now: datetime.datetime,
) -> list[Obj]:
    """The nodes a run acts on. Names must all exist (DrainInputError otherwise). With
    ``max_nodes``, nodes this module already retires come first (so a re-run picks the same ones),
    then the oldest."""
    by_name = {node_name(n): n for n in nodes}
    if names:
        missing = [n for n in names if n not in by_name]
        if missing:
            known = ", ".join(sorted(by_name)) or "none"
            raise DrainInputError(f"name: node(s) {', '.join(missing)} not found (nodes in the cluster: {known})")
        chosen = [by_name[n] for n in dict.fromkeys(names)]
    else:
        chosen = [n for n in nodes if selector_matches(selector or [], n.get("metadata", {}).get("labels"))]
    if older_than is not None:
        limit = now - datetime.timedelta(seconds=older_than)
        chosen = [n for n in chosen if (parse_time(n["metadata"].get("creationTimestamp")) or now) <= limit]
    if max_nodes is not None:

        def order(n: Obj) -> tuple[bool, str, str]:
            return (not marked_by_us(n), n["metadata"].get("creationTimestamp") or "", node_name(n))

        chosen = sorted(chosen, key=order)[:max_nodes]
    return sorted(chosen, key=node_name)


def last_node_problems(all_nodes: Sequence[Obj], to_cordon: Iterable[str], pool_labels: Sequence[str]) -> list[str]:
    """Pools that would be left without any schedulable node if ``to_cordon`` were cordoned."""
    cordon = set(to_cordon)
    pools: dict[str, list[Obj]] = {}
    for node in all_nodes:
        pools.setdefault(node_pool(node, pool_labels), []).append(node)
    problems = []
    for pool, members in sorted(pools.items()):
        hit = sorted(node_name(n) for n in members if node_name(n) in cordon)
        if not hit:
            continue
        left = [node_name(n) for n in members if node_name(n) not in cordon and schedulable(n)]
        if not left:
            others = sorted(node_name(n) for n in members if node_name(n) not in cordon)
            detail = f" (its other nodes {', '.join(others)} are not schedulable)" if others else ""
            problems.append(
                f"cordoning {', '.join(hit)} would leave pool {pool} without a schedulable node{detail}; "
                "add a node to the pool first"
            )
    return problems


def critical_pod_problems(
    selector_pods: Mapping[str, Sequence[Obj]],
    unschedulable_after: Iterable[str],
    newly_cordoned: Iterable[str],
) -> list[str]:
    """Critical workloads (by selector and namespace) whose running pods would all sit on cordoned
    nodes, where this run cordons at least one of those nodes. Cloud load balancers drop cordoned
    nodes: an ingress controller only on cordoned nodes is an outage."""
    after, new = set(unschedulable_after), set(newly_cordoned)
    problems = []
    for selector, pods in selector_pods.items():
        groups: dict[str, list[Obj]] = {}
        for pod in pods:
            if is_terminating(pod) or is_finished(pod) or not pod.get("spec", {}).get("nodeName"):
                continue
            groups.setdefault(pod["metadata"]["namespace"], []).append(pod)
        for ns, members in sorted(groups.items()):
            nodes = {p["spec"]["nodeName"] for p in members}
            if nodes <= after and nodes & new:
                where = ", ".join(sorted(f"{p['metadata']['name']} on {p['spec']['nodeName']}" for p in members))
                problems.append(
                    f"every pod of {selector!r} in namespace {ns} ({where}) would be on a cordoned node; "
                    "cloud load balancers stop sending traffic to cordoned nodes; "
                    "move a pod to a schedulable node first"
                )
    return problems


def cordon_patch(
    node: Obj, *, by: str, reason: str | None, now: datetime.datetime
) -> tuple[dict[str, Any] | None, str]:
    """The merge patch that marks a node as retiring, and what it does.

    Status ``already`` (nothing to do), ``cordoned`` (newly marked) or ``reasserted`` (our mark is
    there but something - BinderHub's image cleaner - made the node schedulable again or removed
    the taint). The patch carries the resourceVersion it was computed from, so a concurrent change
    makes it fail with a conflict instead of silently losing the other writer's change."""
    meta = node.get("metadata", {})
    spec = node.get("spec", {})
    record = cordon_record(node)
    taints = list(spec.get("taints") or [])
    has_taint = has_retiring_taint(node)
    unschedulable = bool(spec.get("unschedulable"))
    if record is not None and has_taint and unschedulable:
        return None, "already"
    patch: dict[str, Any] = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "spec": {}}
    if not unschedulable:
        patch["spec"]["unschedulable"] = True
    if not has_taint:
        patch["spec"]["taints"] = [
            *taints,
            {"key": RETIRING_TAINT_KEY, "value": RETIRING_TAINT_VALUE, "effect": "NoSchedule"},
        ]
    if record is None:
        annotations = meta.get("annotations") or {}
        # A node the image cleaner has cordoned for a moment counts as schedulable: the cleaner
        # uncordons it whatever happens, so it is not somebody else's retirement to respect.
        before = unschedulable and IMAGE_CLEANER_ANNOTATION not in annotations
        new_record = {"by": by, "at": iso(now), "tool": TOOL_NAME, "unschedulable_before": before}
        if reason:
            new_record["reason"] = reason
        patch["metadata"]["annotations"] = {CORDON_ANNOTATION: json.dumps(new_record, sort_keys=True)}
        return patch, "cordoned"
    return patch, "reasserted"


def uncordon_patch(node: Obj, *, force: bool) -> tuple[dict[str, Any] | None, str, str | None]:
    """The merge patch that removes what ``cordon_patch`` added: (patch, status, warning).

    Status ``schedulable`` (nothing to do), ``uncordoned``, or ``kept-cordoned`` (our mark removed,
    but the node was already cordoned by someone else before we marked it, so it stays cordoned
    unless ``force``). A node cordoned by something else raises DrainInputError unless ``force``."""
    meta = node.get("metadata", {})
    spec = node.get("spec", {})
    unschedulable = bool(spec.get("unschedulable"))
    name = node_name(node)
    if not marked_by_us(node):
        if not unschedulable:
            return None, "schedulable", None
        annotations = meta.get("annotations") or {}
        who = "BinderHub's image cleaner" if IMAGE_CLEANER_ANNOTATION in annotations else "someone else"
        if not force:
            raise DrainInputError(
                f"node {name} was cordoned by {who}, not by {TOOL_NAME} (no {CORDON_ANNOTATION} annotation); "
                "leaving it alone. Set force: true to uncordon it anyway"
            )
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "spec": {"unschedulable": False}}
        return patch, "uncordoned", f"node {name} was cordoned by {who}; uncordoned because force: true"
    record = cordon_record(node) or {}
    patch: dict[str, Any] = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "spec": {}}
    if CORDON_ANNOTATION in (meta.get("annotations") or {}):
        patch["metadata"]["annotations"] = {CORDON_ANNOTATION: None}
    if has_retiring_taint(node):
        patch["spec"]["taints"] = [t for t in spec.get("taints") or [] if t.get("key") != RETIRING_TAINT_KEY]
    warning = None
    status = "uncordoned"
    if unschedulable:
        if record.get("unschedulable_before") and not force:
            status = "kept-cordoned"
            warning = (
                f"node {name} was already cordoned by someone else before {TOOL_NAME} marked it "
                f"({record.get('at', 'unknown time')}): removed only the retiring mark, the node stays cordoned. "
                "Set force: true to uncordon it too"
            )
        else:
            patch["spec"]["unschedulable"] = False
    return patch, status, warning


# ------------------------------------------------------------------------------------------------
# PDB messages and results

_PDB_NAME_RE = re.compile(r"disruption budget (\S+?) needs")


def pdb_from_429(status: Obj | None) -> str | None:
    """The PDB named in an eviction's 429 answer (details.causes[].message), if any."""
    if not status:
        return None
    for cause in (status.get("details") or {}).get("causes") or []:
        match = _PDB_NAME_RE.search(cause.get("message") or "")
        if match:
            return match.group(1)
    match = _PDB_NAME_RE.search(status.get("message") or "")
    return match.group(1) if match else None


def multiple_pdb_message(plan: PodPlan) -> str:
    names = ", ".join(plan.pdbs) if len(plan.pdbs) > 1 else "more than one"
    return (
        f"several PodDisruptionBudgets select {plan.ref} ({names}): the Eviction API refuses such pods "
        "(HTTP 500) until only one PDB selects them. Fix the PDB selectors, or use on_timeout: force to delete it"
    )


def estimate_empty_at(
    remaining: Sequence[PodPlan], user_pods: Sequence[Mapping[str, Any]], now: datetime.datetime
) -> str | None:
    """When the node is expected to hold only DaemonSet and mirror pods: now if it already does,
    the last user pod's expected end if only user pods are left, unknown (None) if anything else
    is still there."""
    left = [p for p in remaining if not p.stays_on_empty_node]
    if not left:
        return iso(now)
    user_names = {(u["namespace"], u["name"]) for u in user_pods}
    if any((p.namespace, p.name) not in user_names for p in left):
        return None
    ends = [parse_time(u["expected_end"]) for u in user_pods]
    latest = max(e for e in ends if e is not None)
    return iso(max(latest, now))


def summary_table(nodes: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A fixed-width table, one line per node, for the playbooks to print."""
    header = ["NODE", "CORDON", "EVICTED", "BLOCKED", "SKIPPED", "USER PODS", "BLOCKERS LEFT", "EMPTY BY", "ELAPSED"]
    rows = [header]
    for name in sorted(nodes):
        r = nodes[name]
        if r.get("deleted"):
            cordon = "deleted"
        elif r.get("reasserted"):
            cordon = "re-asserted"
        elif r.get("cordoned"):
            cordon = "ours" if r.get("cordoned_by_us") else "yes"
        else:
            cordon = "no"
        rows.append(
            [
                name,
                cordon,
                str(len(r.get("evicted", []))),
                str(len(r.get("blocked", []))),
                str(len(r.get("skipped", []))),
                str(len(r.get("user_pods", []))),
                str(len(r.get("autoscaler_blockers", []))),
                r.get("estimated_empty_at") or "unknown",
                f"{r.get('elapsed', 0):.1f}s",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
