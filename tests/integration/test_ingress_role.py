"""mybinder.deploy.ingress on the real local API server (nodes core-0, user-0, user-1): its own pinned
release, replicas, anti-affinity across nodes, load-balancer IP, OVH's host-network variant, settings
that could never roll out, and the warning when every controller pod sits on a cordoned node."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tls_testlib as tl

pytestmark = pytest.mark.cluster

CORE = {"mybinder.org/node-purpose": "core"}


@pytest.fixture(scope="module")
def clean(cluster):
    tl.uninstall(cluster, "ingress-nginx", "ingress-nginx")
    yield
    for node in ("core-0", "user-0", "user-1"):
        cluster.kubectl("uncordon", node, check=False)
    tl.uninstall(cluster, "ingress-nginx", "ingress-nginx")


def controller(cluster) -> dict:
    return cluster.get_json("deployment", "ingress-nginx-controller", "-n", "ingress-nginx")


def controller_pods(cluster) -> list[dict]:
    pods = cluster.get_json(
        "pods",
        "-n",
        "ingress-nginx",
        "-l",
        "app.kubernetes.io/name=ingress-nginx,app.kubernetes.io/component=controller",
    )["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def warnings(run: tl.Run, about: str = "") -> list[str]:
    """The Ansible warnings of every task of the run (those that mention `about`)."""
    return [w for _n, r in run.results() for w in r.get("warnings") or [] if about in w]


ALL_ON_CORDONED = "every ingress-nginx controller pod sits on a cordoned node"


def only_validation_ran(run: tl.Run) -> bool:
    names = [n for n, _ in run.results()]
    return len(names) == 1 and names[0].startswith("Validating arguments against arg spec 'main'")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ingress_anti_affinity": "sometimes"}, "ingress_anti_affinity must be one of: preferred, required, none"),
        ({"ingress_update_strategy": "BlueGreen"}, "ingress_update_strategy must be one of: RollingUpdate, Recreate"),
        ({"ingress_cordon_check": False}, "ingress_cordon_check must be one of: warn, fail, ignore"),
        ({"ingress_replicas": "many"}, "argument 'ingress_replicas' is of type str"),
    ],
)
def test_argument_specs_reject_bad_settings_before_any_task(cluster, overrides, message):
    run = tl.run_role("ingress", tl.ingress_vars(cluster, **overrides))
    assert not run.ok and only_validation_ran(run), [n for n, _ in run.results()]
    assert message in run.task("Validating arguments")["msg"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"ingress_host_network": True, "ingress_pinned_node": "user-1", "ingress_replicas": 1},
            "ingress_update_strategy=RollingUpdate with ingress_host_network on the one node user-1",
        ),
        (
            {
                "ingress_host_network": True,
                "ingress_pinned_node": "user-1",
                "ingress_replicas": 2,
                "ingress_update_strategy": "Recreate",
            },
            "only one pod can bind the node's ports",
        ),
        ({"ingress_pinned_node": "ovh-node-9", "ingress_replicas": 1}, "ingress_pinned_node=ovh-node-9 is not a node"),
        (
            {"ingress_anti_affinity": "required", "ingress_replicas": 2, "ingress_node_selector": CORE},
            "only 1 node(s) match",
        ),
    ],
)
def test_settings_that_cannot_roll_out_are_refused_before_any_change(cluster, clean, overrides, message):
    run = tl.run_role("ingress", tl.ingress_vars(cluster, **overrides))
    assert not run.ok and run.changed() == []
    assert not run.ran("Install ingress-nginx")
    assert " ".join(message.split()) in " ".join(run.failed()[0][1]["msg"].split())


def test_replicas_anti_affinity_and_load_balancer_ip_check_converge_idempotent(cluster, clean):
    variables = tl.ingress_vars(
        cluster,
        ingress_replicas=2,
        ingress_anti_affinity="preferred",
        ingress_node_selector=CORE,
        ingress_load_balancer_ip="10.96.100.100",
    )
    check = tl.expect_ok(tl.run_role("ingress", variables, check=True))
    assert any("Install ingress-nginx" in n for n in check.changed())
    assert "ingress-nginx" not in tl.helm_releases(cluster)

    run = tl.expect_ok(tl.run_role("ingress", variables))
    assert "STAND-IN" not in run.messages()  # the real chart
    release = tl.helm_releases(cluster)["ingress-nginx"]
    assert release["namespace"] == "ingress-nginx" and release["chart"] == "ingress-nginx-4.14.1"
    deploy = controller(cluster)
    spec = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", **CORE}
    term = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "ingress-nginx",
        "app.kubernetes.io/instance": "ingress-nginx",
        "app.kubernetes.io/component": "controller",
    }
    assert spec.get("hostNetwork") is not True
    service = cluster.get_json("service", "ingress-nginx-controller", "-n", "ingress-nginx")
    assert service["spec"]["type"] == "LoadBalancer" and service["spec"]["loadBalancerIP"] == "10.96.100.100"
    ingress_class = cluster.get_json("ingressclass", "nginx")
    assert ingress_class["spec"]["controller"] == "k8s.io/ingress-nginx"
    pdb = cluster.get_json("pdb", "ingress-nginx-controller", "-n", "ingress-nginx")
    assert pdb["spec"]["minAvailable"] == 1
    pods = controller_pods(cluster)
    assert len(pods) == 2 and {p["spec"]["nodeName"] for p in pods} == {"core-0"}  # one core node: best effort
    placement = run.fact("ingress_placement")
    assert placement["moment"] == "after the upgrade" and not placement["all_on_cordoned"]

    assert tl.expect_ok(tl.run_role("ingress", variables, check=True)).changed() == []
    assert tl.expect_ok(tl.run_role("ingress", variables)).changed() == []


def test_required_anti_affinity_puts_every_replica_on_its_own_node(cluster, clean):
    variables = tl.ingress_vars(cluster, ingress_replicas=3, ingress_anti_affinity="required")
    tl.expect_ok(tl.run_role("ingress", variables))
    required = controller(cluster)["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert required["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"
    nodes = [p["spec"]["nodeName"] for p in controller_pods(cluster)]
    assert sorted(nodes) == ["core-0", "user-0", "user-1"]

    # one of three nodes cordoned: the others still carry traffic, so no outage warning; but a new
    # controller pod could not be placed, which is said once, before the upgrade
    cluster.kubectl("cordon", "user-0")
    try:
        run = tl.expect_ok(tl.run_role("ingress", variables))
    finally:
        cluster.kubectl("uncordon", "user-0")
    assert not warnings(run, ALL_ON_CORDONED)
    assert len(warnings(run, "some new controller pods would stay Pending until a node is uncordoned")) == 1
    assert run.fact("ingress_placement")["cordoned_nodes"] == ["user-0"]
    assert run.changed() == []


def test_ovh_host_network_single_replica_recreate_pinned_and_the_cordon_warning(cluster, clean):
    ovh = tl.ingress_vars(
        cluster,
        ingress_replicas=1,
        ingress_host_network=True,
        ingress_update_strategy="Recreate",
        ingress_anti_affinity="none",
        ingress_service_type="ClusterIP",
        ingress_pinned_node="user-1",
    )
    tl.expect_ok(tl.run_role("ingress", ovh))
    deploy = controller(cluster)
    spec = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["nodeSelector"]["kubernetes.io/hostname"] == "user-1"
    assert "affinity" not in spec
    args = spec["containers"][0]["args"]
    assert "--report-node-internal-ip-address=true" in args
    assert not [a for a in args if a.startswith("--publish-service")]
    assert cluster.get_json("service", "ingress-nginx-controller", "-n", "ingress-nginx")["spec"]["type"] == "ClusterIP"
    pods = controller_pods(cluster)
    assert [p["spec"]["nodeName"] for p in pods] == ["user-1"]
    assert cluster.kubectl("get", "pdb", "-n", "ingress-nginx", "-o", "name").stdout.strip() == ""

    # the only controller pod sits on a cordoned node: warned before and after the upgrade
    # (an upgrade that changes the release: an unchanged one is looked at once, before)
    cluster.kubectl("cordon", "user-1")
    try:
        unchanged = tl.expect_ok(tl.run_role("ingress", ovh))
        once = warnings(unchanged, ALL_ON_CORDONED)
        assert len(once) == 1 and "(before the upgrade)" in once[0], once
        assert unchanged.changed() == []
        run = tl.expect_ok(tl.run_role("ingress", dict(ovh, ingress_class_default=True)))
        both = warnings(run, ALL_ON_CORDONED)
        assert len(both) == 2, both
        assert "(before the upgrade)" in both[0] and "(after the upgrade)" in both[1]
        assert pods[0]["metadata"]["name"] in both[0] and "user-1" in both[0]
        assert "40 minutes" in both[0]
        assert run.fact("ingress_placement")["all_on_cordoned"] is True
        # ... or the run stops before touching anything
        strict = tl.run_role(
            "ingress",
            dict(
                ovh,
                ingress_cordon_check="fail",
                ingress_replicas=1,
                ingress_values={"controller": {"terminationGracePeriodSeconds": 2}},
            ),
        )
        assert not strict.ok and strict.changed() == []
        assert (
            "Every ingress-nginx controller pod sits on a cordoned node (before the upgrade)"
            in strict.failed()[0][1]["msg"]
        )
        assert not strict.ran("Install ingress-nginx")
    finally:
        cluster.kubectl("uncordon", "user-1")
    run = tl.expect_ok(tl.run_role("ingress", dict(ovh, ingress_class_default=True)))
    assert not warnings(run, "cordoned") and run.changed() == []


HAND_MADE_CLASS = """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
spec:
  controller: k8s.io/ingress-nginx
