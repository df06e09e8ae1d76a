"""deploy.yml and the mybinder role against the real local cluster (issue 4): only real changes
are deployed, check mode changes nothing, bad input changes nothing, failed rollouts are rolled
back, and interrupted deploys are recovered by the next one.

Each test deploys its own release into its own namespace with deploy.yml (tags: the mybinder stage;
preflight and cluster access always run), from a small chart so that the tests stay quick; the
meta chart itself is deployed by test_deploy_meta_chart.py and the molecule scenarios.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from deploy_testlib import deploy, deploy_until, helm, history, overrides, pods, small_chart

from conftest import ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

STAGE = ("--tags", "mybinder")


def wait_ready(cluster, namespace: str, name: str, want: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dep = cluster.get_json("deployment", name, "-n", namespace)
        if dep["status"].get("readyReplicas", 0) == want and dep["status"].get("updatedReplicas", 0) == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"deployment {namespace}/{name} did not get {want} ready replicas")


def test_only_real_changes_are_deployed_and_check_mode_changes_nothing(cluster, namespace, tmp_path):
    chart = small_chart(tmp_path / "chart")
    extra = overrides(tmp_path, namespace, chart, {"web": {"message": "one"}})

    first = deploy(tmp_path, extra, *STAGE)
    assert first.rc == 0, first.output
    assert first.host()["changed"] >= 1
    assert [h["status"] for h in history(cluster, namespace, namespace)] == ["deployed"]
    # the rollout wait said what it waited for (or found everything ready at once)
    assert "Wait for the rollout of every workload of the release" in first.output

    second = deploy(tmp_path, extra, *STAGE)
    assert second.rc == 0, second.output
    assert second.changed == 0, second.output
    assert len(history(cluster, namespace, namespace)) == 1

    # A template edit without a chart version bump, plus a changed secret value.
    tpl = chart / "templates" / "web.yaml"
    tpl.write_text(tpl.read_text().replace("data:\n  message:", "data:\n  edited: changed-by-the-test\n  message:", 1))
    extra = overrides(tmp_path, namespace, chart, {"web": {"message": "one", "token": "s3cr3t-new-value"}})

    check = deploy(tmp_path, extra, *STAGE, "--check", "--diff")
    assert check.rc == 0, check.output
    assert check.changed >= 1
    # the diff is per object, and Secret data is never shown
    assert f"ConfigMap {namespace}/web-config" in check.output
    assert "+  edited: changed-by-the-test" in check.output
    assert f"Secret {namespace}/web-token" in check.output
    assert "<redacted> (changed)" in check.output
    assert "s3cr3t-new-value" not in check.output and "not-a-secret" not in check.output
    assert "value web.token: (new)" in check.output
    # ... and nothing changed
    assert len(history(cluster, namespace, namespace)) == 1
    cm = cluster.get_json("configmap", "web-config", "-n", namespace)
    assert "edited" not in cm["data"]

    real = deploy(tmp_path, extra, *STAGE)
    assert real.rc == 0, real.output
    assert real.changed >= 1
    hist = history(cluster, namespace, namespace)
    assert [h["status"] for h in hist] == ["superseded", "deployed"]
    assert hist[-1]["chart"] == "small-1.0.0"  # same chart version: the template change alone was deployed
    assert cluster.get_json("configmap", "web-config", "-n", namespace)["data"]["edited"] == "changed-by-the-test"

    again = deploy(tmp_path, extra, *STAGE, "--check")
    assert again.rc == 0 and again.changed == 0, again.output
    again = deploy(tmp_path, extra, *STAGE)
    assert again.rc == 0 and again.changed == 0, again.output
    assert len(history(cluster, namespace, namespace)) == 2


def test_the_verify_stage_prints_the_releases_hosts_and_health(cluster, namespace, tmp_path):
    """After the mybinder stage, verify waits for health and prints the summary an operator reads
    at the end of a deploy: each release with its revision, status and chart, the hosts, and the
    health counts. (No hosts and one node pool here: the small chart has no ingress.)"""
    chart = small_chart(tmp_path / "chart")
    extra = overrides(tmp_path, namespace, chart, mybinder_hosts={}, mybinder_node_pools={})
    res = deploy(tmp_path, extra, "--tags", "mybinder,verify")
    assert res.rc == 0, res.output
    summary = res.output[res.output.index("TASK [mybinder.deploy.verify : Wait until every pod is Ready") :]
    assert f"[local] release {namespace} (namespace {namespace}): revision 1, deployed, chart small-1.0.0" in summary
    assert "[local] hosts: none" in summary
    assert "[local] health: 2/2 pods ready, 1/1 services with endpoints" in summary, summary


def test_invalid_values_change_nothing(cluster, namespace, tmp_path):
    chart = small_chart(tmp_path / "chart")
    good = deploy(tmp_path, overrides(tmp_path, namespace, chart), *STAGE)
    assert good.rc == 0, good.output
    wait_ready(cluster, namespace, "web", 2)
    before = pods(cluster, namespace, "app=web")

    # An invalid quantity renders fine and passes helm's own dry run; the API server refuses it.
    # The ConfigMap, which helm would apply before the Deployment, must not change either.
    bad = overrides(tmp_path, namespace, chart, {"web": {"cpu": "lots", "message": "changed"}})
    res = deploy(tmp_path, bad, *STAGE)
    assert res.rc != 0
    assert "quantities must match" in res.output
    assert "nothing was deployed" in res.output and "revision 1 still serves" in res.output
    assert [h["status"] for h in history(cluster, namespace, namespace)] == ["deployed"]
    assert cluster.get_json("configmap", "web-config", "-n", namespace)["data"]["message"] == "hello"
    assert pods(cluster, namespace, "app=web") == before

    # A value of the wrong type: same.
    res = deploy(tmp_path, overrides(tmp_path, namespace, chart, {"web": {"replicas": "two"}}), *STAGE)
    assert res.rc != 0 and "expected numeric" in res.output, res.output
    assert [h["status"] for h in history(cluster, namespace, namespace)] == ["deployed"]
    assert pods(cluster, namespace, "app=web") == before


def test_failing_template_changes_nothing(cluster, namespace, tmp_path):
    chart = small_chart(
        tmp_path / "chart",
        extra_template='{{- if eq .Values.web.message "boom" }}{{ fail "web.message must not be boom" }}{{ end }}\n',
    )
    assert deploy(tmp_path, overrides(tmp_path, namespace, chart), *STAGE).rc == 0
    before = pods(cluster, namespace, "app=web")

    res = deploy(tmp_path, overrides(tmp_path, namespace, chart, {"web": {"message": "boom"}}), *STAGE)
    assert res.rc != 0
    assert "web.message must not be boom" in res.output
    assert "rendering release" in res.output and "nothing was deployed" in res.output
    assert "Nothing was changed: revision 1 still serves" in res.output
    assert [h["status"] for h in history(cluster, namespace, namespace)] == ["deployed"]
    assert pods(cluster, namespace, "app=web") == before


def test_failed_rollout_is_rolled_back_with_the_failing_objects_and_events(cluster, namespace, tmp_path):
    chart = small_chart(tmp_path / "chart")
    assert deploy(tmp_path, overrides(tmp_path, namespace, chart), *STAGE).rc == 0
    wait_ready(cluster, namespace, "web", 2)

    stuck = overrides(
        tmp_path,
        namespace,
        chart,
        {"web": {"nodeSelector": {"mybinder.org/node-purpose": "nowhere"}}},
        mybinder_rollout_timeout=25,
    )
    res = deploy(tmp_path, stuck, *STAGE)
    assert res.rc != 0
    # progress while waiting: how long, what is left
    assert "rollout: " in res.output and f"waiting for Deployment {namespace}/web" in res.output
    # the failure names the object, why its pods do not run, and recent events
    assert f"- Deployment {namespace}/web:" in res.output
    assert "not scheduled: 0/3 nodes are available" in res.output
    assert "FailedScheduling" in res.output
    assert "Rolled back to revision 1 (now revision 3)" in res.output

    hist = history(cluster, namespace, namespace)
    assert [h["status"] for h in hist] == ["superseded", "superseded", "deployed"]
    assert hist[-1]["description"] == "Rollback to 1"
    dep = cluster.get_json("deployment", "web", "-n", namespace)
    assert not dep["spec"]["template"]["spec"].get("nodeSelector")
    wait_ready(cluster, namespace, "web", 2)

    # The next deploy of the good values is a no-op... after recording them once: the rollback
    # revision carries no values digest, so the values are compared (equal) and nothing is upgraded.
    again = deploy(tmp_path, overrides(tmp_path, namespace, chart), *STAGE)
    assert again.rc == 0 and again.changed == 0, again.output


def test_deploy_killed_during_the_rollout_wait_is_finished_by_the_next(cluster, namespace, tmp_path):
    chart = small_chart(tmp_path / "chart")
    assert deploy(tmp_path, overrides(tmp_path, namespace, chart), *STAGE).rc == 0

    # (a short lock duration: the killed run's lock expires soon, and the next run takes it over)
    slow = overrides(
        tmp_path,
        namespace,
        chart,
        {"web": {"nodeSelector": {"mybinder.org/node-purpose": "nowhere"}}},
        mybinder_lock_duration=10,
    )
    out = deploy_until(tmp_path, slow, "rollout: ", *STAGE)
    assert f"waiting for Deployment {namespace}/web" in out

    # The killed run left revision 2 deployed (helm itself never waits) with a stuck rollout.
    assert history(cluster, namespace, namespace)[-1]["status"] == "deployed"

    fixed = overrides(tmp_path, namespace, chart, {"web": {"message": "fixed"}}, mybinder_lock_duration=10)
    res = deploy(tmp_path, fixed, *STAGE)
    assert res.rc == 0, res.output
    assert "took over the deploy lock" in res.output
    assert "another operation" not in res.output and "already exists" not in res.output
    assert history(cluster, namespace, namespace)[-1]["status"] == "deployed"
    wait_ready(cluster, namespace, "web", 2)


def interrupt_helm(cluster, namespace: str, chart, *helm_args: str) -> None:
    """Run `helm upgrade --install --wait` on values that never become ready and kill it while it
    waits: the release is left pending, as after a cancelled CI job of upstream's deploy script."""
    proc = subprocess.Popen(
        [
            str(cluster.bin_dir / "helm"),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "upgrade",
            namespace,
            str(chart),
            "--install",
            "-n",
            namespace,
            "--wait",
            "--timeout",
            "10m",
            *helm_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            hist = history(cluster, namespace, namespace)
            if hist and hist[-1]["status"].startswith("pending-"):
                break
            time.sleep(0.3)
        else:
            raise AssertionError("helm never left the release pending")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_release_left_pending_upgrade_is_rolled_back_first(cluster, namespace, tmp_path):
    chart = small_chart(tmp_path / "chart")
    assert deploy(tmp_path, overrides(tmp_path, namespace, chart), *STAGE).rc == 0
    interrupt_helm(cluster, namespace, chart, "--set-json", 'web.nodeSelector={"mybinder.org/node-purpose":"nowhere"}')
    assert history(cluster, namespace, namespace)[-1]["status"] == "pending-upgrade"
    # plain helm is stuck now
    stuck = helm(cluster, "upgrade", namespace, str(chart), "-n", namespace, check=False)
    assert "another operation (install/upgrade/rollback) is in progress" in stuck.stderr

    check = deploy(tmp_path, overrides(tmp_path, namespace, chart), *STAGE, "--check")
    assert check.rc == 0, check.output
    assert (
        "was stuck in pending-upgrade (revision 2)" in check.output
        and "would be rolled back to revision 1" in check.output
    )
    assert history(cluster, namespace, namespace)[-1]["status"] == "pending-upgrade"  # check mode changed nothing

    # the test killed that helm run: no grace for it (test_deploy_lock.py waits for a live one)
    res = deploy(
        tmp_path,
        overrides(tmp_path, namespace, chart, {"web": {"message": "after"}}, mybinder_lock_pending_grace=0),
        *STAGE,
    )
    assert res.rc == 0, res.output
    assert (
        "was stuck in pending-upgrade (revision 2)" in res.output and "it was rolled back to revision 1" in res.output
    )
    hist = history(cluster, namespace, namespace)
    assert hist[-1]["status"] == "deployed" and hist[-2]["description"] == "Rollback to 1"
    assert cluster.get_json("configmap", "web-config", "-n", namespace)["data"]["message"] == "after"
    wait_ready(cluster, namespace, "web", 2)


def test_release_left_pending_install_is_uninstalled_and_installed_again(cluster, namespace, tmp_path):
    chart = small_chart(tmp_path / "chart")
    interrupt_helm(cluster, namespace, chart, "--set-json", 'web.nodeSelector={"mybinder.org/node-purpose":"nowhere"}')
    assert [h["status"] for h in history(cluster, namespace, namespace)] == ["pending-install"]

    res = deploy(tmp_path, overrides(tmp_path, namespace, chart, mybinder_lock_pending_grace=0), *STAGE)
    assert res.rc == 0, res.output
    assert (
        "was stuck in pending-install (revision 1)" in res.output
        and "uninstalled (it never was deployed)" in res.output
    )
    assert [h["status"] for h in history(cluster, namespace, namespace)] == ["deployed"]
    wait_ready(cluster, namespace, "web", 2)


def test_several_clusters_of_one_inventory_deploy_in_parallel(cluster, namespace, tmp_path):
    """Two hosts (here: two releases on the one local cluster) in one inventory: both are deployed,
    their tasks run side by side, and a failure of one does not stop the other."""
    second_ns = f"{namespace}-b"
    cluster.kubectl("create", "namespace", second_ns)
    try:
        chart = small_chart(tmp_path / "chart")
        inv = tmp_path / "inventory"
        (inv / "group_vars").mkdir(parents=True)
        local_vars = ROOT / "inventories" / "local" / "group_vars" / "mybinder_clusters"
        (inv / "group_vars" / "mybinder_clusters").symlink_to(local_vars)
        cfg = tmp_path / "config.yaml"
        cfg.write_text("{}\n")
        bad = tmp_path / "bad.yaml"
        bad.write_text('{"web": {"cpu": "lots"}}\n')

        def host(ns: str, config) -> dict:
            return {
                "ansible_connection": "local",
                "mybinder_repo_dir": str(ROOT),
                "mybinder_release": ns,
                "mybinder_namespace": ns,
                "mybinder_chart_dir": str(chart),
                "mybinder_config_values_file": str(config),
                "mybinder_build_dir": str(tmp_path / "build" / ns),
                "mybinder_hosts": {"binder": [f"{ns}.deploy.test"]},
            }

        import json

        (inv / "hosts.yml").write_text(
            json.dumps({"mybinder_clusters": {"hosts": {"one": host(namespace, cfg), "two": host(second_ns, cfg)}}})
        )
        res = deploy(tmp_path, {}, *STAGE, inventory=inv)
        assert res.rc == 0, res.output
        assert res.host("one")["failed"] == 0 and res.host("two")["failed"] == 0
        assert history(cluster, namespace, namespace)[-1]["status"] == "deployed"
        assert history(cluster, second_ns, second_ns)[-1]["status"] == "deployed"
        # linear strategy, one fork per host: each task ran for both hosts before the next task
        release_task = res.output.index("TASK [mybinder.deploy.mybinder : Install or upgrade the release")
        block = res.output[release_task : res.output.index("TASK [", release_task + 10)]
        assert "[one]" in block and "[two]" in block

        # one host failing does not stop the other
        (inv / "hosts.yml").write_text(
            json.dumps({"mybinder_clusters": {"hosts": {"one": host(namespace, bad), "two": host(second_ns, cfg)}}})
        )
        res = deploy(tmp_path, {}, *STAGE, inventory=inv)
        assert res.rc != 0
        assert res.host("one")["failed"] == 1 and res.host("two")["failed"] == 0

        # two hosts that would deploy the same release into the same cluster are refused up front
        (inv / "hosts.yml").write_text(
            json.dumps({"mybinder_clusters": {"hosts": {"one": host(namespace, cfg), "two": host(namespace, cfg)}}})
        )
        res = deploy(tmp_path, {}, *STAGE, inventory=inv)
        assert res.rc != 0
        assert "both deploy release" in res.output
        assert "TASK [mybinder.deploy.cluster_access" not in res.output
    finally:
        cluster.kubectl("delete", "namespace", second_ns, "--wait=false", check=False)


HOOK = """
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 0
      containers:
        - name: migrate
          image: registry.invalid/migrate:1
          env:
            - {name: SCHEMA, value: {{ .Values.web.message | quote }}}
"""


def test_hooks_are_compared_and_validated_as_new_objects(cluster, namespace, tmp_path):
    """A hook Job stays in the cluster after it ran (helm's default delete policy deletes it only
    before the next run), and its pod template is immutable: the dry run must treat hooks as new
    objects, as helm does, instead of refusing every change of one."""
    chart = small_chart(tmp_path / "chart", extra_template=HOOK)
    first = deploy(tmp_path, overrides(tmp_path, namespace, chart), *STAGE)
    assert first.rc == 0, first.output
    assert (
        cluster.get_json("job", "migrate", "-n", namespace)["spec"]["template"]["spec"]["containers"][0]["env"][0][
            "value"
        ]
        == "hello"
    )

    assert deploy(tmp_path, overrides(tmp_path, namespace, chart), *STAGE).changed == 0

    changed = overrides(tmp_path, namespace, chart, {"web": {"message": "v2"}})
    check = deploy(tmp_path, changed, *STAGE, "--check", "--diff")
    assert check.rc == 0, check.output
    assert f"hook Job {namespace}/migrate" in check.output
    res = deploy(tmp_path, changed, *STAGE)
    assert res.rc == 0, res.output
    assert (
        cluster.get_json("job", "migrate", "-n", namespace)["spec"]["template"]["spec"]["containers"][0]["env"][0][
            "value"
        ]
        == "v2"
    )

    # an invalid hook is refused before anything changes
    bad = overrides(tmp_path, namespace, chart, {"web": {"message": "v3"}})
    (chart / "templates" / "web.yaml").write_text(
        (chart / "templates" / "web.yaml").read_text().replace("backoffLimit: 0", "backoffLimit: lots")
    )
    res = deploy(tmp_path, bad, *STAGE)
    assert res.rc != 0 and "nothing was deployed" in res.output, res.output
    assert len(history(cluster, namespace, namespace)) == 2
