"""The pure logic of mybinder.deploy.ingress_placement: which nodes the controller can use, where
its pods run, which settings the nodes cannot satisfy, and when cordoned nodes leave too few
places. The module itself runs against the real API server in tests/integration/test_ingress_role.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
from ansible_collections.mybinder.deploy.plugins.module_utils._ingress_placement import (
    all_on_cordoned_message,
    capacity_warning,
    node_view,
    placement,
    setting_problems,
)

CORE = {"kubernetes.io/os": "linux", "pool": "core"}


def node(name: str, cordoned: bool = False, **labels: str) -> dict:
    spec = {"unschedulable": True} if cordoned else {}
    return {"metadata": {"name": name, "labels": {"kubernetes.io/os": "linux", **labels}}, "spec": spec}


def pod(name: str, on: str | None, deleting: bool = False) -> dict:
    meta = {"name": name, **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})}
    return {"metadata": meta, "spec": {"nodeName": on} if on else {}, "status": {"phase": "Running"}}


def params(**kw) -> dict:
    base = {
        "variable_prefix": "ingress_",
        "pinned_node": "",
        "anti_affinity": "preferred",
        "replicas": 2,
        "node_selector": CORE,
        "cordon_check": "warn",
        "moment": "before the upgrade",
        "namespace": "ingress-nginx",
    }
    return {**base, **kw}


NODES = [node("core-0", pool="core"), node("core-1", cordoned=True, pool="core"), node("user-0", pool="user")]


def test_only_nodes_with_every_selector_label_match():
    assert node_view(NODES, CORE) == [{"name": "core-0", "cordoned": False}, {"name": "core-1", "cordoned": True}]
    assert [n["name"] for n in node_view(NODES, {})] == ["core-0", "core-1", "user-0"]
    assert node_view(NODES, {"pool": "gpu"}) == []


def test_placement_leaves_out_unscheduled_and_deleted_pods_and_flags_cordoned_nodes():
    where = placement([pod("a", "core-1"), pod("b", None), pod("c", "core-0", deleting=True)], NODES, "now")
    assert where["pods"] == [{"name": "a", "node": "core-1", "phase": "Running", "cordoned": True}]
    assert where["cordoned_nodes"] == ["core-1"] and where["all_on_cordoned"] is True
    assert placement([pod("a", "core-1"), pod("d", "core-0")], NODES, "now")["all_on_cordoned"] is False
    assert placement([], NODES, "now")["all_on_cordoned"] is False  # no pods: nothing to lose


def test_a_missing_pinned_node_and_an_impossible_strict_spread_are_both_named():
    matching = node_view(NODES, CORE)
    problems = setting_problems(
        params(pinned_node="ovh-9", anti_affinity="required", replicas=3), ["core-0", "core-1", "user-0"], matching
    )
    assert len(problems) == 2
    assert problems[0].startswith("ingress_pinned_node=ovh-9 is not a node of this cluster (nodes: core-0, core-1")
    assert "each of the 3 replicas on its own node, but only 2 node(s) match" in problems[1]
    assert "(core-0, core-1)" in problems[1] and "Lower ingress_replicas" in problems[1]
    assert setting_problems(params(anti_affinity="required", replicas=2), ["core-0"], matching) == []


def test_cordoned_nodes_are_worth_a_warning_only_when_they_leave_too_few_places():
    matching = node_view(NODES, CORE)  # core-0 free, core-1 cordoned
    assert capacity_warning(params(), matching) is None  # a free node is left
    strict = capacity_warning(params(anti_affinity="required", replicas=2), matching)
    assert strict and strict.startswith("only 1 schedulable node(s) match") and "cordoned: core-1" in strict
    assert "some new controller pods would stay Pending until a node is uncordoned" in strict
    none_free = capacity_warning(params(), [{"name": "core-1", "cordoned": True}])
    assert none_free and "New controller pods cannot start" in none_free
    assert capacity_warning(params(cordon_check="ignore"), [{"name": "core-1", "cordoned": True}]) is None


def test_the_all_on_cordoned_message_names_pods_nodes_and_the_way_out():
    where = placement([pod("ctl-1", "core-1")], NODES, "after the upgrade")
    warn = all_on_cordoned_message(params(moment="after the upgrade"), where)
    assert warn.startswith("(after the upgrade): every ingress-nginx controller pod sits on a cordoned node")
    assert "ctl-1 on core-1" in warn and "kubectl -n ingress-nginx rollout restart deployment" in warn
    fail = all_on_cordoned_message(params(cordon_check="fail"), where)
    assert "(or set ingress_cordon_check: warn to continue anyway)" in fail
