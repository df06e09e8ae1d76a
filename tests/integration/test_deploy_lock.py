"""The deploy lock against the real local cluster (issue 19, deliverables 1 and 3): one deploy of a
release at a time, held as a coordination.k8s.io Lease; concurrent deploys never undo each other;
an operator's own `helm upgrade --wait` is waited for, not rolled back; a deploy killed before its
rollout was confirmed is finished by the next one.

Each test deploys its own release into its own namespace with deploy.yml (the mybinder stage), from
the small chart of deploy_testlib, as test_deploy.py does.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime

import pytest
from deploy_testlib import deploy, deploy_until, env, finish, helm, history, overrides, small_chart, start_deploy
from test_deploy import STAGE, wait_ready

from conftest import ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

NOWHERE = {"nodeSelector": {"mybinder.org/node-purpose": "nowhere"}}
OPERATORS_WEB = {"replicas": 2, "message": "operator", "token": "t", "cpu": "1000", "nodeSelector": {}}


def lease_name(namespace: str) -> str:
    return f"mybinder-deploy.{namespace}.{namespace}"


def lease(cluster, namespace: str) -> dict:
    return cluster.get_json("lease", lease_name(namespace), "-n", "kube-system")


def hold_lease(cluster, namespace: str, holder: str, duration: int = 300) -> None:
    """Another deploy's lock, as that deploy's release_lock writes it (a live holder)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    doc = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": lease_name(namespace), "namespace": "kube-system"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration, "acquireTime": now, "renewTime": now},
    }
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(doc))


def free_lease(cluster, namespace: str) -> None:
    cluster.kubectl("delete", "lease", lease_name(namespace), "-n", "kube-system")


def test_a_held_lock_refuses_or_is_waited_for_and_check_mode_never_takes_it(cluster, namespace, tmp_path):
    chart = small_chart(tmp_path / "chart")
    assert deploy(tmp_path, overrides(tmp_path, namespace, chart), *STAGE).rc == 0
    assert not lease(cluster, namespace)["spec"].get("holderIdentity"), "a finished deploy gives the lock back"
    hold_lease(cluster, namespace, "alice@ci-runner-7 (ansible-playbook pid 4242)")

    refused = deploy(
        tmp_path, overrides(tmp_path, namespace, chart, {"web": {"message": "two"}}, mybinder_lock_timeout=0), *STAGE
    )
    assert refused.rc != 0
    assert f"release {namespace} (namespace {namespace}) is being deployed by another run" in refused.output
    assert "held by alice@ci-runner-7 (ansible-playbook pid 4242) since" in refused.output
    assert [h["status"] for h in history(cluster, namespace, namespace)] == ["deployed"]
    assert cluster.get_json("configmap", "web-config", "-n", namespace)["data"]["message"] == "hello"

    # --check never takes the lock: it says who holds it and predicts as usual
    check = deploy(tmp_path, overrides(tmp_path, namespace, chart, {"web": {"message": "two"}}), *STAGE, "--check")
    assert check.rc == 0, check.output
    assert "is being deployed by alice@ci-runner-7" in check.output and check.changed >= 1
    assert lease(cluster, namespace)["spec"]["holderIdentity"].startswith("alice@")

    # A deploy that may wait does, saying for whom, and goes on once the other gives the lock back.
    waiting = start_deploy(
        tmp_path,
        overrides(tmp_path, namespace, chart, {"web": {"message": "two"}}, mybinder_lock_timeout=120),
        *STAGE,
    )
    time.sleep(12)
    assert waiting.poll() is None, "the deploy did not wait for the lock"
    free_lease(cluster, namespace)
    res = finish(waiting)
    assert res.rc == 0, res.output
    assert "deploy lock: " in res.output and "the deploy lock is held by alice@ci-runner-7" in res.output
    assert cluster.get_json("configmap", "web-config", "-n", namespace)["data"]["message"] == "two"
    spec = lease(cluster, namespace)["spec"]
    assert not spec.get("holderIdentity")


