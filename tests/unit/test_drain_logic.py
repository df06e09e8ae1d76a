"""The pure planning logic of node_drain: pod classification, autoscaler rules, selectors,
durations, node selection, safety rules, cordon/uncordon patches and the result helpers."""

from __future__ import annotations

import copy
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
from ansible_collections.mybinder.deploy.plugins.module_utils import _drain as d

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)
USER_SELECTOR = d.parse_label_selector(d.DEFAULT_USER_POD_SELECTOR, "user_pod_selector")


# ------------------------------------------------------------------------------------------------
# builders


def pod(
    name: str = "p",
    ns: str = "prod",
    labels: dict[str, str] | None = None,
    owner: tuple[str, str] | None = ("ReplicaSet", "web-5d9c"),
    owner_uid: str = "uid-owner",
    annotations: dict[str, str] | None = None,
    phase: str = "Running",
    deleting: bool = False,
    volumes: list[dict[str, Any]] | None = None,
    started: str | None = "2024-05-01T10:00:00Z",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "uid": owner_uid, "controller": True}]
    if annotations:
        meta["annotations"] = annotations
    if deleting:
        meta["deletionTimestamp"] = "2024-05-01T11:59:00Z"
    status: dict[str, Any] = {"phase": phase}
    if started:
        status["startTime"] = started
    return {"metadata": meta, "spec": {"nodeName": "user-0", "volumes": volumes or []}, "status": status}


def user_pod(name: str = "jupyter-alice", **kw: Any) -> dict[str, Any]:
    return pod(name, labels={"component": "singleuser-server", "app": "jupyterhub"}, owner=None, **kw)


def build_pod(name: str = "build-abc", **kw: Any) -> dict[str, Any]:
    vols = [{"name": "docker-socket", "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"}}]
    return pod(name, labels={"component": "binderhub-build"}, owner=None, volumes=vols, **kw)


def pdb(name: str, ns: str = "prod", match: dict[str, str] | None = None, allowed: int = 1, **selector: Any):
    sel: dict[str, Any] | None = {"matchLabels": match} if match is not None else None
    if selector:
        sel = selector
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": sel},
        "status": {"disruptionsAllowed": allowed},
    }


def node(
    name: str,
    pool: str | None = "user",
    key: str = "mybinder.org/node-purpose",
    ready: bool = True,
    unschedulable: bool = False,
    created: str = "2024-04-01T00:00:00Z",
    taints: list[dict[str, str]] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = {key: pool} if pool else {}
    return {
        "metadata": {
            "name": name,
            "labels": labels,
            "creationTimestamp": created,
            "resourceVersion": "42",
            "annotations": annotations or {},
        },
        "spec": {"unschedulable": unschedulable, "taints": taints or []},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def classify(p: dict[str, Any], evict: str = "blockers", daemonsets=None, pdbs=()) -> d.PodPlan:
    if daemonsets is None:
        daemonsets = {("kube-system", "fluentd"): "uid-ds"}
    return d.classify_pod(p, evict=evict, user_selector=USER_SELECTOR, daemonsets=daemonsets, pdbs=list(pdbs))


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 merge patch, as the API server applies application/merge-patch+json."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


# ------------------------------------------------------------------------------------------------
# durations and selectors


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        (90, 90),
        ("90", 90),
        ("90s", 90),
        ("30m", 1800),
        ("6h", 21600),
        ("4d", 345600),
        ("1w", 604800),
        ("1d12h", 129600),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("6H", 21600),
        (0, 0),
    ],
)
def test_parse_duration(value: Any, seconds: int | None) -> None:
    assert d.parse_duration(value, "older_than") == seconds


