"""mybinder.deploy.helm_release with charts from a Helm repository (how the TLS and ingress roles
install cert-manager, kube-lego and ingress-nginx): inline values, a download only when the
digest the index lists is new (an unchanged repository answers 304), a chart republished under
the same version is deployed, a tampered archive and an unknown version are refused with nothing
deployed, and stand-ins are reported as such."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_testlib import helm, small_chart
from tasks_testlib import run_tasks


class Repo:
    """A chart repository served over HTTP from a directory, recording the paths asked for."""

    def __init__(self, root: Path, helm_bin: Path) -> None:
        self.root = root
        self.helm_bin = helm_bin
        self.requests: list[str] = []
        repo = self

        class Handler(http.server.SimpleHTTPRequestHandler):  # answers If-Modified-Since with 304
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def log_request(self, code="-", size="-"):
                repo.requests.append(f"{self.path} {code}")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def publish(self, chart: Path) -> None:
        for old in self.root.glob("*.tgz"):
            old.unlink()
        subprocess.run(
            [str(self.helm_bin), "package", str(chart), "-d", str(self.root)], check=True, capture_output=True
        )
        subprocess.run([str(self.helm_bin), "repo", "index", str(self.root)], check=True, capture_output=True)


@pytest.fixture
def repo(cluster, tmp_path) -> Iterator[Repo]:
    (tmp_path / "repo").mkdir()
    r = Repo(tmp_path / "repo", cluster.bin_dir / "helm")
    yield r
    r.server.shutdown()


def release_task(cluster, namespace: str, repo: Repo, cache: Path, **more) -> dict:
    args = {
        "name": "web",
        "namespace": namespace,
        "chart_ref": "small",
        "chart_repo_url": repo.url,
        "chart_version": "1.0.0",
        "chart_cache_dir": str(cache),
        "values": {"web": {"message": "inline", "replicas": 1}},
        "kubeconfig": str(cluster.kubeconfig),
    }
    args.update(more)
    return {"mybinder.deploy.helm_release": args}


def test_install_inline_values_then_no_download_and_no_change(cluster, namespace, repo, tmp_path):
    chart = small_chart(tmp_path / "small")
    repo.publish(chart)
    cache = tmp_path / "cache"
    (first,) = run_tasks(tmp_path, [release_task(cluster, namespace, repo, cache)])
    assert first["changed"] and first["upgraded"], first
    assert first["chart_info"] == {
        "name": "small",
        "version": "1.0.0",
        "app_version": "1",
        "stand_in": False,
        "stand_in_for": "",
    }
    assert cluster.get_json("configmap", "web-config", "-n", namespace)["data"] == {"message": "inline"}
    values = helm(cluster, "get", "values", "web", "-n", namespace, "-o", "json").stdout
    assert '"message":"inline"' in values.replace(" ", "")
    assert any(r.startswith("/small-1.0.0.tgz 200") for r in repo.requests), repo.requests

    repo.requests.clear()
    (again,) = run_tasks(tmp_path, [release_task(cluster, namespace, repo, cache)])
    assert not again["changed"] and not again["upgraded"], again
    assert repo.requests == ["/index.yaml 304"], repo.requests  # nothing downloaded

    # an object deleted by hand is found and recreated, as `helm upgrade` would
    cluster.kubectl("delete", "configmap", "web-config", "-n", namespace)
    (healed,) = run_tasks(tmp_path, [release_task(cluster, namespace, repo, cache)])
    assert healed["changed"] and healed["changes"]["missing"] == [f"ConfigMap {namespace}/web-config"], healed
    assert cluster.get_json("configmap", "web-config", "-n", namespace)["data"] == {"message": "inline"}

    (other_values,) = run_tasks(
        tmp_path, [release_task(cluster, namespace, repo, cache, values={"web": {"message": "changed"}})]
    )
    assert other_values["changed"] and "web.message" in other_values["changes"]["values_changed"]


def test_a_chart_republished_under_the_same_version_is_deployed(cluster, namespace, repo, tmp_path):
    """A new digest is fetched and deployed; the cached copy it replaces, unused for 31 days, is
    removed; the copy in use is touched by every run that uses it, so it is never old."""
    chart = small_chart(tmp_path / "small")
    repo.publish(chart)
    cache = tmp_path / "cache"
    run_tasks(tmp_path, [release_task(cluster, namespace, repo, cache)])
    (first,) = (cache / "charts").iterdir()
    month_ago = time.time() - 31 * 24 * 3600
    os.utime(first, (month_ago, month_ago))
    template = chart / "templates" / "web.yaml"
    template.write_text(template.read_text().replace("message: {{", "note: edited\n  message: {{"))
    repo.publish(chart)  # same name and version, new digest
    (result,) = run_tasks(tmp_path, [release_task(cluster, namespace, repo, cache)])
    assert result["changed"] and result["changes"]["modified"] == [f"ConfigMap {namespace}/web-config"], result
    assert cluster.get_json("configmap", "web-config", "-n", namespace)["data"]["note"] == "edited"
    (second,) = (cache / "charts").iterdir()
    assert second != first and (second / "small" / "Chart.yaml").is_file()

    os.utime(second, (month_ago, month_ago))
    (again,) = run_tasks(tmp_path, [release_task(cluster, namespace, repo, cache)])
    assert not again["changed"], again
    assert time.time() - second.stat().st_mtime < 600


def test_a_tampered_archive_and_an_unknown_version_deploy_nothing(cluster, namespace, repo, tmp_path):
    chart = small_chart(tmp_path / "small")
    repo.publish(chart)
    archive = repo.root / "small-1.0.0.tgz"
    tampered = tmp_path / "other"
    shutil.copytree(chart, tampered)
    (tampered / "values.yaml").write_text("web:\n  replicas: 9\n")
    subprocess.run([str(repo.helm_bin), "package", str(tampered), "-d", str(tmp_path)], check=True, capture_output=True)
    shutil.copy(tmp_path / "small-1.0.0.tgz", archive)  # the index still lists the first digest
    cache = tmp_path / "cache"
    wrong_digest, unknown = run_tasks(
        tmp_path,
        [
            release_task(cluster, namespace, repo, cache),
            release_task(cluster, namespace, repo, cache, chart_version="9.9.9"),
        ],
    )
    assert wrong_digest["failed"] and "refusing a chart that is not what the repository lists" in wrong_digest["msg"]
    assert unknown["failed"] and "has no chart small version 9.9.9 (versions it has: 1.0.0)" in unknown["msg"]
    assert "nothing was deployed" in unknown["msg"]
    assert helm(cluster, "status", "web", "-n", namespace, check=False).returncode != 0
    assert not list(cache.glob("charts/*/small"))  # nothing unverified was kept


def test_stand_ins_say_so(cluster, namespace, repo, tmp_path):
    chart = small_chart(tmp_path / "small")
    meta = chart / "Chart.yaml"
    meta.write_text(
        meta.read_text()
        + "annotations:\n  mybinder.org/stand-in: 'true'\n  mybinder.org/stand-in-for: small from nowhere\n"
    )
    repo.publish(chart)
    (result,) = run_tasks(tmp_path, [release_task(cluster, namespace, repo, tmp_path / "cache")], "--check")
    assert result["changed"] and result["chart_info"]["stand_in"] is True
    assert result["chart_info"]["stand_in_for"] == "small from nowhere"
    assert helm(cluster, "status", "web", "-n", namespace, check=False).returncode != 0  # check mode


def test_a_first_install_into_a_new_namespace_is_checked_by_the_server_first(cluster, repo, tmp_path):
    """The namespace does not exist: helm_release creates it so that the API server can dry-run every
    object; invalid values are refused with the server's message and the namespace is deleted again
    (gone before the module returns: the next run can create it). Valid values are then installed
    (helm's client-side schema check is skipped after the server's)."""
    chart = small_chart(tmp_path / "small")
    repo.publish(chart)
    cache = tmp_path / "cache"
    ns = f"t-new-{uuid.uuid4().hex[:8]}"
    try:
        (bad,) = run_tasks(tmp_path, [release_task(cluster, ns, repo, cache, values={"web": {"cpu": "lots"}})])
        assert bad["failed"] and "the API server rejects what release web would deploy" in bad["msg"], bad
        assert "quantities must match the regular expression" in bad["msg"], bad["msg"]
        # the namespace created for the check is gone again before the module returns
        assert bad["msg"].endswith(f"(namespace {ns}, created for this check, was deleted again)"), bad["msg"]
        assert cluster.kubectl("get", "namespace", ns, check=False).returncode != 0
        assert helm(cluster, "status", "web", "-n", ns, check=False).returncode != 0

        (good,) = run_tasks(tmp_path, [release_task(cluster, ns, repo, cache)])
        assert good["changed"] and good["release"]["revision"] == 1, good
        assert "--disable-openapi-validation" in good["command"], good["command"]
        labels = cluster.get_json("namespace", ns)["metadata"]["labels"]
        assert labels["name"] == ns  # as helm --create-namespace labels it
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")


EXTRA_SPEC = """\
---
apiVersion: v1
kind: Service
metadata:
  name: web-extra