@pytest.mark.parametrize("lock_timeout", [0, 600], ids=["refuse", "wait"])
def test_three_concurrent_deploys_never_undo_each_other(cluster, namespace, tmp_path, lock_timeout):
    chart = small_chart(tmp_path / "chart")
    assert deploy(tmp_path, overrides(tmp_path, namespace, chart), *STAGE).rc == 0

    messages = ["one", "two", "three"]
    for m in messages:
        (tmp_path / m).mkdir()
    procs = [
        start_deploy(
            tmp_path / m,
            overrides(tmp_path / m, namespace, chart, {"web": {"message": m}}, mybinder_lock_timeout=lock_timeout),
            *STAGE,
        )
        for m in messages
    ]
    runs = [finish(p) for p in procs]
    won = [m for m, r in zip(messages, runs, strict=True) if r.rc == 0]
    for r in runs:
        assert r.rc == 0 or "is being deployed by another run" in r.output, r.output
        assert "Rolled back" not in r.output and "another operation" not in r.output, r.output
        assert "was stuck in" not in r.output, r.output
    assert won, "no deploy succeeded"
    if lock_timeout:
        assert len(won) == 3, "with a lock timeout every deploy waits for its turn"
    hist = history(cluster, namespace, namespace)
    assert [h["status"] for h in hist].count("deployed") == 1
    assert all(h["status"] in ("deployed", "superseded") for h in hist), hist
    assert len(hist) == 1 + len(won), "each successful deploy made exactly one revision"
    live = cluster.get_json("configmap", "web-config", "-n", namespace)["data"]["message"]
    assert live in won
    if len(won) == 1:
        assert live == won[0]
    wait_ready(cluster, namespace, "web", 2)


def test_an_operators_helm_upgrade_in_progress_is_waited_for_not_rolled_back(cluster, namespace, tmp_path):
    chart = small_chart(tmp_path / "chart")
    assert deploy(tmp_path, overrides(tmp_path, namespace, chart), *STAGE).rc == 0
    # The operator's own upgrade: its pods never schedule (no node has 1000 CPUs), helm waits 25 s,
    # then marks it failed. (Our change sets the request again: helm patches from the last deployed
    # revision's manifest, so a value equal to that one would leave the failed revision's in place.)
    operator = subprocess.Popen(
        [
            str(cluster.bin_dir / "helm"),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "upgrade",
            namespace,
            str(chart),
            "-n",
            namespace,
            "--reuse-values",
            "--set-json",
            "web=" + json.dumps(OPERATORS_WEB),
            "--wait",
            "--timeout",
            "25s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while history(cluster, namespace, namespace)[-1]["status"] != "pending-upgrade":
        assert time.monotonic() < deadline, "helm never made its pending revision"
        time.sleep(0.3)

    res = deploy(tmp_path, overrides(tmp_path, namespace, chart, {"web": {"message": "ours", "cpu": "20m"}}), *STAGE)
    operator.communicate(timeout=60)
    assert res.rc == 0, res.output
    assert "a helm run outside this deploy is working on it" in res.output
    assert "was stuck in" not in res.output, "the operator's live helm run was treated as abandoned"
    hist = history(cluster, namespace, namespace)
    # helm itself ended the operator's revision (failed); the deploy came after it
    assert [h["status"] for h in hist] == ["superseded", "failed", "deployed"], hist
    assert not any(h["description"].startswith("Rollback") for h in hist), hist
    assert cluster.get_json("configmap", "web-config", "-n", namespace)["data"]["message"] == "ours"


def test_a_deploy_killed_before_its_rollout_was_confirmed_is_rolled_back_by_the_next(cluster, namespace, tmp_path):
    chart = small_chart(tmp_path / "chart")
    short = {"mybinder_lock_duration": 10}
    assert deploy(tmp_path, overrides(tmp_path, namespace, chart, **short), *STAGE).rc == 0

    bad = overrides(tmp_path, namespace, chart, {"web": NOWHERE}, mybinder_rollout_timeout=20, **short)
    out = deploy_until(tmp_path, bad, "rollout: ", *STAGE)
    assert f"waiting for Deployment {namespace}/web" in out
    # Killed mid-wait: revision 2 deployed by helm, its rollout never confirmed, the lock not given back.
    assert history(cluster, namespace, namespace)[-1]["status"] == "deployed"
    note = lease(cluster, namespace)["metadata"]["annotations"]["mybinder.org/unconfirmed-rollout"]
    assert json.loads(note) == {"revision": 2, "replaces": 1}

    # The same bad change again: nothing new to upgrade, but the next run finishes the killed one's
    # work - it takes the expired lock over, waits for revision 2 and rolls it back to revision 1.
    res = deploy(tmp_path, bad, *STAGE)
    assert res.rc != 0
    assert "took over the deploy lock" in res.output and "which stopped renewing it" in res.output
    assert "revision 2 (replacing 1) was never confirmed to roll out" in res.output
    assert "Rolled back to revision 1 (now revision 3)" in res.output
    hist = history(cluster, namespace, namespace)
    assert [h["status"] for h in hist] == ["superseded", "superseded", "deployed"]
    assert hist[-1]["description"] == "Rollback to 1"
    assert "mybinder.org/unconfirmed-rollout" not in (lease(cluster, namespace)["metadata"].get("annotations") or {})
    wait_ready(cluster, namespace, "web", 2)

    # and a good deploy after that is the usual no-op
    again = deploy(tmp_path, overrides(tmp_path, namespace, chart, **short), *STAGE)
    assert again.rc == 0 and again.changed == 0, again.output


def test_a_rollback_never_undoes_another_runs_revision(cluster, namespace, tmp_path):
    chart = small_chart(tmp_path / "chart")
    assert deploy(tmp_path, overrides(tmp_path, namespace, chart), *STAGE).rc == 0
    assert helm(cluster, "upgrade", namespace, str(chart), "-n", namespace, "--reuse-values").returncode == 0
    # revision 2 is not this run's: a rollback from "its" revision 1 is refused
    res = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "ansible"),
            "localhost",
            "-m",
            "mybinder.deploy.helm_rollback",
            "-a",
            json.dumps(
                {
                    "name": namespace,
                    "namespace": namespace,
                    "revision": 1,
                    "from_revision": 1,
                    "binary_path": str(cluster.bin_dir / "helm"),
                    "kubeconfig": str(cluster.kubeconfig),
                }
            ),
        ],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0
    assert "was not rolled back: revision 2 serves, made after revision 1 of this run" in res.stdout, res.stdout
    assert [h["status"] for h in history(cluster, namespace, namespace)] == ["superseded", "deployed"]


