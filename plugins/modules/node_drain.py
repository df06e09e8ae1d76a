#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_drain
short_description: Cordon, drain and uncordon BinderHub nodes the way the cluster autoscaler needs
version_added: 0.1.0
description:
  - Retires Kubernetes nodes of a BinderHub cluster without killing users' sessions. The selected nodes are
    cordoned (C(spec.unschedulable), a C(mybinder.org/retiring=true:NoSchedule) taint and a
    C(mybinder.org/cordoned-by) annotation saying who cordoned them, when, and whether they were cordoned
    before), then the pods that keep the cluster autoscaler from removing them are evicted through the
    Eviction API, respecting PodDisruptionBudgets.
  - With O(evict=blockers) (the default) user servers and image builds (O(user_pod_selector)) are left alone
    to end at their maximum age; the result says when each is expected to be gone (O(max_pod_age)) and
    so when the node should be empty. DaemonSet and mirror pods are never evicted.
  - Evictions run concurrently (O(parallelism)). An eviction refused because of a PodDisruptionBudget (HTTP
    429) is retried with backoff until O(timeout); a pod selected by several PDBs (HTTP 500, which never
    resolves by itself) is reported with the PDBs' names. Pods already terminating are not evicted again but
    waited for. Waiting compares UIDs, so a replacement pod with the same name does not count as the old one.
  - BinderHub's image cleaner uncordons nodes; the taint keeps new pods away meanwhile, and the next run
    re-asserts the cordon and says so (C(reasserted) of RV(nodes)). O(state=uncordoned) removes only what
    this module added and refuses nodes it did not cordon unless O(force=true).
  - "Safety: refuses to cordon the last schedulable node of a pool (pools by O(pool_labels)), and refuses
    when every running pod of a critical workload (O(critical_pod_selectors): hub, ingress controller)
    would be left on cordoned nodes; O(force=true) turns both refusals into warnings."
  - Progress is shown while the module runs. It writes progress lines (what was cordoned and evicted, what
    is left, when the user pods are expected to end) as they happen; when the task runs on the controller
    (C(ansible_connection=local), as this collection's cluster hosts do) the module's action plugin prints
    them in the play output. Elsewhere, or with C(async), set O(progress_file) and C(tail -f) it.
  - C(changed) is true whenever anything was changed, also when the task fails half way; the failure
    message then says what was done and what is left.
author:
  - mybinder.deploy developers (!UNKNOWN)
requirements:
  - kubernetes (the Python client), except for kubeconfig contexts with a client certificate or a static token
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - mybinder.deploy.kube_connection
attributes:
  check_mode:
    support: full
    details:
      - Asks the API server instead of guessing. Node patches and evictions are sent as server-side dry
        runs, so a PodDisruptionBudget that forbids an eviction now is reported in C(blocked) of RV(nodes),
        and an eviction that would have to wait until a PDB's budget recovers is marked with C(pdb_wait).
      - Nothing is waited for in check mode.
  diff_mode:
    support: full
    details: Shows, per node, the cordon state and the pods that are not DaemonSet or mirror pods, before and after.
  platform:
    platforms: posix
  idempotent:
    description: Running the module again with the same options changes nothing more.
    support: full
    details:
      - A second run changes nothing when the first one finished. It evicts pods that arrived since, and
        re-asserts a cordon that something else removed.
options:
  name:
    description:
      - The node or nodes to act on. Every name must exist.
      - Mutually exclusive with O(selector); one of the two is required.
    type: list
    elements: str
  selector:
    description:
      - Label selector of the nodes to act on, e.g. V(mybinder.org/node-purpose=user), in kubectl's syntax
        (V(key=value), V(key!=value), V(key in (a,b\)), V(key notin (a\)), V(key), V(!key)).
    type: str
  older_than:
    description:
      - Only nodes created longer ago than this, e.g. V(4d), V(12h), V(1d12h) or a number of seconds.
    type: raw
  max_nodes:
    description:
      - Act on at most this many of the selected nodes. Nodes this module already retires come first (so a
        second run picks the same ones), then the oldest.
    type: int
  state:
    description:
      - V(cordoned) only marks the nodes as retiring. V(drained) also evicts pods (O(evict)) and waits
        (O(wait)). V(uncordoned) removes this module's cordon, taint and annotation.
    type: str
    choices: [cordoned, drained, uncordoned]
    default: drained
  evict:
    description:
      - V(blockers) evicts every pod that is not a user server or build (O(user_pod_selector)), not a
        DaemonSet pod and not a mirror pod, which are exactly the pods that keep the autoscaler from
        removing the node. Finished pods and pods of a DaemonSet that no longer exists are evicted too.
      - V(all) also evicts user servers and builds, ending those sessions.
    type: str
    choices: [blockers, all]
    default: blockers
  user_pod_selector:
    description:
      - Label selector of the pods that are users' sessions and image builds.
    type: str
    default: component in (singleuser-server,binderhub-build)
  wait:
    description:
      - V(none) returns once the evictions are accepted.
      - V(blockers) waits until every evicted pod (and every non-user pod that was already terminating) is
        gone.
      - V(empty) waits until only DaemonSet and mirror pods are left, that is until user pods have ended
        too; set O(timeout) above O(max_pod_age) for that.
    type: str
    choices: [none, blockers, empty]
    default: blockers
  timeout:
    description:
      - Seconds from the start of the task until evictions refused by a PodDisruptionBudget stop being
        retried and the wait ends. What then happens to what is left is O(on_timeout).
    type: int
    default: 300
  on_timeout:
    description:
      - What to do with pods still there (or still blocked by a PDB) when O(timeout) is reached.
      - V(fail) fails the task, saying what was done and what is left.
      - V(force) deletes what is left, bypassing PodDisruptionBudgets, with O(grace_period), then waits for
        those pods to go.
      - V(continue) stops waiting and reports what is left with a warning (used by
        C(playbooks/rotate-user-pool.yml) to let a first batch of nodes empty for a while).
    type: str
    choices: [fail, force, continue]
    default: fail
  grace_period:
    description:
      - Seconds each evicted or force-deleted pod gets to terminate. V(0) means immediately. Unset, each pod's
        own C(terminationGracePeriodSeconds) applies.
    type: int
  max_pod_age:
    description:
      - How long user servers and builds live at most (JupyterHub's culler C(maxAge), 6 hours on mybinder.org),
        e.g. V(6h) or seconds. Used to report when each remaining user pod, and so the node, is expected to be
        gone.
    type: raw
    default: 6h
  delete_node:
    description:
      - Delete the Node object once it is empty. Needs O(state=drained) and O(wait=empty).
      - Deleting the Node object does not delete the machine; the cloud's autoscaler or node pool does that.
    type: bool
    default: false
  parallelism:
    description: How many API requests (evictions, deletions, listings) run at the same time.
    type: int
    default: 32
  force:
    description:
      - Proceed although the last schedulable node of a pool would be cordoned or a critical workload would
        be left only on cordoned nodes (warnings instead of refusals), and uncordon nodes this module did not
        cordon.
    type: bool
    default: false
  pool_labels:
    description:
      - Node label keys that name a node's pool; the first one a node carries counts. Used to refuse cordoning
        the last schedulable node of a pool.
    type: list
    elements: str
    default: [mybinder.org/node-purpose, hub.jupyter.org/node-purpose]
  critical_pod_selectors:
    description:
      - Label selectors of workloads that must keep at least one pod on a schedulable node (per namespace).
    type: list
    elements: str
    default:
      - component=hub
      - app.kubernetes.io/name=ingress-nginx,app.kubernetes.io/component=controller
      - app=nginx-ingress,component=controller
  cordoned_by:
    description:
      - Who cordons, recorded in the node's C(mybinder.org/cordoned-by) annotation. Defaults to C(user@host)
        of the machine running the module.
    type: str
  reason:
    description: Free text recorded in the annotation, e.g. a ticket or "pool rotation".
    type: str
  progress_file:
    description:
      - Append one line per step and per progress change to this file while the module runs (created if
        missing), for C(tail -f).
      - Not needed for progress in the play output on a local connection; the action plugin then uses a
        temporary file of its own unless this is set.
    type: path
notes:
  - A drained node is only removed by the cluster autoscaler once user pods have ended (or were evicted), and
    a node annotated C(cluster-autoscaler.kubernetes.io/scale-down-disabled=true) never is; such a node-level
    blocker is listed in C(autoscaler_blockers) of RV(nodes).
  - Taint, annotation and the other cordon marks are written with a merge patch guarded by the node's
    resourceVersion, and re-read and re-computed on a conflict, so a concurrent change by another controller
    is never overwritten.
seealso:
  - module: kubernetes.core.k8s_drain
    description: Generic drain of one node, like kubectl drain.
"""

EXAMPLES = r"""
- name: Retire user-3 gently (evict only what blocks the autoscaler, leave sessions to end)
  mybinder.deploy.node_drain:
    name: user-3
    reason: replacing the user pool

- name: Cordon the two oldest user nodes older than 4 days
  mybinder.deploy.node_drain:
    selector: mybinder.org/node-purpose=user
    older_than: 4d
    max_nodes: 2
    state: cordoned

- name: Wait until user-3 is empty, then force out what is left and delete the Node object
  mybinder.deploy.node_drain:
    name: user-3
    wait: empty
    timeout: 23400  # 6.5 h: past the culler's max age
    on_timeout: force
    grace_period: 30
    delete_node: true
    progress_file: /tmp/drain-user-3.log

- name: Predict a drain (dry-run evictions ask the server which PDBs would block)
  mybinder.deploy.node_drain:
    name: user-3
    evict: all
  check_mode: true
  register: prediction

- name: Put user-3 back into service
  mybinder.deploy.node_drain:
    name: user-3
    state: uncordoned
"""

RETURN = r"""
nodes:
  description: One entry per selected node, keyed by node name.
  returned: always
  type: dict
  contains:
    cordoned:
      description: Whether the node is unschedulable (or tainted as retiring) after the run.
      type: bool
      sample: true
    cordoned_by_us:
      description: Whether the node carries this module's retiring mark (annotation or taint) after the run.
      type: bool
      sample: true
    cordon:
      description:
        - What the run did to the cordon. V(cordoned) (newly), V(already), V(reasserted) (our mark was there
          but the node had been made schedulable again), V(uncordoned), V(kept-cordoned), V(schedulable).
      type: str
      sample: cordoned
    reasserted:
      description: Whether a cordon removed by something else (e.g. BinderHub's image cleaner) was put back.
      type: bool
      sample: false
    cordon_record:
      description: The node's C(mybinder.org/cordoned-by) annotation (who, when, whether it was cordoned before).
      type: dict
      sample:
        by: alice@laptop
        at: "2024-05-01T10:00:00Z"
        tool: mybinder.deploy.node_drain
        unschedulable_before: false
    evicted:
      description:
        - Pods evicted (in check mode, that the server accepted as a dry run). C(attempts) counts eviction
          requests; C(pdb_wait) names a PodDisruptionBudget the eviction had to wait for (or, in check mode,
          would have to, because earlier evictions of this run use up its budget).
      type: list
      elements: dict
      sample: [{namespace: kube-system, name: kube-dns-5c8f-x2x, reason: "blocks the autoscaler: ...", attempts: 1}]
    skipped:
      description: Pods not evicted, with the reason (user session, build, DaemonSet, mirror, already terminating).
      type: list
      elements: dict
      sample: [{namespace: prod, name: jupyter-alice, reason: "user session: left to end on its own (evict: blockers)"}]
    blocked:
      description: Pods whose eviction a PodDisruptionBudget refused until the end, with the PDB(s) and the message.
      type: list
      elements: dict
      sample: [{namespace: prod, name: web-1, pdbs: [web], message: "Cannot evict pod ..."}]
    forced:
      description: Pods deleted because of O(on_timeout=force), with the grace period used.
      type: list
      elements: dict
      sample: []
    user_pods:
      description:
        - User servers and builds still on the node, with their start, age and expected end (start plus
          O(max_pod_age)); C(overdue) when that is in the past (the culler is late).
      type: list
      elements: dict
      sample: [{namespace: prod, name: jupyter-alice, kind: user, started: "2024-05-01T08:00:00Z", age: 2h00m,
                age_seconds: 7200, expected_end: "2024-05-01T14:00:00Z", overdue: false, terminating: false}]
    estimated_empty_at:
      description:
        - When the node should hold only DaemonSet and mirror pods; the run's end if it already does; null when
          something other than user pods is left (see C(autoscaler_blockers) of RV(nodes)).
      type: str
      sample: "2024-05-01T14:00:00Z"
    empty:
      description: Whether only DaemonSet and mirror pods are left (predicted in check mode).
      type: bool
      sample: false
    autoscaler_blockers:
      description:
        - What still keeps the cluster autoscaler from removing the node, user pods aside (those are in
          C(user_pods) of RV(nodes)); each entry has the pod (or C(node)) and the reasons.
      type: list
      elements: dict
      sample: [{namespace: kube-system, name: metrics-agent-1, reasons: [no controller (bare pod)]}]
    deleted:
      description: Whether the Node object was deleted (O(delete_node)).
      type: bool
      sample: false
    elapsed:
      description: Seconds from the start of the task until this node was done.
      type: float
      sample: 12.5
summary:
  description: A table with one line per node, for printing.
  returned: always
  type: list
  elements: str
  sample: ["NODE    CORDON  EVICTED  BLOCKED  SKIPPED  USER PODS  BLOCKERS LEFT  EMPTY BY              ELAPSED",
           "user-3  ours    4        0        6        3          0              2024-05-01T14:00:00Z  3.2s"]
elapsed:
  description: Seconds the whole task took.
  returned: always
  type: float
  sample: 12.5
"""

import datetime
import getpass
import heapq
import queue
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils import _drain as d
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import (
    KUBE_CONNECTION_ARG_SPEC,
    KubeApiError,
    KubeClient,
    KubeConnectionError,
    build_client,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_objects import METADATA_LIST_ACCEPT

# Lists during waits ask for metadata only (METADATA_LIST_ACCEPT: what waiting needs is UID,
# owner, annotations, deletionTimestamp); whole pods are fetched once before and once after.
MERGE_PATCH = "application/merge-patch+json"


class DrainFailure(Exception):
    """The run stopped or ended short of its goal; ``changed`` tells whether anything was changed."""

    def __init__(self, msg: str, changed: bool, result: dict[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.changed = changed
        self.result = result or {}


class Progress:
    """Timestamped progress lines, appended to a file as they happen (modules cannot print)."""

    def __init__(self, path: str | None, start: float) -> None:
        self.path = path
        self.start = start
        self.lock = threading.Lock()
        if path:
            with open(path, "a", encoding="utf-8"):
                pass

    def __call__(self, text: str) -> None:
        if not self.path:
            return
        stamp = d.iso(datetime.datetime.now(datetime.UTC))
        line = f"{stamp} +{time.monotonic() - self.start:.1f}s {text}\n"
        with self.lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)


@dataclass
class Outcome:
    """How one eviction ended."""

    plan: d.PodPlan
    status: str  # evicted, gone, blocked, error
    attempts: int = 0
    pdb_wait: str | None = None
    message: str = ""


@dataclass
class NodeRun:
    name: str
    node: dict[str, Any]
    cordon: str = "already"
    record: dict[str, Any] | None = None
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> pod, first listing
    plans: list[d.PodPlan] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    forced: list[dict[str, Any]] = field(default_factory=list)
    wait_for: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)
    deleted: bool = False
    done_at: float | None = None
    warnings: list[str] = field(default_factory=list)


class Evictor:
    """Evicts pods through the Eviction API with at most ``parallelism`` requests in flight.

    A refusal because of a PodDisruptionBudget (429) is retried with exponential backoff (0.5 s
    doubling to 5 s, with jitter) until the deadline; the retries wait in a heap, not in worker
    threads, so pods that wait for a PDB never hold up the others. Each eviction carries the pod's
    UID as a precondition: a new pod with the same name (StatefulSet) is never evicted by mistake."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        parallelism: int,
        deadline: float,
        grace_period: int | None,
        dry_run: bool,
        progress: Progress,
    ) -> None:
        self.kube = kube
        self.parallelism = parallelism
        self.deadline = deadline
        self.grace_period = grace_period
        self.dry_run = dry_run
        self.progress = progress

    def attempt(self, plan: d.PodPlan) -> tuple[str, str | None, str]:
        options: dict[str, Any] = {"preconditions": {"uid": plan.uid}}
        if self.grace_period is not None:
            options["gracePeriodSeconds"] = self.grace_period
        if self.dry_run:
            options["dryRun"] = ["All"]
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": plan.name, "namespace": plan.namespace},
            "deleteOptions": options,
        }
        path = f"/api/v1/namespaces/{plan.namespace}/pods/{plan.name}/eviction"
        try:
            self.kube.request("POST", path, query={"dryRun": "All"} if self.dry_run else None, body=body)
            return "ok", None, ""
        except KubeApiError as exc:
            text = exc.message
            if exc.status == 404:
                return "gone", None, "already gone"
            if exc.status == 409 and "precondition" in text.lower():
                return "gone", None, "already gone (a new pod has the name now)"
            if exc.status == 429:
                return "retry", d.pdb_from_429(exc.body), text
            if exc.status == 409:  # concurrent update of a PDB's status: try again
                return "retry", None, text
            if exc.status == 500 and "disruptionbudget" in text.replace(" ", "").lower():
                return "multi-pdb", None, d.multiple_pdb_message(plan)
            if exc.status == 403 and exc.has_cause("NamespaceTerminating"):
                return "retry", None, text
            return "error", None, str(exc)
        except Exception as exc:  # network trouble: report it with the pod, do not lose the others
            return "error", None, f"{type(exc).__name__}: {exc}"

    def run(self, plans: list[d.PodPlan]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        retry_heap: list[tuple[float, int, d.PodPlan, int, str | None]] = []
        finished: queue.SimpleQueue[tuple[d.PodPlan, int, str | None, tuple[str, str | None, str]]] = (
            queue.SimpleQueue()
        )
        seq, in_flight, last_report = 0, 0, time.monotonic()

        def attempt(plan: d.PodPlan, attempts: int, pdb: str | None) -> None:
            finished.put((plan, attempts, pdb, self.attempt(plan)))

        with ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="evict") as pool:
            for plan in plans:
                pool.submit(attempt, plan, 1, None)
            in_flight = len(plans)
            while in_flight or retry_heap:
                now = time.monotonic()
                while retry_heap and retry_heap[0][0] <= now:
                    _due, _seq, plan, attempts, pdb = heapq.heappop(retry_heap)
                    pool.submit(attempt, plan, attempts + 1, pdb)
                    in_flight += 1
                wait_for = max(0.01, retry_heap[0][0] - now) if retry_heap else None
                if not in_flight:
                    time.sleep(min(wait_for or 1.0, 1.0))
                    continue
                try:
                    plan, attempts, pdb, (kind, new_pdb, message) = finished.get(timeout=wait_for)
                except queue.Empty:
                    continue
                in_flight -= 1
                pdb = new_pdb or pdb
                if kind == "ok":
                    outcomes.append(Outcome(plan, "evicted", attempts, pdb if attempts > 1 else None))
                elif kind == "gone":
                    outcomes.append(Outcome(plan, "gone", attempts, None, message))
                elif kind == "retry":
                    delay = min(0.5 * 2 ** (attempts - 1), 5.0) + random.uniform(0, 0.25)
                    if self.dry_run or time.monotonic() + delay >= self.deadline:
                        outcomes.append(Outcome(plan, "blocked", attempts, pdb, message))
                    else:
                        seq += 1
                        heapq.heappush(retry_heap, (time.monotonic() + delay, seq, plan, attempts, pdb))
                elif kind == "multi-pdb":
                    outcomes.append(Outcome(plan, "blocked", attempts, None, message))
                else:
                    outcomes.append(Outcome(plan, "error", attempts, None, message))
                if retry_heap and time.monotonic() - last_report > 5:
                    last_report = time.monotonic()
                    waiting = sorted({f"{entry[2].ref} ({entry[4] or 'PDB'})" for entry in retry_heap})
                    self.progress(
                        f"{len(waiting)} eviction(s) refused by a PodDisruptionBudget, retrying: "
                        + ", ".join(waiting[:5])
                        + (" ..." if len(waiting) > 5 else "")
                    )
        return outcomes


class NodeDrain:
    """One run of the module: select, check, cordon, evict, wait, report."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.kube: KubeClient = None  # type: ignore[assignment]  # set by connect(), after the input checks
        self.p = module.params
        self.check = module.check_mode
        self.start = time.monotonic()
        self.now = datetime.datetime.now(datetime.UTC)
        self.changed = False
        self.warnings: list[str] = []
        self.runs: dict[str, NodeRun] = {}
        self.daemonsets: dict[tuple[str, str], str] | None = None
        self.pdbs: list[dict[str, Any]] = []
        self.parse_input()
        self.progress = Progress(self.p["progress_file"], self.start)
        self.deadline = self.start + self.p["timeout"]
        self.pool = ThreadPoolExecutor(max_workers=self.p["parallelism"], thread_name_prefix="drain")

    # ---------------------------------------------------------------------------------------- input

    def parse_input(self) -> None:
        """Every check on the options, before anything is read or changed."""
        p = self.p
        self.older_than = d.parse_duration(p["older_than"], "older_than")
        self.max_pod_age = d.parse_duration(p["max_pod_age"], "max_pod_age") or 0
        self.node_selector = d.parse_label_selector(p["selector"], "selector") if p["selector"] is not None else None
        self.user_selector = d.parse_label_selector(p["user_pod_selector"], "user_pod_selector")
        for i, sel in enumerate(p["critical_pod_selectors"]):
            if not d.parse_label_selector(sel, f"critical_pod_selectors[{i}]"):
                raise d.DrainInputError(f"critical_pod_selectors[{i}]: an empty selector would match every pod")
        checks = [
            (
                p["name"] is not None and not [n for n in p["name"] if n],
                "name: give at least one node name (or use selector)",
            ),
            (
                p["selector"] is not None and not self.node_selector,
                "selector: an empty selector would select every node; name the pool, e.g. "
                "mybinder.org/node-purpose=user",
            ),
            (p["timeout"] <= 0, f"timeout: {p['timeout']} must be a positive number of seconds"),
            (p["parallelism"] < 1, f"parallelism: {p['parallelism']} must be at least 1"),
            (p["max_nodes"] is not None and p["max_nodes"] < 1, "max_nodes: must be at least 1 when set"),
            (
                p["grace_period"] is not None and p["grace_period"] < 0,
                "grace_period: must be 0 (immediately) or more seconds; leave it unset for each pod's own",
            ),
            (
                p["delete_node"] and (p["state"] != "drained" or p["wait"] != "empty"),
                "delete_node: true needs state: drained and wait: empty (a Node object is only deleted once empty)",
            ),
            (not p["pool_labels"], "pool_labels: give at least one node label key"),
        ]
        for bad, message in checks:
            if bad:
                raise d.DrainInputError(message)
        self.cordoned_by = p["cordoned_by"] or default_who()

    # ---------------------------------------------------------------------------------------- API

    def list_pods(self, node: str, metadata_only: bool = False) -> list[dict[str, Any]]:
        query = {"fieldSelector": f"spec.nodeName={node}"}
        if not metadata_only:
            return list(self.kube.list_items("/api/v1/pods", **query))
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = self.kube.request(
                "GET", "/api/v1/pods", query={**query, "limit": 1000, "continue": token}, accept=METADATA_LIST_ACCEPT
            )
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def patch_node(self, name: str, compute: Any) -> tuple[dict[str, Any], Any]:
        """Read the node, compute a patch, apply it guarded by the resourceVersion it was computed
        from; on a conflict read and compute again. In check mode the server answers a dry run with
        the node as the patch would leave it."""
        for _attempt in range(8):
            node = self.kube.request("GET", f"/api/v1/nodes/{name}")
            computed = compute(node)
            if computed[0] is None:
                return node, computed
            try:
                updated = self.kube.request(
                    "PATCH",
                    f"/api/v1/nodes/{name}",
                    body=computed[0],
                    content_type=MERGE_PATCH,
                    query={"dryRun": "All"} if self.check else None,
                )
            except KubeApiError as exc:
                if exc.status != 409:
                    raise
                time.sleep(random.uniform(0.05, 0.3))
                continue
            self.changed = True
            return updated, computed
        raise DrainFailure(f"node {name} kept changing under us (8 conflicts in a row); run again", self.changed)

    def connect(self) -> None:
        self.kube = build_client(self.p, pool_size=self.p["parallelism"] + 4, user_agent="mybinder.deploy/node_drain")

    def parallel(self, fn: Any, items: list[Any]) -> list[Any]:
        return list(self.pool.map(fn, items))

    def load_cluster_context(self) -> None:
        """DaemonSets (to tell orphaned DaemonSet pods) and PDBs (autoscaler rules, 500 answers)."""
        self.daemonsets = {
            (ds["metadata"]["namespace"], ds["metadata"]["name"]): ds["metadata"]["uid"]
            for ds in self.kube.list_items("/apis/apps/v1/daemonsets")
        }
        self.pdbs = list(self.kube.list_items("/apis/policy/v1/poddisruptionbudgets"))

    def classify(self, pods: list[dict[str, Any]]) -> list[d.PodPlan]:
        return [
            d.classify_pod(
                pod, evict=self.p["evict"], user_selector=self.user_selector, daemonsets=self.daemonsets, pdbs=self.pdbs
            )
            for pod in pods
        ]

    def is_user_pod(self, run: NodeRun, plan: d.PodPlan) -> bool:
        if plan.category in ("user", "build"):
            return True
        pod = run.pods.get(plan.uid)
        return bool(pod) and d.selector_matches(self.user_selector, pod["metadata"].get("labels"))

    # ---------------------------------------------------------------------------------------- run

    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            self.pool.shutdown(wait=False)

    def _run(self) -> dict[str, Any]:
        p = self.p
        all_nodes = list(self.kube.list_items("/api/v1/nodes"))
        selected = d.select_nodes(
            all_nodes,
            names=p["name"],
            selector=self.node_selector,
            older_than=self.older_than,
            max_nodes=p["max_nodes"],
            now=self.now,
        )
        if not selected:
            self.warnings.append("no node matched the selection; nothing to do")
            return self.result()
        self.runs = {d.node_name(n): NodeRun(d.node_name(n), dict(n)) for n in selected}
        self.progress(f"{p['state']}: {', '.join(self.runs)}{' (check mode)' if self.check else ''}")
        before = self.snapshot_before() if self.module._diff else None
        if p["state"] == "uncordoned":
            self.uncordon()
        else:
            self.safety_checks(all_nodes)
            self.cordon()
        self.load_cluster_context()
        self.parallel(self.plan_node, list(self.runs.values()))
        if p["state"] == "drained":
            self.drain()
        else:
            for run in self.runs.values():
                run.done_at = time.monotonic()
        return self.result(before)

    def plan_node(self, run: NodeRun) -> None:
        pods = self.list_pods(run.name)
        run.pods = {pod["metadata"]["uid"]: pod for pod in pods}
        run.plans = self.classify(pods)

    # ------------------------------------------------------------------------------------ uncordon

    def uncordon(self) -> None:
        refusals = []
        for run in self.runs.values():
            try:
                d.uncordon_patch(run.node, force=self.p["force"])
            except d.DrainInputError as exc:
                refusals.append(str(exc))
        if refusals:
            raise d.DrainInputError("; ".join(refusals))
        for run in self.runs.values():
            node, (patch, status, warning) = self.patch_node(
                run.name, lambda n: d.uncordon_patch(n, force=self.p["force"])
            )
            run.cordon, run.node = status, node
            if warning:
                run.warnings.append(warning)
            self.progress(f"{run.name}: {status}{' (dry run)' if self.check and patch is not None else ''}")

    # ------------------------------------------------------------------------------------ cordon

    def safety_checks(self, all_nodes: list[dict[str, Any]]) -> None:
        to_cordon = {name for name, r in self.runs.items() if d.schedulable(r.node)}
        if not to_cordon:
            return
        problems = d.last_node_problems(all_nodes, to_cordon, self.p["pool_labels"])
        unschedulable_after = {d.node_name(n) for n in all_nodes if not d.schedulable(n)} | set(self.runs)
        selector_pods = {
            sel: list(self.kube.list_items("/api/v1/pods", labelSelector=sel))
            for sel in self.p["critical_pod_selectors"]
        }
        problems += d.critical_pod_problems(selector_pods, unschedulable_after, to_cordon)
        if problems and not self.p["force"]:
            raise d.DrainInputError(
                "refusing to cordon: " + "; ".join(problems) + ". Set force: true to proceed anyway"
            )
        for problem in problems:
            self.warnings.append(f"proceeding because force: true: {problem}")

    def cordon(self) -> None:
        def one(run: NodeRun) -> None:
            node, (_patch, status) = self.patch_node(
                run.name, lambda n: d.cordon_patch(n, by=self.cordoned_by, reason=self.p["reason"], now=self.now)
            )
            run.cordon, run.node = status, node
            if status == "reasserted":
                run.warnings.append(
                    f"node {run.name} carried this module's retiring mark but had been made schedulable again "
                    "(BinderHub's image cleaner uncordons nodes): re-asserted the cordon"
                )
            self.progress(f"{run.name}: cordon {status}{' (dry run)' if self.check and status != 'already' else ''}")

        self.parallel(one, list(self.runs.values()))

    # ------------------------------------------------------------------------------------ drain

    def drain(self) -> None:
        p, runs = self.p, self.runs
        owner = {pl.uid: r for r in runs.values() for pl in r.plans}
        to_evict = [pl for r in runs.values() for pl in r.plans if pl.action == "evict"]
        for run in runs.values():
            n_evict = sum(1 for pl in run.plans if pl.action == "evict")
            n_user = sum(1 for pl in run.plans if pl.category in ("user", "build") and pl.action == "skip")
            self.progress(f"{run.name}: {len(run.plans)} pod(s): {n_evict} to evict, {n_user} user pod(s) left to end")
        evictor = Evictor(
            self.kube,
            parallelism=p["parallelism"],
            deadline=self.deadline,
            grace_period=p["grace_period"],
            dry_run=self.check,
            progress=self.progress,
        )
        for outcome in evictor.run(to_evict):
            owner[outcome.plan.uid].outcomes.append(outcome)
        if any(o.status == "evicted" for r in runs.values() for o in r.outcomes):
            self.changed = True
        for run in runs.values():
            counts = {s: sum(1 for o in run.outcomes if o.status == s) for s in ("evicted", "gone", "blocked", "error")}
            self.progress(
                f"{run.name}: evictions {'(dry run) ' if self.check else ''}{counts['evicted']} accepted, "
                f"{counts['gone']} already gone, {counts['blocked']} blocked, {counts['error']} failed"
            )
        errors = [f"{o.plan.ref}: {o.message}" for r in runs.values() for o in r.outcomes if o.status == "error"]
        if errors:
            raise DrainFailure("eviction failed for " + "; ".join(errors), self.changed)
        if self.check:
            self.predict_pdb_waits()
            for run in runs.values():
                run.done_at = time.monotonic()
                for o in run.outcomes:
                    if o.status == "blocked":
                        run.warnings.append(
                            f"check mode: the eviction of {o.plan.ref} is refused now ({o.message}); a real run "
                            f"retries it until the timeout ({p['timeout']} s), and if it would stay blocked, "
                            f"on_timeout: {p['on_timeout']} applies"
                        )
                if p["delete_node"] and self.predicted_empty(run):
                    run.deleted = True
                    self.changed = True
            return
        for run in runs.values():
            run.wait_for = self.wait_targets(run)
        if p["wait"] != "none":
            self.wait_gone(list(runs.values()), self.deadline, p["wait"])
        else:
            for run in runs.values():
                run.done_at = time.monotonic()
        self.handle_leftovers()
        if p["delete_node"]:
            self.delete_nodes()

    def predict_pdb_waits(self) -> None:
        """Dry-run evictions are judged one by one against a PDB's current budget, while a real run
        uses the budget up as it goes: mark the evictions that would have to wait for replacements."""
        allowed = {
            (pdb["metadata"]["namespace"], pdb["metadata"]["name"]): int(
                (pdb.get("status") or {}).get("disruptionsAllowed", 0) or 0
            )
            for pdb in self.pdbs
        }
        for run in self.runs.values():
            for outcome in run.outcomes:
                if outcome.status != "evicted" or len(outcome.plan.pdbs) != 1:
                    continue
                key = (outcome.plan.namespace, outcome.plan.pdbs[0])
                if key in allowed:
                    allowed[key] -= 1
                    if allowed[key] < 0:
                        outcome.pdb_wait = outcome.plan.pdbs[0]

    def wait_targets(self, run: NodeRun) -> set[str]:
        """wait: blockers waits for the pods evicted now and the non-user pods already terminating."""
        evicted = {o.plan.uid for o in run.outcomes if o.status == "evicted"}
        terminating = {pl.uid for pl in run.plans if pl.category == "terminating" and not self.is_user_pod(run, pl)}
        return evicted | terminating

    def still_there(self, run: NodeRun, mode: str) -> set[str]:
        """UIDs of the pods the wait is about that are still on the node (metadata-only listing).
        With mode empty every pod that is not a DaemonSet or mirror pod counts, new ones too."""
        items = self.list_pods(run.name, metadata_only=True)
        present = {i["metadata"]["uid"] for i in items}
        if mode != "empty":
            return run.wait_for & present
        orphans = {pl.uid for pl in run.plans if pl.category == "orphaned-daemonset"}
        return {
            i["metadata"]["uid"]
            for i in items
            if not d.is_mirror(i) and (d.daemonset_ref(i) is None or i["metadata"]["uid"] in orphans)
        }

    def describe_left(self, run: NodeRun, left: set[str]) -> str:
        plans = {pl.uid: pl for pl in run.plans}
        users = [plans[u] for u in left if u in plans and self.is_user_pod(run, plans[u])]
        user_uids = {pl.uid for pl in users}
        others = sorted(plans[u].ref if u in plans else f"new pod {u}" for u in left if u not in user_uids)
        parts = []
        if others:
            parts.append(f"{len(others)} other pod(s): " + ", ".join(others[:3]) + (" ..." if len(others) > 3 else ""))
        if users:
            ends = [d.user_pod_info(run.pods[pl.uid], pl, self.max_pod_age, self.now)["expected_end"] for pl in users]
            parts.append(f"{len(users)} user pod(s), the last expected to end {max(ends)}")
        return "; ".join(parts) or "nothing"

    def wait_gone(self, runs: list[NodeRun], deadline: float, mode: str, what: str = "the evicted pods") -> None:
        """Poll (metadata only, every 0.2 s growing to 1 s, after a minute to 5 s) until the pods are
        gone or the deadline; a progress line whenever the counts change, and every 30 s."""
        pending = {r.name: r for r in runs if r.wait_for or mode == "empty"}
        for run in runs:
            run.left = set()
            if run.name not in pending:
                run.done_at = time.monotonic()
        interval, said_at, said_counts, started = 0.2, 0.0, {}, time.monotonic()
        while pending:
            lefts = self.parallel(lambda r: self.still_there(r, mode), list(pending.values()))
            now = time.monotonic()
            for run, left in zip(list(pending.values()), lefts, strict=True):
                run.left = left
                if not left:
                    run.done_at = now
                    self.progress(f"{run.name}: {'empty' if mode == 'empty' else what + ' are gone'}")
                    del pending[run.name]
            counts = {n: len(r.left) for n, r in pending.items()}
            if pending and (counts != said_counts or now - said_at > 30):
                for run in pending.values():
                    self.progress(
                        f"{run.name}: waiting, {d.human_seconds(max(0.0, deadline - now))} to the deadline: "
                        + self.describe_left(run, run.left)
                    )
                said_at, said_counts = now, counts
            if not pending or now >= deadline:
                return
            time.sleep(max(0.0, min(interval, deadline - now)))
            # metadata-only listings are cheap: look twice a second while pods usually go (their grace
            # periods), every second until a minute has passed, then every 5 s
            waited = now - started
            interval = min(interval * 1.3, 0.5 if waited < 30 else 1.0 if waited < 60 else 5.0)

    def leftovers(self) -> dict[str, set[str]]:
        out = {}
        for run in self.runs.values():
            uids = {o.plan.uid for o in run.outcomes if o.status == "blocked"}
            if self.p["wait"] != "none":
                uids |= run.left
            if uids:
                out[run.name] = uids
        return out

    def handle_leftovers(self) -> None:
        left = self.leftovers()
        if not left:
            return
        if self.p["on_timeout"] == "force":
            self.force_delete(left)
            return
        text = self.leftover_text(left)
        if self.p["on_timeout"] == "continue":
            self.warnings.append(
                f"timeout ({self.p['timeout']} s) reached; continuing as on_timeout: continue says. Left: {text}"
            )
            return
        raise DrainFailure(
            f"timeout ({self.p['timeout']} s) reached with pods left: {text}. Wait longer (timeout), or use "
            "on_timeout: force to delete them",
            self.changed,
        )

    def leftover_text(self, left: dict[str, set[str]]) -> str:
        parts = []
        for name, uids in sorted(left.items()):
            run = self.runs[name]
            blocked = {o.plan.uid: o for o in run.outcomes if o.status == "blocked"}
            items = []
            for uid in sorted(uids & set(blocked)):
                o = blocked[uid]
                if o.message.startswith("several"):
                    items.append(o.message)
                else:
                    items.append(
                        f"{o.plan.ref} (eviction refused by PodDisruptionBudget {o.pdb_wait or '?'}: {o.message})"
                    )
            rest = uids - set(blocked)
            if rest:
                items.append(self.describe_left(run, rest))
            parts.append(f"{name}: " + "; ".join(items))
        return " | ".join(parts)

    def force_delete(self, left: dict[str, set[str]]) -> None:
        grace = self.p["grace_period"]
        jobs: list[tuple[NodeRun, d.PodPlan]] = []
        for name, uids in left.items():
            run = self.runs[name]
            plans = {pl.uid: pl for pl in run.plans}
            jobs += [(run, plans[u]) for u in uids if u in plans]
            new = uids - set(plans)
            if new:  # pods that arrived during the wait: read them to know their names
                for pod in self.list_pods(name):
                    if pod["metadata"]["uid"] in new:
                        run.pods[pod["metadata"]["uid"]] = pod
                        plan = self.classify([pod])[0]
                        run.plans.append(plan)
                        jobs.append((run, plan))
        self.progress(
            f"deadline reached: force-deleting {len(jobs)} pod(s), grace period "
            f"{grace if grace is not None else 'of each pod'}"
        )

        def delete(job: tuple[NodeRun, d.PodPlan]) -> str | None:
            body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": job[1].uid}}
            if grace is not None:
                body["gracePeriodSeconds"] = grace
            try:
                self.kube.request("DELETE", f"/api/v1/namespaces/{job[1].namespace}/pods/{job[1].name}", body=body)
            except KubeApiError as exc:
                return "gone" if exc.status in (404, 409) else str(exc)
            return None

        errors = []
        for (run, plan), err in zip(jobs, self.parallel(delete, jobs), strict=True):
            if err == "gone":
                continue
            if err:
                errors.append(f"{plan.ref}: {err}")
                continue
            self.changed = True
            run.forced.append({"namespace": plan.namespace, "name": plan.name, "grace_period": grace})
            run.wait_for.add(plan.uid)
        if errors:
            raise DrainFailure("force deletion failed for " + "; ".join(errors), self.changed)
        longest = (
            grace
            if grace is not None
            else max(
                [
                    int(run.pods.get(pl.uid, {}).get("spec", {}).get("terminationGracePeriodSeconds") or 30)
                    for run, pl in jobs
                ]
                or [30]
            )
        )
        forced_runs = [self.runs[n] for n in left]
        self.wait_gone(forced_runs, time.monotonic() + longest + 30, "blockers", "the force-deleted pods")
        still = {r.name: r.left for r in forced_runs if r.left}
        if still:
            raise DrainFailure(
                "pods still there after the force deletion (finalizers, or a kubelet that does not answer): "
                + self.leftover_text(still),
                self.changed,
            )

    def delete_nodes(self) -> None:
        for run in self.runs.values():
            if run.left:
                continue
            try:
                self.kube.request("DELETE", f"/api/v1/nodes/{run.name}")
            except KubeApiError as exc:
                if exc.status != 404:
                    raise
            run.deleted = True
            self.changed = True
            self.progress(f"{run.name}: Node object deleted")

    def predicted_empty(self, run: NodeRun) -> bool:
        """Check mode: whether the real run would leave only DaemonSet and mirror pods. With wait:
        empty and on_timeout: force it always does (what is left at the deadline is deleted);
        otherwise when every other pod is evicted or already terminating."""
        if self.p["wait"] == "empty" and self.p["on_timeout"] == "force":
            return True
        gone = {o.plan.uid for o in run.outcomes if o.status in ("evicted", "gone")}
        return all(pl.stays_on_empty_node or pl.uid in gone or pl.category == "terminating" for pl in run.plans)

    # ------------------------------------------------------------------------------------ result

    def final_state(self, run: NodeRun) -> tuple[list[d.PodPlan], dict[str, Any]]:
        """Pods on the node after the run (predicted in check mode, where nothing is waited for)
        and the node object."""
        if self.check or (not run.plans and not run.pods):
            gone = {o.plan.uid for o in run.outcomes if o.status in ("evicted", "gone")}
            return [pl for pl in run.plans if pl.uid not in gone], run.node
        if run.deleted:
            return [], run.node
        pods = self.list_pods(run.name)
        for pod in pods:
            run.pods.setdefault(pod["metadata"]["uid"], pod)
        try:
            node = self.kube.request("GET", f"/api/v1/nodes/{run.name}")
        except KubeApiError as exc:
            if exc.status != 404:
                raise
            node = run.node
        return self.classify(pods), node

    def node_result(self, run: NodeRun) -> tuple[dict[str, Any], list[d.PodPlan], dict[str, Any]]:
        if self.p["state"] == "drained":  # what is left after the drain (predicted in check mode)
            remaining, node = self.final_state(run)
        else:
            remaining, node = run.plans, run.node
        user_pods = [
            d.user_pod_info(run.pods[pl.uid], pl, self.max_pod_age, self.now)
            for pl in remaining
            if self.is_user_pod(run, pl) and pl.uid in run.pods
        ]
        user_uids = {pl.uid for pl in remaining if self.is_user_pod(run, pl)}
        blockers: list[dict[str, Any]] = [
            {"namespace": pl.namespace, "name": pl.name, "reasons": pl.autoscaler}
            for pl in remaining
            if pl.autoscaler and pl.uid not in user_uids
        ]
        if (node.get("metadata", {}).get("annotations") or {}).get(d.SCALE_DOWN_DISABLED_ANNOTATION) == "true":
            blockers.append(
                {
                    "namespace": None,
                    "name": "node",
                    "reasons": [f"node annotated {d.SCALE_DOWN_DISABLED_ANNOTATION}=true"],
                }
            )
        evicted = []
        for o in run.outcomes:
            if o.status == "evicted":
                entry = {
                    "namespace": o.plan.namespace,
                    "name": o.plan.name,
                    "reason": o.plan.reason,
                    "attempts": o.attempts,
                }
                if o.pdb_wait:
                    entry["pdb_wait"] = o.pdb_wait
                evicted.append(entry)
        # only a drain decides about evictions: cordon and uncordon report the pods, not "skipped"
        drained = self.p["state"] == "drained"
        skipped = [pl.brief() for pl in run.plans if pl.action == "skip"] if drained else []
        skipped += [
            {"namespace": o.plan.namespace, "name": o.plan.name, "reason": o.message}
            for o in run.outcomes
            if o.status == "gone"
        ]
        blocked = [
            {
                "namespace": o.plan.namespace,
                "name": o.plan.name,
                "pdbs": [o.pdb_wait] if o.pdb_wait else o.plan.pdbs,
                "message": o.message,
            }
            for o in run.outcomes
            if o.status == "blocked"
        ]
        empty = run.deleted or not [pl for pl in remaining if not pl.stays_on_empty_node]
        if self.check and self.p["state"] == "drained":
            empty = self.predicted_empty(run)
        res = {
            "cordoned": bool(node.get("spec", {}).get("unschedulable")) or d.has_retiring_taint(node),
            "cordoned_by_us": d.marked_by_us(node),
            "cordon": run.cordon,
            "reasserted": run.cordon == "reasserted",
            "cordon_record": d.cordon_record(node),
            "evicted": evicted,
            "skipped": skipped,
            "blocked": blocked,
            "forced": run.forced,
            "user_pods": sorted(user_pods, key=lambda u: (u["expected_end"], u["namespace"], u["name"])),
            "estimated_empty_at": d.iso(self.now)
            if run.deleted
            else d.estimate_empty_at(remaining, user_pods, self.now),
            "empty": empty,
            "autoscaler_blockers": blockers,
            "deleted": run.deleted,
            "elapsed": round((run.done_at or time.monotonic()) - self.start, 2),
        }
        return res, remaining, node

    def snapshot_before(self) -> dict[str, Any]:
        out = {}
        for run in self.runs.values():
            pods = self.list_pods(run.name, metadata_only=True)
            out[run.name] = diff_view(run.node, [p for p in pods if not d.is_mirror(p) and not d.daemonset_ref(p)])
        return out

    def result(self, before: dict[str, Any] | None = None) -> dict[str, Any]:
        nodes, after = {}, {}
        for name, run in self.runs.items():
            res, remaining, node = self.node_result(run)
            nodes[name] = res
            for w in run.warnings:
                if w not in self.warnings:
                    self.warnings.append(w)
            if before is not None:
                after[name] = diff_view(
                    node,
                    [
                        run.pods.get(pl.uid) or {"metadata": {"namespace": pl.namespace, "name": pl.name}}
                        for pl in remaining
                        if not pl.stays_on_empty_node
                    ],
                )
        result: dict[str, Any] = {
            "changed": self.changed,
            "nodes": nodes,
            "summary": d.summary_table(nodes),
            "elapsed": round(time.monotonic() - self.start, 2),
        }
        if before is not None:
            result["diff"] = {"before": {"nodes": before}, "after": {"nodes": after}}
        return result

    def partial_result(self) -> dict[str, Any]:
        """The result so far, for a failure message; never raises."""
        try:
            return self.result()
        except Exception:  # the API may be what failed: report without per-node details then
            return {
                "changed": self.changed,
                "nodes": {},
                "summary": [],
                "elapsed": round(time.monotonic() - self.start, 2),
            }


def diff_view(node: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "unschedulable": bool(node.get("spec", {}).get("unschedulable")),
        "retiring_taint": d.has_retiring_taint(node),
        "cordoned_by": (d.cordon_record(node) or {}).get("by"),
        "pods": sorted(d.pod_ref(p) for p in pods),
    }


def default_who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def argument_spec() -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": {"type": "list", "elements": "str"},
        "selector": {"type": "str"},
        "older_than": {"type": "raw"},
        "max_nodes": {"type": "int"},
        "state": {"type": "str", "choices": ["cordoned", "drained", "uncordoned"], "default": "drained"},
        "evict": {"type": "str", "choices": ["blockers", "all"], "default": "blockers"},
        "user_pod_selector": {"type": "str", "default": d.DEFAULT_USER_POD_SELECTOR},
        "wait": {"type": "str", "choices": ["none", "blockers", "empty"], "default": "blockers"},
        "timeout": {"type": "int", "default": 300},
        "on_timeout": {"type": "str", "choices": ["fail", "force", "continue"], "default": "fail"},
        "grace_period": {"type": "int"},
        "max_pod_age": {"type": "raw", "default": "6h"},
        "delete_node": {"type": "bool", "default": False},
        "parallelism": {"type": "int", "default": 32},
        "force": {"type": "bool", "default": False},
        "pool_labels": {"type": "list", "elements": "str", "default": list(d.DEFAULT_POOL_LABELS)},
        "critical_pod_selectors": {
            "type": "list",
            "elements": "str",
            "default": list(d.DEFAULT_CRITICAL_POD_SELECTORS),
        },
        "cordoned_by": {"type": "str"},
        "reason": {"type": "str"},
        "progress_file": {"type": "path"},
    }
    spec.update(KUBE_CONNECTION_ARG_SPEC)
    return spec


def run_module(module: AnsibleModule) -> dict[str, Any]:
    drain = NodeDrain(module)  # checks every option first: bad input fails before any connection
    drain.connect()
    try:
        result = drain.run()
    except d.DrainInputError:
        raise  # refused before changing anything
    except DrainFailure as exc:
        exc.changed = drain.changed
        exc.result = {**drain.partial_result(), **exc.result}
        fail = exc
    except KubeApiError as exc:
        fail = DrainFailure(f"Kubernetes API error: {exc}", drain.changed, drain.partial_result())
    else:
        for w in drain.warnings:
            module.warn(w)
        drain.progress("done")
        return result
    for w in drain.warnings:
        module.warn(w)
    drain.progress(f"failed: {fail.msg}")
    raise fail


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("name", "selector")],
        required_one_of=[("name", "selector")],
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run_module(module))
    except (d.DrainInputError, KubeConnectionError) as exc:
        module.fail_json(msg=str(exc), changed=False)
    except DrainFailure as exc:
        result = {**exc.result, "changed": exc.changed}
        module.fail_json(msg=done_and_left(exc), **result)


def done_and_left(exc: DrainFailure) -> str:
    """The failure message: what stopped the run, then what it had done (the result has the rest)."""
    done = []
    for name, r in sorted((exc.result.get("nodes") or {}).items()):
        bits = []
        if r.get("cordon") in ("cordoned", "reasserted", "uncordoned"):
            bits.append(r["cordon"])
        if r.get("evicted"):
            bits.append(f"evicted {len(r['evicted'])} pod(s)")
        if r.get("forced"):
            bits.append(f"force-deleted {len(r['forced'])} pod(s)")
        if bits:
            done.append(f"{name}: {', '.join(bits)}")
    return f"{exc.msg}. Done before stopping: {'; '.join(done) if done else 'nothing'}"


if __name__ == "__main__":
    main()
