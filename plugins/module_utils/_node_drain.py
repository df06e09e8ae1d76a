# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node_drain runner (collection-private): one run of the module, reading top to bottom as the
drain does it: check the input, select the nodes, check what the drain would leave, cordon,
classify each node's pods (pure logic in _drain.py), evict through the Eviction API respecting
PodDisruptionBudgets, wait for the pods to be gone (or force them after the deadline), delete
empty nodes, and report per node and per pod.

The module (plugins/modules/node_drain.py) only documents, declares its options and calls
``drain_nodes``; this file knows nothing of Ansible but the parameters it is given.
"""

from __future__ import annotations

import datetime
import getpass
import heapq
import queue
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils import _drain as d
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KubeApiError, KubeClient, build_client
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_objects import METADATA_LIST_ACCEPT

# Lists during waits ask for metadata only (METADATA_LIST_ACCEPT: what waiting needs is UID,
# owner, annotations, deletionTimestamp); whole pods are fetched once before and once after.
MERGE_PATCH = "application/merge-patch+json"


class DrainFailure(ModuleError):
    """The run stopped or ended short of its goal; ``changed`` tells whether anything was changed,
    ``partial`` is the result as far as the run got."""

    def __init__(self, msg: str, changed: bool, partial: dict[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.changed = changed
        self.partial = partial or {}

    def result(self) -> dict[str, Any]:
        return {**self.partial, "changed": self.changed, "msg": done_and_left(self)}


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

    def __init__(self, params: dict[str, Any], check_mode: bool, diff: bool) -> None:
        self.kube: KubeClient = None  # type: ignore[assignment]  # set by connect(), after the input checks
        self.p = params
        self.check = check_mode
        self.diff = diff
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
        # The cluster answered: from now on an API server that stops answering for a while (a
        # restart) is waited for, request by request, until the drain's own deadline.
        self.kube.retry_until(self.deadline)
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
        before = self.snapshot_before() if self.diff else None
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
        """The result so far, for a failure message; never raises. When the API is what failed,
        what this run did is told from what it remembers (no request): the cordon, the evictions,
        the forced deletions, and the pods it still waited for."""
        self.kube.retry_until(None)  # the deadline has passed or the API refused: ask once at most
        try:
            return self.result()
        except Exception:  # pylint: disable=broad-except
            pass
        nodes = {}
        for name, run in getattr(self, "runs", {}).items():
            evicted = [o.plan.ref for o in run.outcomes if o.status == "evicted"]
            nodes[name] = {
                "cordon": run.cordon,
                "evicted": [
                    {"namespace": o.plan.namespace, "name": o.plan.name} for o in run.outcomes if o.status == "evicted"
                ],
                "forced": run.forced,
                "not_evicted": sorted(pl.ref for pl in run.plans if pl.action == "evict" and pl.ref not in evicted),
                "still_there": sorted(run.left),
            }
        return {
            "changed": self.changed,
            "nodes": nodes,
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


def drain_nodes(params: dict[str, Any], check_mode: bool, diff: bool, warn: Callable[[str], None]) -> dict[str, Any]:
    """One run of node_drain with its module parameters: the result, or a ModuleError
    (DrainInputError before anything is read, KubeConnectionError, DrainFailure with what was done).
    ``warn`` receives the run's warnings, on success and on failure."""
    drain = NodeDrain(params, check_mode, diff)  # checks every option first: bad input fails before any connection
    drain.connect()
    try:
        result = drain.run()
    except d.DrainInputError:
        raise  # refused before changing anything
    except DrainFailure as exc:
        exc.changed = drain.changed
        exc.partial = {**drain.partial_result(), **exc.partial}
        fail = exc
    except KubeApiError as exc:
        fail = DrainFailure(f"Kubernetes API error: {exc}", drain.changed, drain.partial_result())
    else:
        for w in drain.warnings:
            warn(w)
        drain.progress("done")
        return result
    for w in drain.warnings:
        warn(w)
    drain.progress(f"failed: {fail.msg}")
    raise fail


def done_and_left(exc: DrainFailure) -> str:
    """The failure message: what stopped the run, then what it had done (the result has the rest)."""
    done = []
    for name, r in sorted((exc.partial.get("nodes") or {}).items()):
        bits = []
        if r.get("cordon") in ("cordoned", "reasserted", "uncordoned"):
            bits.append(r["cordon"])
        if r.get("evicted"):
            bits.append(f"evicted {len(r['evicted'])} pod(s)")
        if r.get("forced"):
            bits.append(f"force-deleted {len(r['forced'])} pod(s)")
        if r.get("not_evicted"):
            bits.append(
                f"not evicted: {', '.join(r['not_evicted'][:10])}" + (" ..." if len(r["not_evicted"]) > 10 else "")
            )
        if r.get("still_there"):
            bits.append(f"{len(r['still_there'])} evicted pod(s) not gone yet")
        if bits:
            done.append(f"{name}: {', '.join(bits)}")
    return f"{exc.msg}. Done before stopping: {'; '.join(done) if done else 'nothing'}"