def test_a_secret_values_file_that_lost_keys_the_release_has_is_refused(cluster, namespace, tmp_path):
    chart = small_chart(tmp_path / "chart")
    secret = tmp_path / "secret" / "config" / "local.yaml"
    secret.parent.mkdir(parents=True)

    def run(content: dict, **more):
        secret.write_text(json.dumps(content))
        extra = overrides(
            tmp_path, namespace, chart, mybinder_secret_values_file=str(secret), secrets_required_files=[str(secret)]
        )
        return deploy(tmp_path, dict(extra, **more), *STAGE)

    full = {"web": {"token": "tok-5f3a9"}, "github": {"accessToken": "gh-77c1d"}}
    first = run(full)
    assert first.rc == 0, first.output
    assert json.loads(lease(cluster, namespace)["metadata"]["annotations"]["mybinder.org/secret-value-keys"]) == [
        "github.accessToken",
        "web.token",
    ]

    lost = {"web": {"token": "tok-5f3a9"}}
    refused = run(lost)
    assert refused.rc != 0
    assert "lacks keys that release" in refused.output and "github.accessToken" in refused.output
    assert "Nothing was changed." in refused.output and "ignored=0" in refused.output, refused.output
    assert "gh-77c1d" not in refused.output and "tok-5f3a9" not in refused.output
    assert [h["status"] for h in history(cluster, namespace, namespace)] == ["deployed"]
    assert not lease(cluster, namespace)["spec"].get("holderIdentity"), "the refusal gave the lock back"

    # check mode predicts the refusal; an operator who means it lists the key
    secret.write_text(json.dumps(lost))
    check = deploy(
        tmp_path,
        overrides(
            tmp_path, namespace, chart, mybinder_secret_values_file=str(secret), secrets_required_files=[str(secret)]
        ),
        *STAGE,
        "--check",
    )
    assert check.rc != 0 and "github.accessToken" in check.output
    allowed = run(lost, mybinder_secret_keys_removed=["github.accessToken"])
    assert allowed.rc == 0, allowed.output
    assert run(lost).rc == 0, "the record now holds what was deployed"