"""


def test_a_hand_made_ingress_class_is_refused_with_both_fixes_then_adopted(cluster, clean, tmp_path):
    """ingress-nginx was installed by hand before (its IngressClass is left): the role stops before
    making anything, naming the object, and the role variable that adopts it; with it, the release
    installs and owns the class."""
    tl.uninstall(cluster, "ingress-nginx", "ingress-nginx")
    cluster.kubectl("delete", "namespace", "ingress-nginx", "--ignore-not-found", "--wait=true", "--timeout=120s")
    manifest = tmp_path / "class.yaml"
    manifest.write_text(HAND_MADE_CLASS)
    cluster.kubectl("apply", "-f", str(manifest))
    try:
        refused = tl.run_role("ingress", tl.ingress_vars(cluster))
        assert not refused.ok and refused.changed() == []
        msg = refused.failed()[0][1]["msg"]
        assert 'IngressClass "nginx"' in msg and "delete it, or set take_ownership=true" in msg, msg
        assert msg.endswith("(in this role: ingress_take_ownership: true)"), msg
        assert "ingress-nginx" not in tl.helm_releases(cluster)
        assert cluster.kubectl("get", "namespace", "ingress-nginx", check=False).returncode != 0

        adopted = tl.expect_ok(tl.run_role("ingress", tl.ingress_vars(cluster, ingress_take_ownership=True)))
        assert any("Install ingress-nginx" in n for n in adopted.changed())
        notes = cluster.get_json("ingressclass", "nginx")["metadata"]["annotations"]
        assert notes["meta.helm.sh/release-name"] == "ingress-nginx", notes
    finally:
        tl.uninstall(cluster, "ingress-nginx", "ingress-nginx")
        cluster.kubectl("delete", "ingressclass", "nginx", "--ignore-not-found")
