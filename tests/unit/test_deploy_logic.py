"""Pure logic of the deploy modules: rollout judgement (kubectl's rules), release comparison and
redaction, helm's values merge, values layer checks, the chart build copy, and the progress lines."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
from ansible_collections.mybinder.deploy.plugins.module_utils import _chart_build as cb
from ansible_collections.mybinder.deploy.plugins.module_utils import _helm as h
from ansible_collections.mybinder.deploy.plugins.module_utils import _helm_manifests as hm
from ansible_collections.mybinder.deploy.plugins.module_utils import _helm_values as hv
from ansible_collections.mybinder.deploy.plugins.module_utils import _rollout as r
from ansible_collections.mybinder.deploy.plugins.module_utils import _values_layers as vl
from ansible_collections.mybinder.deploy.plugins.module_utils import _verify_namespace as vn
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._verify_namespace import host_matches
from ansible_collections.mybinder.deploy.plugins.plugin_utils._reports import describe_rollout

# ------------------------------------------------------------------------------------------------
# rollout judgement


def deploy(gen=2, observed=2, replicas=2, updated=2, total=2, available=2, conditions=None):
    return {
        "metadata": {"generation": gen},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "replicas": total,
            "availableReplicas": available,
            "conditions": conditions or [],
        },
    }


@pytest.mark.parametrize(
    ("obj", "done", "failed", "says"),
    [
        (deploy(gen=3, observed=2), False, False, "not observed"),
        (deploy(updated=1, total=3, available=2), False, False, "1 of 2 new replicas updated"),
        (deploy(total=3, available=2), False, False, "1 old replica still to be replaced"),
        (deploy(available=1), False, False, "1 of 2 updated replicas available"),
        (deploy(), True, False, "2 of 2 replicas available"),
        (deploy(replicas=0, updated=0, total=0, available=0), True, False, "0 of 0"),
        (
            deploy(conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "too slow"}]),
            False,
            True,
            "progress deadline",
        ),
    ],
)
def test_deployment_rollout(obj, done, failed, says):
    st = r.deployment_state(obj)
    assert (st.done, st.failed) == (done, failed)
    assert says in st.message


@pytest.mark.parametrize(
    ("status", "strategy", "done", "says"),
    [
        (
            {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 2},
            "RollingUpdate",
            False,
            "2 of 3 pods updated",
        ),
        (
            {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 1},
            "RollingUpdate",
            False,
            "1 of 3 updated pods available",
        ),
        (
            {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3},
            "RollingUpdate",
            True,
            "3 of 3",
        ),
        ({}, "OnDelete", True, "OnDelete"),
    ],
)
def test_daemonset_rollout(status, strategy, done, says):
    st = r.daemonset_state(
        {"metadata": {"generation": 1}, "spec": {"updateStrategy": {"type": strategy}}, "status": status}
    )
    assert st.done is done and says in st.message


def sts(ready=2, updated=2, cur="a", upd="a", partition=None):
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": partition} if partition else None}
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": 2, "updateStrategy": strategy},
        "status": {
            "observedGeneration": 1,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "currentRevision": cur,
            "updateRevision": upd,
        },
    }


@pytest.mark.parametrize(
    ("obj", "done", "says"),
    [
        (sts(ready=1), False, "1 of 2 pods ready"),
        (sts(upd="b", updated=1), False, "1 of 2 pods at the new revision"),
        (sts(), True, "2 of 2 pods ready"),
        (sts(upd="b", updated=1, partition=1), True, "partitioned rollout complete"),
        (sts(upd="b", updated=0, partition=1), False, "0 of 1 new pods"),
    ],
)
def test_statefulset_rollout(obj, done, says):
    st = r.statefulset_state(obj)
    assert st.done is done and says in st.message


def test_selector_string():
    sel = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "c", "operator": "In", "values": ["x", "y"]},
            {"key": "d", "operator": "NotIn", "values": ["z"]},
            {"key": "e", "operator": "Exists"},
            {"key": "f", "operator": "DoesNotExist"},
        ],
    }
    assert r.selector_string(sel) == "a=1,b=2,c in (x,y),d notin (z),e,!f"


def test_pod_problem_names_scheduling_and_container_states():
    unscheduled = {
        "metadata": {"name": "p"},
        "status": {"conditions": [{"type": "PodScheduled", "status": "False", "message": "0/3 nodes are available"}]},
    }
    assert r.pod_problem(unscheduled) == "pod p: not scheduled: 0/3 nodes are available"
    waiting = {
        "metadata": {"name": "p"},
        "status": {
            "containerStatuses": [
                {"name": "hub", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}
            ]
        },
    }
    assert r.pod_problem(waiting) == "pod p: container hub waiting: ImagePullBackOff no such image"


def test_progress_line_says_how_long_and_what_is_left():
    line = describe_rollout(
        {
            "ready": ["Deployment a/x"],
            "pending": [
                {"kind": "Deployment", "namespace": "a", "name": "hub", "message": "0 of 1 updated replicas available"}
            ],
        },
        12.4,
        600,
    )
    assert (
        line
        == "rollout: 12s of 600s, 1/2 workloads ready; waiting for Deployment a/hub (0 of 1 updated replicas available)"
    )


# ------------------------------------------------------------------------------------------------
# release comparison

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: '1'\n"
SECRET = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  token: {}\n  other: same\n"
DEPLOY = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n"
HOOK = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-upgrade\n"


def release(manifest, hooks="", chart="app-1.0.0", version=3):
    return {
        "name": "r",
        "namespace": "ns",
        "version": version,
        "manifest": manifest,
        "hooks": [{"manifest": hooks}] if hooks else [],
        "chart_ref": chart,
        "app_version": "",
    }


def rendered(manifest, hooks="", version="1.0.0"):
    return {
        "name": "r",
        "namespace": "ns",
        "manifest": manifest,
        "hooks": [{"manifest": hooks}] if hooks else [],
        "chart": {"metadata": {"name": "app", "version": version}},
    }


def test_equal_renders_are_no_change():
    cur = release(f"---\n# Source: x\n{CM}---\n{DEPLOY}", HOOK)
    new = rendered(f"{DEPLOY}\n---\n{CM}", HOOK)  # other order and comments: same objects
    assert not hm.compare(cur, new, [], want_diff=True).changed


def test_template_change_without_version_bump_is_a_change():
    cur = release(CM + "---\n" + DEPLOY)
    new = rendered(CM.replace("a: '1'", "a: '2'") + "---\n" + DEPLOY)
    cmp = hm.compare(cur, new, [], want_diff=True)
    assert cmp.changed and cmp.modified == ["ConfigMap ns/c"] and not cmp.chart_changed
    assert cmp.diffs[0]["before_header"] == "ConfigMap ns/c (revision 3)"
    assert "a: '2'" in cmp.diffs[0]["after"]


def test_added_removed_hooks_and_chart_version():
    cur = release(CM + "---\n" + DEPLOY, HOOK)
    new = rendered(CM, "", version="1.1.0")
    cmp = hm.compare(cur, new, ["hub.image.tag"], want_diff=True)
    assert cmp.removed == ["Deployment ns/web", "hook Job ns/migrate"]
    assert cmp.chart_changed and cmp.values_changed == ["hub.image.tag"]
    meta = cmp.diffs[-1]
    assert "chart: app-1.0.0" in meta["before"] and "chart: app-1.1.0" in meta["after"]
    assert "value hub.image.tag: (new)" in meta["after"]


def test_secret_data_never_appears_in_a_diff():
    cur = release(SECRET.format("old-secret-value"))
    new = rendered(SECRET.format("new-secret-value"))
    cmp = hm.compare(cur, new, [], want_diff=True)
    text = repr(cmp.diffs)
    assert "old-secret-value" not in text and "new-secret-value" not in text and "same" not in text
    assert "token: <redacted> (changed)" in cmp.diffs[0]["after"]
    assert "other: <redacted>\n" in cmp.diffs[0]["after"]


def test_workloads_come_from_the_manifest_not_the_hooks():
    rel = rendered(DEPLOY + "---\n" + CM, HOOK)
    assert hm.workloads(rel) == [{"kind": "Deployment", "namespace": "ns", "name": "web"}]


def test_values_merge_follows_helm():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    over = {"a": {"c": [3], "e": None}, "d": {"x": 1}}
    assert hv.merge_values(base, over) == {"a": {"b": 1, "c": [3], "e": None}, "d": {"x": 1}}


def test_user_values_reads_dates_as_strings_like_helm(tmp_path):
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text("a:\n  since: 2024-01-01\n  keep: 1\n3: x\n")
    two.write_text("a:\n  keep: 2\n")
    assert hv.user_values([str(one), str(two)]) == {"a": {"since": "2024-01-01", "keep": 2}, "3": "x"}


def test_values_digest_covers_content_and_order(tmp_path):
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text("a: 1\n")
    two.write_text("b: 1\n")
    d = hv.values_digest([str(one), str(two)])
    assert d != hv.values_digest([str(two), str(one)])
    assert hv.recorded_digest(f"{hv.DIGEST_MARK}{d}") == d
    assert hv.recorded_digest("Rollback to 3") is None
    one.write_text("a: 2\n")
    assert d != hv.values_digest([str(one), str(two)])


def test_value_paths_name_paths_not_values():
    assert hv.value_paths({"a": {"b": "old", "c": 1}}, {"a": {"b": "new", "c": 1}, "d": 2}) == ["a.b", "d"]


@pytest.mark.parametrize(
    ("history", "exclude", "want"),
    [
        (
            [
                {"revision": 1, "status": "superseded"},
                {"revision": 2, "status": "deployed"},
                {"revision": 3, "status": "pending-upgrade"},
            ],
            3,
            2,
        ),
        (
            [
                {"revision": 1, "status": "superseded"},
                {"revision": 2, "status": "failed"},
                {"revision": 3, "status": "pending-rollback"},
            ],
            3,
            1,
        ),
        ([{"revision": 1, "status": "pending-install"}], 1, None),
    ],
)
def test_last_good_revision(history, exclude, want):
    assert h.last_good_revision(history, exclude=exclude) == want


@pytest.mark.parametrize(
    ("value", "ok"),
    [("5m", True), ("90s", True), ("1h30m", True), ("1.5s", True), ("5", False), ("", False), ("5 m", False)],
)
def test_durations(value, ok):
    assert h.valid_duration(value) is ok


def test_upgrade_command_never_waits_and_resets_values():
    helm = h.Helm(binary="helm", kubeconfig="/k", context="c", namespace="ns")
    args = helm.upgrade_args("r", "/chart", ["/a.yaml", "/b.yaml"], h.UpgradeOptions(timeout="5m", description="d"))
    assert helm.base() + args == [
        "helm", "--kubeconfig", "/k", "--kube-context", "c", "--namespace", "ns",
        "upgrade", "r", "/chart", "--install", "--values", "/a.yaml", "--values", "/b.yaml",
        "--create-namespace", "--cleanup-on-fail", "--history-max", "10", "--timeout", "5m",
        "--description", "d", "--reset-values",
    ]  # fmt: skip
    assert "--wait" not in args and "--atomic" not in args


# ------------------------------------------------------------------------------------------------
# values layers


def test_values_layers_refuse_missing_encrypted_invalid_and_shared_keys(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text("a:\n  b: 1\n")
    with pytest.raises(vl.LayerError, match=f"values file {tmp_path}/gone.yaml does not exist"):
        vl.run([{"path": str(tmp_path / "gone.yaml"), "secret": False, "required": True}])

    enc = tmp_path / "enc.yaml"
    enc.write_bytes(b"\x00GITCRYPT\x00secret-bytes")
    with pytest.raises(vl.LayerError, match="still encrypted by git-crypt"):
        vl.run([{"path": str(enc), "secret": True, "required": True}])
    res = vl.run([{"path": str(enc), "secret": True, "required": True}], allow_encrypted=True)
    assert res["encrypted"] == [str(enc)]

    bad = tmp_path / "bad.yaml"
    bad.write_text("password: [unclosed-secret-value\n")
    with pytest.raises(vl.LayerError) as err:
        vl.run([{"path": str(bad), "secret": True, "required": True}])
    assert "not valid YAML at line" in str(err.value) and "unclosed-secret-value" not in str(err.value)

    twice = tmp_path / "twice.yaml"
    twice.write_text("hub:\n  config:\n    token: first-secret\n  image: x\n  config:\n    token: second-secret\n")
    with pytest.raises(vl.LayerError) as err:
        vl.run([{"path": str(twice), "secret": True, "required": True}])
    assert f"values file {twice}: key 'config' is set twice in one mapping (lines 2 and 5)" in str(err.value)
    assert "first-secret" not in str(err.value) and "second-secret" not in str(err.value)  # no value shown
    twice.write_text("a: 1\nb: {a: 1}\nc: &x {k: 1}\nd:\n  <<: *x\n  e: 2\n")  # same key, other maps: fine
    assert vl.run([{"path": str(twice), "secret": False, "required": True}])["paths"] == [str(twice)]

    empty = tmp_path / "empty.yaml"
    for text in ("", "# every secret was removed\n", "{}\n"):
        empty.write_text(text)
        with pytest.raises(vl.LayerError, match=f"secret values file {empty} is empty .* would remove every secret"):
            vl.run([{"path": str(empty), "secret": True, "required": True}])
    assert vl.run([{"path": str(empty), "secret": False, "required": True}])["paths"] == [str(empty)]  # public: fine

    secret = tmp_path / "secret.yaml"
    secret.write_text("a:\n  b: hidden\n  token: x\n")
    with pytest.raises(vl.LayerError) as err:
        vl.run(
            [
                {"path": str(secret), "secret": True, "required": True},
                {"path": str(ok), "secret": False, "required": True},
            ]
        )
    assert "a.b (secret" in str(err.value) and "hidden" not in str(err.value)


def test_overlap_includes_parents_and_children():
    assert vl.overlaps({("a", "b")}, {("a",)}) == [("a", "b")]
    assert vl.overlaps({("a",)}, {("a", "b")}) == [("a",)]
    assert vl.overlaps({("a", "b")}, {("a", "c")}) == []


def test_generated_layer_is_written_private_and_only_when_changed(tmp_path):
    path = tmp_path / "values" / "inventory-values.yaml"
    layer = {"path": str(path), "secret": False, "required": True, "content": "x: 1\n"}
    assert vl.run([layer])["written"] == [str(path)]
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert vl.run([layer])["written"] == []


# ------------------------------------------------------------------------------------------------
# chart build copy, verify helpers


def test_build_copy_mirrors_the_chart_but_keeps_built_dependencies(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "templates").mkdir(parents=True)
    (src / "Chart.yaml").write_text("name: x\n")
    (src / "templates" / "a.yaml").write_text("a\n")
    (src / "charts").mkdir()
    (src / "charts" / "stray.tgz").write_text("from the source tree\n")
    (dest / "templates").mkdir(parents=True)
    (dest / "templates" / "old.yaml").write_text("removed from the source\n")
    (dest / "charts").mkdir()
    (dest / "charts" / "dep-1.0.0.tgz").write_text("built\n")
    cb.sync_tree(str(src), str(dest))
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "Chart.yaml",
        "charts/dep-1.0.0.tgz",
        "templates/a.yaml",
    ]


@pytest.mark.parametrize(
    ("pattern", "host", "ok"),
    [
        ("mybinder.org", "mybinder.org", True),
        ("*.mybinder.ovh", "binder.mybinder.ovh", True),
        ("*.mybinder.ovh", "a.b.mybinder.ovh", False),
        ("*.mybinder.ovh", "mybinder.ovh", False),
    ],
)
def test_tls_host_matching(pattern, host, ok):
    assert host_matches(pattern, host) is ok


def test_poll_pauses_stay_short_for_two_seconds_then_grow_to_the_interval():
    got = [round(p, 3) for p in itertools.islice(r.pauses(0.5), 45)]
    assert got[:40] == [0.05] * 40  # 2 s of pauses of 0.05 s
    assert got[40:45] == [0.075, 0.113, 0.169, 0.253, 0.38]
    assert round(list(itertools.islice(r.pauses(0.5), 50))[-1], 3) == 0.5  # never above the interval
    assert next(r.pauses(0.02)) == 0.02
    assert [round(p, 3) for p in itertools.islice(r.pauses(1.0, first=0.1, fast_seconds=0), 3)] == [0.1, 0.15, 0.225]


def test_wait_sees_a_rollout_within_a_twentieth_of_a_second_of_its_end(monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(r.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(r.time, "sleep", lambda s: clock.__setitem__("now", clock["now"] + s))

    class Rollout:
        objects = [{"kind": "Deployment", "namespace": "n", "name": "hub"}]

        def __init__(self, done_at: float) -> None:
            self.done_at = done_at

        def poll(self):
            return {"hub": {"done": clock["now"] >= self.done_at, "failed": False}}

    for done_at in (0.3, 0.71, 1.93):
        clock["now"] = 0.0
        res = r.wait(Rollout(done_at), seconds=600, interval=0.5)
        assert res["hub"]["done"]
        assert done_at <= clock["now"] < done_at + 0.05 + 1e-9, (done_at, clock["now"])
    # a long rollout is polled less often: done at 30 s, seen within the interval
    clock["now"] = 0.0
    assert r.wait(Rollout(30.0), seconds=600, interval=0.5)["hub"]["done"]
    assert 30.0 <= clock["now"] < 30.5


def test_the_health_check_keeps_pauses_that_grow_from_the_first(monkeypatch):
    """Each health check lists nodes, pods, services, endpoint slices and ingresses: unlike the
    rollout wait it does not poll every 0.05 s at first."""
    slept: list[float] = []
    checks = iter([{"problems": ["a"]}] * 3 + [{"problems": []}])
    monkeypatch.setattr(vn, "connect", lambda *a: None)
    monkeypatch.setattr(vn, "check", lambda kube, p: next(checks))
    monkeypatch.setattr(vn.time, "sleep", slept.append)
    params = {"kubeconfig": None, "context": None, "wait_seconds": None, "timeout": 60, "interval": 2.0}
    res = vn.verify_namespace({**params, "list_releases": False, "fail_on_timeout": True})
    assert not res["problems"]
    assert [round(s, 3) for s in slept] == [0.1, 0.15, 0.225]


class _Discovery:
    """Answers /version, /api and /apis like an API server with or without aggregated discovery."""

    def __init__(self, groups: dict[str, list[str]], aggregated: bool) -> None:
        self.groups, self.aggregated = groups, aggregated

    def request(self, method: str, path: str, accept: str = "") -> dict:
        if path == "/version":
            return {"gitVersion": "v1.34.4"}
        names = [""] if path == "/api" else [g for g in self.groups if g]
        if self.aggregated:
            items = [
                {
                    "metadata": {"name": g},
                    "versions": [
                        {"version": v, "resources": [{"responseKind": {"kind": "Thing"}}]} for v in self.groups[g]
                    ],
                }
                for g in names
            ]
            return {"kind": "APIGroupDiscoveryList", "items": items}
        if path == "/api":
            return {"kind": "APIVersions", "versions": self.groups[""]}
        return {
            "kind": "APIGroupList",
            "groups": [{"name": g, "versions": [{"version": v} for v in self.groups[g]]} for g in names],
        }


@pytest.mark.parametrize("aggregated", [True, False])
def test_capabilities_digest_changes_with_the_served_group_versions(aggregated):
    base = {"": ["v1"], "apps": ["v1"]}
    one = hv.capabilities_digest(_Discovery(base, aggregated))
    assert one == hv.capabilities_digest(_Discovery(dict(base), aggregated))
    assert one != hv.capabilities_digest(_Discovery({**base, "cert-manager.io": ["v1"]}, aggregated))
    assert one != hv.capabilities_digest(_Discovery({**base, "": ["v1", "v2"]}, aggregated))


def test_history_entries_from_a_stored_release_and_picking_a_revision():
    rel = {
        "version": 3,
        "info": {"status": "deployed", "description": "d"},
        "chart": {"metadata": {"name": "small", "version": "1.0.0", "appVersion": "1"}},
    }
    assert h.history_entry(rel) == {
        "revision": 3,
        "status": "deployed",
        "chart": "small-1.0.0",
        "app_version": "1",
        "description": "d",
    }
    hist = [{"revision": 1}, {"revision": 2}]
    assert h.pick_entry(hist) == {"revision": 2} and h.pick_entry(hist, 1) == {"revision": 1}
    assert h.pick_entry(hist, 5) is None and h.pick_entry([]) is None


@pytest.mark.parametrize("timeout", [0, -5])
def test_a_rollout_wait_of_no_time_is_refused_before_the_cluster_is_asked(timeout):
    with pytest.raises(ModuleError, match=f"timeout={timeout} must be a whole number of seconds above 0"):
        r.rollout_status({"timeout": timeout, "kubeconfig": "/nowhere", "context": ""})


def test_a_rollout_wait_the_api_server_stops_answering_ends_the_round_not_the_task(monkeypatch):
    """A poll refused for a transient reason (the client retried it until the round's deadline)
    leaves every workload "not done yet", with the reason; any other failure is raised."""
    from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KubeApiError

    monkeypatch.setattr(r.time, "sleep", lambda s: None)

    class Unanswered:
        objects = [{"kind": "Deployment", "namespace": "n", "name": "hub"}]

        def __init__(self, exc: Exception) -> None:
            self.exc = exc

        def poll(self):
            raise self.exc

    refused = KubeApiError(0, "cannot reach https://127.0.0.1:6443: [Errno 111] Connection refused", None, "GET", "/")
    res = r.wait(Unanswered(refused), seconds=5)
    assert list(res.values()) == [
        {
            "kind": "Deployment",
            "namespace": "n",
            "name": "hub",
            "done": False,
            "failed": False,
            "message": "the API server did not answer (connection refused), still waiting",
        }
    ]
    forbidden = KubeApiError(403, "Forbidden", None, "GET", "/")
    with pytest.raises(KubeApiError):
        r.wait(Unanswered(forbidden), seconds=5)


@pytest.mark.parametrize(
    ("status", "text", "method", "retried"),
    [
        (0, "cannot reach x: [Errno 111] Connection refused", "POST", True),  # never reached: any method
        (0, "cannot reach x: Read timed out", "GET", True),
        (0, "cannot reach x: Read timed out", "POST", False),  # a write may have been applied
        (503, "Service Unavailable", "PUT", True),
        (429, "Too Many Requests", "GET", True),
        (429, "Too Many Requests", "POST", False),  # an eviction's PDB refusal: the drain's to retry
        (500, "Internal Server Error", "GET", False),
        (404, "Not Found", "GET", False),
        (409, "Conflict", "PUT", False),
    ],
)
def test_which_failed_requests_the_client_repeats(status, text, method, retried):
    from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KubeApiError, transient

    assert transient(KubeApiError(status, text, None, method, "/"), method) is retried


def test_the_client_retries_until_its_deadline_then_raises(monkeypatch):
    from ansible_collections.mybinder.deploy.plugins.module_utils import _kube_client as kc

    clock = {"now": 0.0}
    monkeypatch.setattr(kc.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(kc.time, "sleep", lambda s: clock.__setitem__("now", clock["now"] + s))
    answers = iter([OSError("[Errno 111] Connection refused")] * 4 + [(200, "OK", b'{"kind": "Node"}')])

    class Transport:
        host = "https://127.0.0.1:6443"
        calls = 0

        def send(self, *args):
            Transport.calls += 1
            answer = next(answers)
            if isinstance(answer, Exception):
                raise answer
            return answer

    client = kc.KubeClient(Transport())
    with pytest.raises(OSError):  # no deadline: the first failure is the answer
        client.get("/api/v1/nodes/a")
    assert Transport.calls == 1
    assert client.retry_until(clock["now"] + 30).get("/api/v1/nodes/a") == {"kind": "Node"}
    assert Transport.calls == 5 and 0 < clock["now"] < 30