@pytest.mark.parametrize("value", ["4x", "d4", "6 hours", "-5", "1h-30m", "h", True, -3])
def test_parse_duration_rejects_with_a_hint(value: Any) -> None:
    with pytest.raises(d.DrainInputError) as err:
        d.parse_duration(value, "older_than")
    assert str(err.value).startswith("older_than:")
    assert repr(value) in str(err.value)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("component in (singleuser-server,binderhub-build)", {"component": "singleuser-server"}, True),
        ("component in (singleuser-server,binderhub-build)", {"component": "binderhub-build"}, True),
        ("component in (singleuser-server, binderhub-build)", {"component": "hub"}, False),
        ("component in (singleuser-server,binderhub-build)", {}, False),
        ("component notin (hub)", {}, True),
        ("component notin (hub)", {"component": "hub"}, False),
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "b"}, True),
        ("a=b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("a!=b", {"a": "b"}, False),
        ("a", {"a": ""}, True),
        ("!a", {"a": "x"}, False),
        ("!a", {}, True),
        ("mybinder.org/node-purpose=user,kubernetes.io/os=linux", {"mybinder.org/node-purpose": "user"}, False),
        (
            "mybinder.org/node-purpose=user, kubernetes.io/os=linux",
            {"mybinder.org/node-purpose": "user", "kubernetes.io/os": "linux"},
            True,
        ),
        ("", {"anything": "x"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert d.selector_matches(d.parse_label_selector(selector, "selector"), labels) is expected


@pytest.mark.parametrize("selector", ["a in ()", "a=b=c", "a in (x", "=b", "a b", "bad key!=x", "a=" + "x" * 64])
def test_bad_label_selectors_are_refused_with_the_option_name(selector: str) -> None:
    with pytest.raises(d.DrainInputError) as err:
        d.parse_label_selector(selector, "user_pod_selector")
    assert str(err.value).startswith("user_pod_selector:")


def test_pdb_selection() -> None:
    web = pod("web-1", labels={"app": "web", "tier": "front"})
    assert d.pdb_selects(pdb("a", match={"app": "web"}), web)
    assert not d.pdb_selects(pdb("a", match={"app": "api"}), web)
    assert not d.pdb_selects(pdb("a", ns="other", match={"app": "web"}), web)
    assert d.pdb_selects(pdb("all", match={}), web)  # policy/v1: an empty selector selects every pod
    assert not d.pdb_selects(pdb("none", match=None), web)  # no selector selects nothing
    expr = pdb("x", matchExpressions=[{"key": "tier", "operator": "In", "values": ["front", "back"]}])
    assert d.pdb_selects(expr, web)
    expr = pdb("x", matchExpressions=[{"key": "tier", "operator": "DoesNotExist"}])
    assert not d.pdb_selects(expr, web)
    names = [p["metadata"]["name"] for p in d.matching_pdbs(web, [pdb("a", match={"app": "web"}), pdb("b", match={})])]
    assert names == ["a", "b"]


# ------------------------------------------------------------------------------------------------
# pod classification


@pytest.mark.parametrize(
    ("the_pod", "evict", "category", "action", "reason_part"),
    [
        (pod(annotations={d.MIRROR_ANNOTATION: "x"}, owner=("Node", "user-0")), "all", "mirror", "skip", "mirror"),
        (
            pod("fluentd-x", "kube-system", owner=("DaemonSet", "fluentd"), owner_uid="uid-ds"),
            "all",
            "daemonset",
            "skip",
            "DaemonSet",
        ),
        (
            pod("old-x", "kube-system", owner=("DaemonSet", "gone")),
            "blockers",
            "orphaned-daemonset",
            "evict",
            "no longer exists",
        ),
        (
            pod("fluentd-y", "kube-system", owner=("DaemonSet", "fluentd"), owner_uid="uid-old"),
            "blockers",
            "orphaned-daemonset",
            "evict",
            "no longer exists",
        ),
        (pod(deleting=True), "blockers", "terminating", "skip", "already terminating"),
        (user_pod(deleting=True), "all", "terminating", "skip", "already terminating"),
        (pod(phase="Succeeded"), "blockers", "finished", "evict", "finished (Succeeded)"),
        (user_pod(phase="Failed"), "blockers", "finished", "evict", "finished (Failed)"),
        (user_pod(), "blockers", "user", "skip", "user session: left to end"),
        (user_pod(), "all", "user", "evict", "user session (evict: all)"),
        (build_pod(), "blockers", "build", "skip", "image build: left to end"),
        (build_pod(), "all", "build", "evict", "image build (evict: all)"),
        (
            pod("kube-dns-1", "kube-system"),
            "blockers",
            "workload",
            "evict",
            "kube-system pod without a PodDisruptionBudget",
        ),
        (pod("stray", owner=None), "blockers", "bare", "evict", "no controller (bare pod)"),
        (pod("web-1"), "blockers", "workload", "evict", "not a user pod"),
    ],
)
def test_classify(the_pod: dict[str, Any], evict: str, category: str, action: str, reason_part: str) -> None:
    plan = classify(the_pod, evict)
    assert (plan.category, plan.action) == (category, action)
    assert reason_part in plan.reason
    assert plan.uid == the_pod["metadata"]["uid"]


def test_daemonset_pods_stay_and_are_not_orphaned_when_daemonsets_are_unknown() -> None:
    plan = classify(pod("x", owner=("DaemonSet", "whatever")), daemonsets={})
    assert plan.category == "orphaned-daemonset"
    plan = d.classify_pod(
        pod("x", owner=("DaemonSet", "whatever")), evict="all", user_selector=USER_SELECTOR, daemonsets=None
    )
    assert plan.category == "daemonset" and plan.stays_on_empty_node


def test_custom_user_selector() -> None:
    sel = d.parse_label_selector("app=jupyterhub,component=singleuser-server", "user_pod_selector")
    p = user_pod()
    assert d.classify_pod(p, evict="blockers", user_selector=sel, daemonsets={}).action == "skip"
    other = pod("x", labels={"component": "singleuser-server"}, owner=None)
    assert d.classify_pod(other, evict="blockers", user_selector=sel, daemonsets={}).action == "evict"


def test_only_daemonset_and_mirror_pods_stay_on_an_empty_node() -> None:
    stays = {
        classify(pod(annotations={d.MIRROR_ANNOTATION: "x"})).category,
        classify(pod("f", "kube-system", owner=("DaemonSet", "fluentd"), owner_uid="uid-ds")).category,
    }
    assert stays == {"mirror", "daemonset"}
    for p in (user_pod(), build_pod(), pod(deleting=True), pod(owner=None), pod("o", owner=("DaemonSet", "gone"))):
        assert not classify(p).stays_on_empty_node


# ------------------------------------------------------------------------------------------------
# autoscaler rules


def reasons(p: dict[str, Any], pdbs: list[dict[str, Any]] | None = None) -> list[str]:
    return d.autoscaler_reasons(p, d.matching_pdbs(p, pdbs or []))


def test_autoscaler_reasons() -> None:
    assert reasons(pod("web")) == []
    assert reasons(pod("dns", "kube-system")) == ["kube-system pod without a PodDisruptionBudget"]
    dns = pod("dns", "kube-system", labels={"k8s-app": "kube-dns"})
    assert reasons(dns, [pdb("dns", "kube-system", match={"k8s-app": "kube-dns"})]) == []
    assert reasons(dns, [pdb("dns", "kube-system", match={"k8s-app": "kube-dns"}, allowed=0)]) == [
        "PodDisruptionBudget dns allows no disruption now"
    ]
    assert reasons(pod(owner=None)) == ["no controller (bare pod)"]
    assert reasons(build_pod()) == [
        "no controller (bare pod)",
        "local storage: hostPath volume docker-socket (/var/run/docker.sock)",
    ]
    disk = pod(volumes=[{"name": "cache", "emptyDir": {}}])
    memory = pod(volumes=[{"name": "shm", "emptyDir": {"medium": "Memory"}}])
    assert reasons(disk) == ["local storage: emptyDir volume cache"]
    assert reasons(memory) == []
    assert reasons(pod(annotations={d.SAFE_TO_EVICT_ANNOTATION: "false"})) == [
        f"annotated {d.SAFE_TO_EVICT_ANNOTATION}=false"
    ]
    # safe-to-evict=true makes the autoscaler ignore local storage and a missing controller
    assert reasons(build_pod(annotations={d.SAFE_TO_EVICT_ANNOTATION: "true"})) == []
    assert reasons(pod("f", owner=("DaemonSet", "fluentd"))) == []
    assert reasons(pod(annotations={d.MIRROR_ANNOTATION: "x"}, owner=None)) == []
    assert reasons(pod(phase="Succeeded", owner=None)) == []


# ------------------------------------------------------------------------------------------------
# user pods and estimates


def test_user_pod_info_and_estimate() -> None:
    young = user_pod("young", started="2024-05-01T11:00:00Z")
    old = user_pod("old", started="2024-05-01T05:00:00Z")  # started 7 h ago: past a 6 h max age
    infos = [d.user_pod_info(p, classify(p), 6 * 3600, NOW) for p in (young, old)]
    assert infos[0]["expected_end"] == "2024-05-01T17:00:00Z"
    assert infos[0]["age"] == "60m00s" and infos[0]["age_seconds"] == 3600 and not infos[0]["overdue"]
    assert infos[1]["expected_end"] == "2024-05-01T11:00:00Z" and infos[1]["overdue"]
    plans = [
        classify(young),
        classify(old),
        classify(pod("f", "kube-system", owner=("DaemonSet", "fluentd"), owner_uid="uid-ds")),
    ]
    assert d.estimate_empty_at(plans, infos, NOW) == "2024-05-01T17:00:00Z"
    # only the overdue pod left: expected any moment, i.e. now
    assert d.estimate_empty_at([plans[1]], [infos[1]], NOW) == d.iso(NOW)
    # nothing but DaemonSet pods: empty now
    assert d.estimate_empty_at([plans[2]], [], NOW) == d.iso(NOW)
    # a blocker left: unknown
    assert d.estimate_empty_at([*plans, classify(pod("web"))], infos, NOW) is None


def test_user_pod_without_start_time_uses_creation() -> None:
    p = user_pod(started=None)
    p["metadata"]["creationTimestamp"] = "2024-05-01T09:00:00Z"
    assert d.user_pod_info(p, classify(p), 3600, NOW)["expected_end"] == "2024-05-01T10:00:00Z"


# ------------------------------------------------------------------------------------------------
# node selection


NODES = [
    node("user-a", created="2024-04-01T00:00:00Z"),
    node("user-b", created="2024-04-20T00:00:00Z"),
    node("user-c", created="2024-04-29T00:00:00Z"),
    node("core-0", pool="core", created="2024-01-01T00:00:00Z"),
]
USER_POOL = d.parse_label_selector("mybinder.org/node-purpose=user", "selector")


def names(nodes: list[dict[str, Any]]) -> list[str]:
    return [d.node_name(n) for n in nodes]


def test_select_by_name_keeps_order_free_and_unique() -> None:
    got = d.select_nodes(
        NODES, names=["user-b", "user-a", "user-b"], selector=None, older_than=None, max_nodes=None, now=NOW
    )
    assert names(got) == ["user-a", "user-b"]


def test_select_unknown_name_lists_the_existing_nodes() -> None:
    with pytest.raises(d.DrainInputError) as err:
        d.select_nodes(NODES, names=["user-x"], selector=None, older_than=None, max_nodes=None, now=NOW)
    assert "user-x not found" in str(err.value) and "core-0, user-a, user-b, user-c" in str(err.value)


def test_select_by_pool_age_and_count_oldest_first() -> None:
    got = d.select_nodes(NODES, names=None, selector=USER_POOL, older_than=None, max_nodes=None, now=NOW)
    assert names(got) == ["user-a", "user-b", "user-c"]
    got = d.select_nodes(NODES, names=None, selector=USER_POOL, older_than=4 * 86400, max_nodes=None, now=NOW)
    assert names(got) == ["user-a", "user-b"]
    got = d.select_nodes(NODES, names=None, selector=USER_POOL, older_than=None, max_nodes=1, now=NOW)
    assert names(got) == ["user-a"]


def test_max_nodes_prefers_nodes_already_retired_by_us() -> None:
    nodes = copy.deepcopy(NODES)
    nodes[2]["spec"]["taints"] = [{"key": d.RETIRING_TAINT_KEY, "value": "true", "effect": "NoSchedule"}]
    got = d.select_nodes(nodes, names=None, selector=USER_POOL, older_than=None, max_nodes=2, now=NOW)
    assert names(got) == ["user-a", "user-c"]


# ------------------------------------------------------------------------------------------------
# safety rules


def test_last_schedulable_node_of_a_pool_is_refused() -> None:
    nodes = [node("user-a"), node("user-b"), node("core-0", pool="core")]
    assert d.last_node_problems(nodes, {"user-a"}, d.DEFAULT_POOL_LABELS) == []
    problems = d.last_node_problems(nodes, {"user-a", "user-b"}, d.DEFAULT_POOL_LABELS)
    assert len(problems) == 1
    assert "user-a, user-b would leave pool mybinder.org/node-purpose=user without a schedulable node" in problems[0]
    assert d.last_node_problems(nodes, {"core-0"}, d.DEFAULT_POOL_LABELS)


@pytest.mark.parametrize(
    "other",
    [
        node("user-b", ready=False),
        node("user-b", unschedulable=True),
        node("user-b", taints=[{"key": d.RETIRING_TAINT_KEY, "value": "true", "effect": "NoSchedule"}]),
    ],
    ids=["not-ready", "cordoned", "retiring"],
)
def test_other_nodes_that_take_no_pods_do_not_count(other: dict[str, Any]) -> None:
    problems = d.last_node_problems([node("user-a"), other], {"user-a"}, d.DEFAULT_POOL_LABELS)
    assert "its other nodes user-b are not schedulable" in problems[0]


def test_pools_by_the_jupyterhub_label_and_unlabelled_nodes() -> None:
    hub = "hub.jupyter.org/node-purpose"
    nodes = [node("a", key=hub), node("b", key=hub, pool="core"), node("x", pool=None), node("y", pool=None)]
    assert d.last_node_problems(nodes, {"a"}, d.DEFAULT_POOL_LABELS)[0].count(f"{hub}=user") == 1
    assert d.last_node_problems(nodes, {"x"}, d.DEFAULT_POOL_LABELS) == []
    assert "(no pool label)" in d.last_node_problems(nodes, {"x", "y"}, d.DEFAULT_POOL_LABELS)[0]
    # a user-defined pool label (upstream's live config used mybinder.org/pool-type)
    custom = [
        node("p", key="mybinder.org/pool-type", pool="users"),
        node("q", key="mybinder.org/pool-type", pool="users"),
    ]
    assert d.last_node_problems(custom, {"p"}, ["mybinder.org/pool-type"]) == []
    assert d.last_node_problems(custom, {"p", "q"}, ["mybinder.org/pool-type"])


def test_critical_workloads_left_only_on_cordoned_nodes() -> None:
    def hub_pod(name: str, on: str, **kw: Any) -> dict[str, Any]:
        p = pod(name, labels={"component": "hub"}, **kw)
        p["spec"]["nodeName"] = on
        return p

    one = {"component=hub": [hub_pod("hub-1", "core-0")]}
    problems = d.critical_pod_problems(one, unschedulable_after={"core-0"}, newly_cordoned={"core-0"})
    assert len(problems) == 1 and "hub-1 on core-0" in problems[0] and "namespace prod" in problems[0]
    # already cordoned earlier, not by this run: not this run's doing
    assert d.critical_pod_problems(one, unschedulable_after={"core-0"}, newly_cordoned={"user-0"}) == []
    # one replica elsewhere stays reachable
    two = {"component=hub": [hub_pod("hub-1", "core-0"), hub_pod("hub-2", "core-1")]}
    assert d.critical_pod_problems(two, unschedulable_after={"core-0"}, newly_cordoned={"core-0"}) == []
    # a terminating replica elsewhere does not count as reachable
    two = {"component=hub": [hub_pod("hub-1", "core-0"), hub_pod("hub-2", "core-1", deleting=True)]}
    assert d.critical_pod_problems(two, unschedulable_after={"core-0"}, newly_cordoned={"core-0"})
    # per namespace: staging's hub elsewhere does not save prod's
    mixed = {"component=hub": [hub_pod("hub-1", "core-0"), hub_pod("hub-s", "core-1", ns="staging")]}
    problems = d.critical_pod_problems(mixed, unschedulable_after={"core-0"}, newly_cordoned={"core-0"})
    assert len(problems) == 1 and "namespace prod" in problems[0]


# ------------------------------------------------------------------------------------------------
# cordon and uncordon patches


def record(n: dict[str, Any]) -> dict[str, Any]:
    return json.loads(n["metadata"]["annotations"][d.CORDON_ANNOTATION])


def test_cordon_marks_a_schedulable_node_and_keeps_other_taints() -> None:
    jupyter_taint = {"key": "hub.jupyter.org/dedicated", "value": "user", "effect": "NoSchedule"}
    n = node("user-a", taints=[jupyter_taint])
    patch, status = d.cordon_patch(n, by="alice@laptop", reason="rotation", now=NOW)
    assert status == "cordoned"
    assert patch["metadata"]["resourceVersion"] == "42"  # guarded against concurrent changes
    after = merge(n, patch)
    assert after["spec"]["unschedulable"] is True
    assert after["spec"]["taints"] == [
        jupyter_taint,
        {"key": d.RETIRING_TAINT_KEY, "value": "true", "effect": "NoSchedule"},
    ]
    assert record(after) == {
        "by": "alice@laptop",
        "at": "2024-05-01T12:00:00Z",
        "tool": "mybinder.deploy.node_drain",
        "unschedulable_before": False,
        "reason": "rotation",
    }
    assert d.marked_by_us(after) and not d.schedulable(after)
    assert d.cordon_patch(after, by="bob", reason=None, now=NOW) == (None, "already")


def test_cordon_records_a_previous_cordon_but_not_the_image_cleaners() -> None:
    by_kubectl = node("user-a", unschedulable=True)
    patch, status = d.cordon_patch(by_kubectl, by="me", reason=None, now=NOW)
    assert status == "cordoned" and record(merge(by_kubectl, patch))["unschedulable_before"] is True
    assert "unschedulable" not in patch["spec"]
    by_cleaner = node("user-a", unschedulable=True, annotations={d.IMAGE_CLEANER_ANNOTATION: "true"})
    patch, _ = d.cordon_patch(by_cleaner, by="me", reason=None, now=NOW)
    assert record(merge(by_cleaner, patch))["unschedulable_before"] is False


@pytest.mark.parametrize("undo", ["unschedulable", "taint", "both"])
def test_cordon_is_reasserted_when_something_undid_it(undo: str) -> None:
    n = node("user-a")
    patch, _ = d.cordon_patch(n, by="me", reason=None, now=NOW)
    cordoned = merge(n, patch)
    undone = copy.deepcopy(cordoned)
    if undo in ("unschedulable", "both"):
        undone["spec"]["unschedulable"] = False  # what BinderHub's image cleaner does
    if undo in ("taint", "both"):
        undone["spec"]["taints"] = []
    patch, status = d.cordon_patch(undone, by="someone-else", reason=None, now=NOW + datetime.timedelta(hours=1))
    assert status == "reasserted"
    again = merge(undone, patch)
    assert again["spec"]["unschedulable"] is True and d.has_retiring_taint(again)
    assert record(again) == record(cordoned)  # who and when of the first cordon are kept


def test_uncordon_removes_exactly_what_cordon_added() -> None:
    jupyter_taint = {"key": "hub.jupyter.org/dedicated", "value": "user", "effect": "NoSchedule"}
    n = node("user-a", taints=[jupyter_taint], annotations={"other": "x"})
    cordoned = merge(n, d.cordon_patch(n, by="me", reason=None, now=NOW)[0])
    patch, status, warning = d.uncordon_patch(cordoned, force=False)
    assert status == "uncordoned" and warning is None
    back = merge(cordoned, patch)
    back["metadata"]["resourceVersion"] = "42"
    assert back == n
    assert d.uncordon_patch(back, force=False) == (None, "schedulable", None)


def test_uncordon_keeps_someone_elses_earlier_cordon_unless_forced() -> None:
    n = node("user-a", unschedulable=True)
    cordoned = merge(n, d.cordon_patch(n, by="me", reason=None, now=NOW)[0])
    patch, status, warning = d.uncordon_patch(cordoned, force=False)
    after = merge(cordoned, patch)
    assert status == "kept-cordoned" and "already cordoned by someone else" in warning
    assert after["spec"]["unschedulable"] is True and not d.marked_by_us(after)
    patch, status, _ = d.uncordon_patch(cordoned, force=True)
    assert status == "uncordoned" and merge(cordoned, patch)["spec"]["unschedulable"] is False


@pytest.mark.parametrize(
    ("annotations", "who"),
    [({}, "someone else"), ({d.IMAGE_CLEANER_ANNOTATION: "true"}, "BinderHub's image cleaner")],
)
def test_uncordon_refuses_nodes_it_did_not_cordon(annotations: dict[str, str], who: str) -> None:
    n = node("user-a", unschedulable=True, annotations=annotations)
    with pytest.raises(d.DrainInputError) as err:
        d.uncordon_patch(n, force=False)
    assert f"node user-a was cordoned by {who}" in str(err.value) and "force: true" in str(err.value)
    patch, status, warning = d.uncordon_patch(n, force=True)
    assert status == "uncordoned" and patch["spec"] == {"unschedulable": False} and who in warning


# ------------------------------------------------------------------------------------------------
# messages and the table


def test_pdb_name_from_a_429() -> None:
    body = {
        "kind": "Status",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "reason": "TooManyRequests",
        "details": {
            "causes": [
                {
                    "reason": "DisruptionBudget",
                    "message": "The disruption budget web-pdb needs 1 healthy pods and has 1 currently",
                }
            ]
        },
        "code": 429,
    }
    assert d.pdb_from_429(body) == "web-pdb"
    assert d.pdb_from_429({"message": "Too many requests, please try again later."}) is None
    assert d.pdb_from_429(None) is None


def test_multiple_pdb_message_names_them() -> None:
    p = pod("web-1", labels={"app": "web"})
    plan = classify(p, pdbs=[pdb("a", match={"app": "web"}), pdb("b", match={})])
    msg = d.multiple_pdb_message(plan)
    assert "prod/web-1 (a, b)" in msg and "HTTP 500" in msg and "on_timeout: force" in msg


def test_summary_table() -> None:
    lines = d.summary_table(
        {
            "user-b": {
                "cordoned": True,
                "cordoned_by_us": True,
                "evicted": [{}] * 12,
                "skipped": [{}] * 3,
                "user_pods": [{}] * 3,
                "estimated_empty_at": "2024-05-01T17:00:00Z",
                "elapsed": 3.21,
            },
            "user-a": {
                "cordoned": True,
                "cordoned_by_us": True,
                "reasserted": True,
                "blocked": [{}],
                "autoscaler_blockers": [{}],
                "estimated_empty_at": None,
                "elapsed": 300.0,
            },
        }
    )
    assert lines[0].split() == [
        "NODE",
        "CORDON",
        "EVICTED",
        "BLOCKED",
        "SKIPPED",
        "USER",
        "PODS",
        "BLOCKERS",
        "LEFT",
        "EMPTY",
        "BY",
        "ELAPSED",
    ]
    assert lines[1].split() == ["user-a", "re-asserted", "0", "1", "0", "0", "1", "unknown", "300.0s"]
    assert lines[2].split() == ["user-b", "ours", "12", "0", "3", "3", "0", "2024-05-01T17:00:00Z", "3.2s"]
    assert len({len(line) for line in lines[1:]}) >= 1 and lines[0].index("EVICTED") == lines[1].index("0")
