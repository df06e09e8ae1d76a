"""node_drain refuses bad input with a message naming the option and the fix, before it connects
to any cluster (these tests point it at a kubeconfig that does not exist: reaching it would fail
with a connection error instead)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
from ansible.module_utils.testing import patch_module_args
from ansible_collections.mybinder.deploy.plugins.modules import node_drain

NOWHERE = "/nonexistent/kubeconfig"


@pytest.fixture
def run(capsys):
    def _run(**args: Any) -> dict[str, Any]:
        args.setdefault("kubeconfig", NOWHERE)
        with patch_module_args(args), pytest.raises(SystemExit):
            node_drain.main()
        return json.loads(capsys.readouterr().out)

    return _run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": ["user-0"], "older_than": "4x"}, "older_than: '4x' is not a duration"),
        ({"name": ["user-0"], "max_pod_age": "six hours"}, "max_pod_age: 'six hours' is not a duration"),
        ({"selector": "pool in (user"}, "selector: 'pool in (user' in"),
        ({"selector": " "}, "selector: an empty selector would select every node"),
        ({"name": ["user-0"], "user_pod_selector": "component in ()"}, "user_pod_selector:"),
        ({"name": ["user-0"], "critical_pod_selectors": [""]}, "critical_pod_selectors[0]: an empty selector"),
        ({"name": ["user-0"], "timeout": 0}, "timeout: 0 must be a positive number of seconds"),
        ({"name": ["user-0"], "parallelism": 0}, "parallelism: 0 must be at least 1"),
        ({"name": ["user-0"], "grace_period": -1}, "grace_period: must be 0 (immediately) or more"),
        ({"name": ["user-0"], "max_nodes": 0}, "max_nodes: must be at least 1"),
        ({"name": ["user-0"], "delete_node": True}, "delete_node: true needs state: drained and wait: empty"),
        ({"name": ["user-0"], "delete_node": True, "wait": "empty", "state": "cordoned"}, "delete_node: true needs"),
        ({"name": ["user-0"], "pool_labels": []}, "pool_labels: give at least one node label key"),
        ({"name": ["user-0"], "selector": "a=b"}, "mutually exclusive"),
        ({}, "one of the following is required: name, selector"),
        ({"name": ["user-0"], "evict": "some"}, "value of evict must be one of: blockers, all"),
        ({"name": ["user-0"], "on_timeout": "kill"}, "value of on_timeout must be one of: fail, force, continue"),
    ],
)
def test_bad_input_fails_before_connecting(run, args: dict[str, Any], message: str) -> None:
    result = run(**args)
    assert result["failed"] is True
    assert message in result["msg"], result["msg"]
    assert result.get("changed", False) is False


def test_good_input_gets_as_far_as_connecting(run) -> None:
    result = run(name=["user-0"], wait="empty", delete_node=True, older_than="4d", max_pod_age=21600)
    assert result["failed"] is True and result["changed"] is False
    assert "could not load Kubernetes credentials" in result["msg"]
    assert "Set kubeconfig (or K8S_AUTH_KUBECONFIG)" in result["msg"]