spec:
  selector: {app: web}
  ports: [{port: 81}]
  {{- with .Values.web.extraSpec }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
"""


def test_a_misspelt_field_is_refused_on_a_first_install_where_helm_alone_drops_it(cluster, repo, tmp_path):
    """Why a first install is dry-run by the API server before helm runs: helm 3 creates objects
    without strict field validation, so a misspelt field (sessionAfinity) is dropped with a warning
    and the install succeeds. The server-side apply dry run refuses it, naming the field, and
    nothing is left (no release, no namespace)."""
    chart = small_chart(tmp_path / "small", extra_template=EXTRA_SPEC)
    repo.publish(chart)
    typo = {"web": {"replicas": 1, "extraSpec": {"sessionAfinity": "ClientIP"}}}
    alone, checked = (f"t-typo-{uuid.uuid4().hex[:8]}" for _ in range(2))
    values = tmp_path / "typo.json"
    values.write_text(json.dumps(typo))
    try:
        # helm on its own: installed, the field silently gone
        helm(cluster, "install", "web", str(chart), "-n", alone, "--create-namespace", "-f", str(values))
        live = cluster.get_json("service", "web-extra", "-n", alone)
        assert live["spec"].get("sessionAffinity", "None") == "None" and "sessionAfinity" not in live["spec"]

        (bad,) = run_tasks(tmp_path, [release_task(cluster, checked, repo, tmp_path / "cache", values=typo)])
        assert bad["failed"] and "the API server rejects what release web would deploy" in bad["msg"], bad
        assert "sessionAfinity" in bad["msg"] and "field not declared in schema" in bad["msg"], bad["msg"]
        assert cluster.kubectl("get", "namespace", checked, check=False).returncode != 0
        assert helm(cluster, "status", "web", "-n", checked, check=False).returncode != 0
    finally:
        for ns in (alone, checked):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")


def test_a_misspelt_field_is_refused_on_an_upgrade_too(cluster, repo, tmp_path):
    """The same typo in an upgrade: the dry run of an object that exists falls back to a
    replacement (PUT) when the apply is refused, which must validate fields as strictly; the
    typo is named, nothing changes and the revision that served still serves."""
    chart = small_chart(tmp_path / "small", extra_template=EXTRA_SPEC)
    repo.publish(chart)
    ns = f"t-typo-{uuid.uuid4().hex[:8]}"
    try:
        good = {"web": {"replicas": 1, "extraSpec": {"sessionAffinity": "ClientIP"}}}
        (first,) = run_tasks(tmp_path, [release_task(cluster, ns, repo, tmp_path / "cache", values=good)])
        assert first["changed"] and not first.get("failed"), first
        typo = {"web": {"replicas": 1, "extraSpec": {"sessionAffinity": "ClientIP", "sessionAfinity": "None"}}}
        (bad,) = run_tasks(tmp_path, [release_task(cluster, ns, repo, tmp_path / "cache", values=typo)])
        assert bad["failed"] and "the API server rejects what release web would deploy" in bad["msg"], bad
        assert "sessionAfinity" in bad["msg"] and "revision 1 still serves" in bad["msg"], bad["msg"]
        assert [h["revision"] for h in json.loads(helm(cluster, "history", "web", "-n", ns, "-o", "json").stdout)] == [
            1
        ]
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")


def test_a_first_install_over_an_object_made_by_hand_says_how_to_adopt_it(cluster, repo, tmp_path):
    """A ClusterRole of the chart's name already exists, made by hand. The first install's render
    (helm's own check) refuses to take it over: the error names the object and both fixes, and
    nothing is made (no namespace, no release). take_ownership=true then renders and installs,
    adopting the object."""
    role = f"t-hand-{uuid.uuid4().hex[:8]}"
    chart = small_chart(
        tmp_path / "small",
        extra_template=f"---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n"
        f"  name: {role}\nrules: []\n",
    )
    repo.publish(chart)
    ns = f"t-hand-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "clusterrole", role, "--verb=get", "--resource=pods")
    try:
        (bad,) = run_tasks(tmp_path, [release_task(cluster, ns, repo, tmp_path / "cache")])
        assert bad["failed"] and f'ClusterRole "{role}"' in bad["msg"], bad
        assert "nothing was deployed" in bad["msg"], bad["msg"]
        assert bad["msg"].endswith("delete it, or set take_ownership=true to let the release adopt it"), bad["msg"]
        assert cluster.kubectl("get", "namespace", ns, check=False).returncode != 0
        assert helm(cluster, "status", "web", "-n", ns, check=False).returncode != 0

        (good,) = run_tasks(tmp_path, [release_task(cluster, ns, repo, tmp_path / "cache", take_ownership=True)])
        assert good["changed"] and good["release"]["revision"] == 1, good
        owner = cluster.get_json("clusterrole", role)["metadata"]["annotations"]["meta.helm.sh/release-name"]
        assert owner == "web"
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
        cluster.kubectl("delete", "clusterrole", role, "--ignore-not-found")


def test_a_first_install_that_helm_refuses_after_the_dry_run_leaves_no_namespace(cluster, repo, tmp_path):
    """helm installs a chart's crds/ before anything else, and they are not part of the render the
    API server dry-runs. An invalid one (its name does not match its plural and group) passes the
    dry run and stops helm before it records a revision: the namespace made for the dry run is
    deleted again, as after a refused dry run, and the next run can start from nothing."""
    chart = small_chart(tmp_path / "small")
    (chart / "crds").mkdir()
    (chart / "crds" / "gadgets.yaml").write_text(
        CRD.format(group=f"t{uuid.uuid4().hex[:8]}.example.org").replace("name: gadgets.", "name: widgets.", 1)
    )
    repo.publish(chart)
    ns = f"t-crd-{uuid.uuid4().hex[:8]}"
    try:
        (bad,) = run_tasks(tmp_path, [release_task(cluster, ns, repo, tmp_path / "cache")])
        assert bad["failed"] and f"helm upgrade of release web in namespace {ns} failed" in bad["msg"], bad
        assert "widgets." in bad["msg"] and 'must be spec.names.plural+"."+spec.group' in bad["msg"], bad["msg"]
        assert bad["msg"].endswith(f"(namespace {ns}, created for this check, was deleted again)"), bad["msg"]
        assert cluster.kubectl("get", "namespace", ns, check=False).returncode != 0
        assert helm(cluster, "status", "web", "-n", ns, check=False).returncode != 0
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")


CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def test_a_revision_made_from_the_same_inputs_is_not_rendered_again(cluster, namespace, repo, tmp_path):
    """The second run finds the digest of its inputs in the serving revision and skips the render;
    a template with a random value is then not a change (a render would be). A hand-deleted object,
    a new kind in the API and always_render each make it render and compare again."""
    chart = small_chart(tmp_path / "small")
    (chart / "templates" / "random.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-random\n"
        "data:\n  token: {{ randAlphaNum 12 | quote }}\n"
    )
    repo.publish(chart)
    cache = tmp_path / "cache"
    (first,) = run_tasks(tmp_path, [release_task(cluster, namespace, repo, cache)], "--check")
    assert first["changed"], first  # check mode on an empty namespace: an install
    installed, again = run_tasks(
        tmp_path, [release_task(cluster, namespace, repo, cache), release_task(cluster, namespace, repo, cache)]
    )
    assert installed["changed"] and installed["compared"] == "render", installed
    assert not again["changed"] and again["compared"] == "inputs", again
    assert (
        again["workloads"] == installed["workloads"] == [{"kind": "Deployment", "namespace": namespace, "name": "web"}]
    )
    assert again["release"]["revision"] == 1 and again["chart_info"]["name"] == "small"

    (rendered,) = run_tasks(tmp_path, [release_task(cluster, namespace, repo, cache, always_render=True)], "--check")
    assert rendered["compared"] == "render" and rendered["changed"], rendered  # the random value differs
    assert rendered["changes"]["modified"] == [f"ConfigMap {namespace}/web-random"], rendered["changes"]

    cluster.kubectl("delete", "configmap", "web-config", "-n", namespace)
    (healed,) = run_tasks(tmp_path, [release_task(cluster, namespace, repo, cache)])
    assert healed["changed"] and healed["changes"]["missing"] == [f"ConfigMap {namespace}/web-config"], healed
    assert healed["release"]["revision"] == 2
    (quiet,) = run_tasks(tmp_path, [release_task(cluster, namespace, repo, cache)])
    assert not quiet["changed"] and quiet["compared"] == "inputs", quiet

    group = f"{namespace}.example.org"
    cluster.kubectl("apply", "-f", "-", input_text=CRD.format(group=group))
    try:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/gadgets.{group}", "--timeout=60s")
        (new_api,) = run_tasks(tmp_path, [release_task(cluster, namespace, repo, cache)], "--check")
        assert new_api["compared"] == "render", new_api  # .Capabilities changed: render
    finally:
        cluster.kubectl("delete", "crd", f"gadgets.{group}", "--wait=false")
