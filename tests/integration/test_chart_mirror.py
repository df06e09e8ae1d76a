"""tools/chart-mirror.py: the real charts of a mirror directory served on loopback, failure-injection
fixtures packaged and served on request, the local chart source, and `pull`, which fills an
air-gapped operator's mirror directory (no cluster)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers_chart import ROOT, helm, run

TOOL = str(ROOT / "tools" / "chart-mirror.py")
REAL_CHARTS = ROOT.parent / "shared" / "charts"
FIXTURES = ROOT / "tests" / "fixtures" / "charts"


class Mirror:
    def __init__(self, state: Path, fixtures: Path | None = None, chart_dir: Path | None = None):
        self.env = {**os.environ, "MYBINDER_CLUSTER_DIR": str(state)}
        self.env.pop("MYBINDER_CHART_DIR", None)
        self.env.pop("MYBINDER_FIXTURE_CHARTS", None)
        if fixtures:
            self.env["MYBINDER_FIXTURE_CHARTS"] = str(fixtures)
        if chart_dir:
            self.env["MYBINDER_CHART_DIR"] = str(chart_dir)
        self.state = state / "chart-mirror"

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([TOOL, *args], check=check, env=self.env)

    def pid(self) -> int:
        return int((self.state / "server.pid").read_text())


@pytest.fixture
def mirror(tmp_path):
    m = Mirror(tmp_path / "cluster")
    yield m
    m("stop", check=False)


@pytest.fixture
def own_charts(tmp_path):
    """A copy of the fixture charts, so a test can change them."""
    copy = tmp_path / "fixture-charts"
    shutil.copytree(FIXTURES, copy, ignore=shutil.ignore_patterns("charts", "*.tgz", "Chart.lock"))
    m = Mirror(tmp_path / "cluster", copy)
    yield m, copy
    m("stop", check=False)


def add_small_fixture(charts: Path, name: str) -> None:
    """A second fixture chart, made in a test's copy only: one labelled ConfigMap."""
    chart = charts / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n"
        "description: STAND-IN test fixture made by test_chart_mirror.py (one ConfigMap)\n"
        "annotations:\n  mybinder.org/stand-in: 'true'\n  mybinder.org/stand-in-for: nothing\n"
    )
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
        "  labels:\n    mybinder.org/stand-in: 'true'\ndata:\n  greeting: {{ .Values.greeting | quote }}\n"
    )


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


def chart_meta(tgz: bytes, name: str) -> dict:
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        return yaml.safe_load(tar.extractfile(f"{name}/Chart.yaml").read())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_start_serves_the_real_charts_of_the_mirror_directory_unmodified(mirror):
    res = mirror("start")
    url = res.stdout.strip()
    assert res.stdout.count("\n") == 1 and url.startswith("http://127.0.0.1:"), "stdout is the URL only"
    assert f"real charts of {REAL_CHARTS.resolve()}" in res.stderr
    index = yaml.safe_load(fetch(f"{url}/index.yaml"))
    assert index == yaml.safe_load((REAL_CHARTS / "index.yaml").read_text())
    assert {"binderhub", "prometheus", "grafana", "cert-manager", "ingress-nginx", "traefik", "kube-lego"} <= set(
        index["entries"]
    )
    for name, versions in index["entries"].items():
        tgz = fetch(f"{url}/{versions[0]['urls'][0]}")
        assert sha256(tgz) == versions[0]["digest"], name
        assert "mybinder.org/stand-in" not in (chart_meta(tgz, name).get("annotations") or {}), name
    # the real binderhub chart carries jupyterhub inside
    binderhub = index["entries"]["binderhub"][0]
    with tarfile.open(fileobj=io.BytesIO(fetch(f"{url}/{binderhub['urls'][0]}"))) as tar:
        assert "binderhub/charts/jupyterhub/Chart.yaml" in tar.getnames()
    assert b"kind: CustomResourceDefinition" in fetch(f"{url}/manifests/cert-manager.crds.yaml")


def test_a_mirror_directory_without_an_index_is_refused_with_how_to_fill_one(tmp_path):
    m = Mirror(tmp_path / "cluster", chart_dir=tmp_path / "empty")
    res = m("start", check=False)
    assert res.returncode == 1 and res.stdout == ""
    assert f"no chart repository directory at MYBINDER_CHART_DIR={tmp_path / 'empty'}" in res.stderr
    assert "tools/chart-mirror.py pull DIR" in res.stderr


def test_source_serves_the_mirror_directory_when_no_upstream_repository_answers(mirror):
    """This machine reaches no chart repository: the local inventory's source is the served mirror."""
    res = mirror("source")
    assert res.stdout.strip() == mirror("url").stdout.strip()
    assert yaml.safe_load(fetch(f"{res.stdout.strip()}/index.yaml"))["entries"]["binderhub"]


def test_helm_resolves_the_meta_chart_pins_from_the_mirror(mirror, tmp_path):
    """The air-gapped path: point the dependencies at the mirror and get the pinned versions."""
    url = mirror("start").stdout.strip()
    copy = tmp_path / "mybinder"
    shutil.copytree(ROOT / "mybinder", copy, ignore=shutil.ignore_patterns("charts"))
    text = (copy / "Chart.yaml").read_text()
    for repo in (
        "https://jupyterhub.github.io/helm-chart",
        "https://prometheus-community.github.io/helm-charts",
        "https://grafana.github.io/helm-charts",
    ):
        text = text.replace(repo, url)
    (copy / "Chart.yaml").write_text(text)
    run([helm(), "dependency", "update", str(copy)])
    pinned = yaml.safe_load((ROOT / "mybinder" / "Chart.lock").read_text())["dependencies"]
    got = yaml.safe_load((copy / "Chart.lock").read_text())["dependencies"]
    assert [(d["name"], d["version"]) for d in got] == [(d["name"], d["version"]) for d in pinned]
    assert sorted(p.name for p in (copy / "charts").iterdir()) == sorted(
        f"{d['name']}-{d['version']}.tgz" for d in pinned
    )


def test_start_again_reuses_the_running_server_and_packages_nothing(mirror):
    first = mirror("start")
    pid = mirror.pid()
    second = mirror("start")
    assert second.stdout == first.stdout
    assert mirror.pid() == pid
    assert "packaged" not in second.stderr
    assert "running at" in second.stderr


def test_a_changed_fixture_is_packaged_again(own_charts):
    m, charts = own_charts
    add_small_fixture(charts, "unchanged")
    first = m("start")
    url = first.stdout.strip()
    assert "packaged kube-lego-0.4.2.tgz" in first.stderr and "packaged unchanged-0.1.0.tgz" in first.stderr
    values = charts / "kube-lego" / "values.yaml"
    values.write_text(values.read_text().replace("replicaCount: 1", "replicaCount: 3"))
    res = m("start")
    assert "packaged kube-lego-" in res.stderr
    assert "packaged unchanged-" not in res.stderr
    index = yaml.safe_load(fetch(f"{url}/index.yaml"))
    assert set(index["entries"]) == {"kube-lego", "unchanged"}
    with tarfile.open(fileobj=io.BytesIO(fetch(f"{url}/{index['entries']['kube-lego'][0]['urls'][0]}"))) as tar:
        assert "replicaCount: 3" in tar.extractfile("kube-lego/values.yaml").read().decode()


def test_a_fixture_that_does_not_say_it_is_not_a_real_chart_is_refused(own_charts):
    m, charts = own_charts
    chart = charts / "kube-lego" / "Chart.yaml"
    chart.write_text(chart.read_text().replace('mybinder.org/stand-in: "true"', 'mybinder.org/stand-in: "no"'))
    res = m("start", check=False)
    assert res.returncode == 1
    assert "kube-lego/Chart.yaml lacks the annotation mybinder.org/stand-in" in res.stderr
    assert res.stdout == ""


def test_status_url_and_stop(mirror):
    assert mirror("status", check=False).returncode == 3
    assert mirror("url", check=False).returncode == 3
    url = mirror("start").stdout.strip()
    pid = mirror.pid()
    status = mirror("status")
    assert f"running at {url}" in status.stdout and "STAND-IN" not in status.stdout
    assert "binderhub 1.0.0-0.dev.git.3958.haf9ca8b1" in status.stdout
    assert mirror("url").stdout.strip() == url
    mirror("stop")
    assert not Path(f"/proc/{pid}").exists() or b"_serve" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert mirror("url", check=False).returncode == 3
    with pytest.raises(OSError):
        fetch(f"{url}/index.yaml")


def serving_processes(state: Path) -> list[int]:
    """Pids of the mirror servers of one state directory."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"_serve" in cmdline and str(state).encode() in cmdline:
                out.append(int(proc.name))
    return out


def test_concurrent_starts_share_one_server(mirror):
    procs = [
        subprocess.Popen([TOOL, "start"], env=mirror.env, stdout=subprocess.PIPE, text=True) for _attempt in range(3)
    ]
    urls = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert len(urls) == 1 and all(p.returncode == 0 for p in procs)
    assert serving_processes(mirror.state) == [mirror.pid()]


def test_a_server_that_stopped_answering_is_replaced_not_left_behind(mirror):
    mirror("start")
    old = mirror.pid()
    os.kill(old, signal.SIGSTOP)  # alive, but answers nothing
    try:
        res = mirror("start")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(old, signal.SIGCONT)
    assert "does not answer: restarting it" in res.stderr
    assert mirror.pid() != old
    assert serving_processes(mirror.state) == [mirror.pid()]
    assert yaml.safe_load(fetch(f"{res.stdout.strip()}/index.yaml"))["entries"]


def test_the_build_copy_of_the_meta_chart_is_the_same_after_every_build(mirror, tmp_path):
    """chart_build against the mirror: the first build (which fetches) and the next (which does not)
    leave the same files, so helm_release's digest of the chart changes only when the chart does."""
    from tasks_testlib import run_tasks

    url = mirror("start").stdout.strip()
    dest = tmp_path / "build" / "mybinder"
    task = {"mybinder.deploy.chart_build": {"src": str(ROOT / "mybinder"), "dest": str(dest), "mirror": url}}

    def files() -> dict[str, bytes]:
        return {str(p.relative_to(dest)): p.read_bytes() for p in sorted(dest.rglob("*")) if p.is_file()}

    (first,) = run_tasks(tmp_path, [dict(task)])
    assert first["fetched"], first
    after_first = files()
    (second,) = run_tasks(tmp_path, [dict(task)])
    assert not second["fetched"] and not second["changed"], second
    assert files() == after_first
    assert "Chart.lock" not in after_first  # the upstream lock is stale in a mirror build


def pinned() -> dict[str, str]:
    """name -> version of every chart the project pins (the meta chart and the roles' defaults)."""
    out = {
        d["name"]: str(d["version"])
        for d in yaml.safe_load((ROOT / "mybinder" / "Chart.yaml").read_text())["dependencies"]
    }
    tls = yaml.safe_load((ROOT / "roles" / "tls" / "defaults" / "main.yml").read_text())
    ingress = yaml.safe_load((ROOT / "roles" / "ingress" / "defaults" / "main.yml").read_text())
    out["cert-manager"] = str(tls["tls_cert_manager_chart_version"])
    out["kube-lego"] = str(tls["tls_kube_lego_chart_version"])
    out["ingress-nginx"] = str(ingress["ingress_chart_version"])
    return out


def test_pull_mirrors_every_pinned_chart_and_the_crds_into_a_directory_that_serves_the_deploy(mirror, tmp_path):
    """The air-gapped operator's other half: fill a directory from a repository (here the real charts
    served on loopback, as upstream would serve them), then serve that directory as the mirror."""
    upstream = mirror("start").stdout.strip()
    dest = tmp_path / "charts"
    res = run([TOOL, "pull", str(dest), "--from", upstream], env=mirror.env)
    want = pinned()
    assert sorted(p.name for p in dest.glob("*.tgz")) == sorted(f"{n}-{v}.tgz" for n, v in want.items())
    for tgz in dest.glob("*.tgz"):  # byte for byte what the repository serves
        assert tgz.read_bytes() == (REAL_CHARTS / tgz.name).read_bytes(), tgz.name
    assert (dest / "manifests" / "cert-manager.crds.yaml").read_bytes() == (
        REAL_CHARTS / "manifests" / "cert-manager.crds.yaml"
    ).read_bytes()
    index = yaml.safe_load((dest / "index.yaml").read_text())
    assert {n: [e["version"] for e in es] for n, es in index["entries"].items()} == {n: [v] for n, v in want.items()}
    assert f"{len(want)} charts fetched, 0 already there" in res.stderr

    again = run([TOOL, "pull", str(dest), "--from", upstream], env=mirror.env)
    assert f"0 charts fetched, {len(want)} already there" in again.stderr

    # the filled directory is a mirror the deploy's chart build resolves every pin from
    own = Mirror(tmp_path / "cluster2", chart_dir=dest)
    try:
        url = own("start").stdout.strip()
        copy = tmp_path / "mybinder"
        shutil.copytree(ROOT / "mybinder", copy, ignore=shutil.ignore_patterns("charts"))
        text = (copy / "Chart.yaml").read_text()
        for dep in yaml.safe_load(text)["dependencies"]:
            text = text.replace(dep["repository"], url)
        (copy / "Chart.yaml").write_text(text)
        run([helm(), "dependency", "update", str(copy)])
        assert sorted(p.name for p in (copy / "charts").iterdir()) == sorted(
            f"{n}-{want[n]}.tgz" for n in ("binderhub", "prometheus", "grafana")
        )
    finally:
        own("stop", check=False)


def test_pull_refuses_an_archive_that_does_not_match_its_index_and_keeps_nothing_of_it(tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(REAL_CHARTS, tampered)
    grafana = next(tampered.glob("grafana-*.tgz"))
    grafana.write_bytes(grafana.read_bytes() + b"\0")
    served = Mirror(tmp_path / "cluster", chart_dir=tampered)
    try:
        url = served("start").stdout.strip()
        dest = tmp_path / "dest"
        res = run([TOOL, "pull", str(dest), "--from", url], check=False, env=served.env)
    finally:
        served("stop", check=False)
    assert res.returncode == 1
    assert f"{grafana.name[: -len('.tgz')]} from {url} does not match the digest of its index: not kept" in res.stderr
    assert not (dest / grafana.name).exists()
    assert not list(dest.glob(".*.part"))


def test_pull_names_a_repository_that_does_not_answer(tmp_path):
    res = run([TOOL, "pull", str(tmp_path / "dest"), "--from", "http://127.0.0.1:1"], check=False)
    assert res.returncode == 1
    assert "the chart repository http://127.0.0.1:1 does not answer" in res.stderr
    assert "--from URL" in res.stderr


def test_the_upstream_path_needs_no_helm_repo_add_and_keeps_the_pins(mirror, tmp_path):
    """chart_build without a mirror, on a machine whose helm knows no repository (a CI runner, an
    execution environment): the dependencies come from the repositories of Chart.yaml. A loopback
    repository plays upstream here; `helm dependency build` would refuse it ("no repository
    definition ... helm repo add")."""
    from tasks_testlib import run_tasks

    upstream = mirror("start").stdout.strip()
    src = tmp_path / "mybinder"
    shutil.copytree(ROOT / "mybinder", src, ignore=shutil.ignore_patterns("charts"))
    chart = src / "Chart.yaml"
    text = chart.read_text()
    for dep in yaml.safe_load(text)["dependencies"]:
        text = text.replace(dep["repository"], upstream)
    chart.write_text(text)
    (src / "Chart.lock").unlink()
    run([helm(), "dependency", "update", str(src)])  # the lock an online `helm dependency update` writes
    shutil.rmtree(src / "charts")
    lock = (src / "Chart.lock").read_text()
    no_repos = {"HELM_REPOSITORY_CONFIG": str(tmp_path / "no-repositories.yaml")}
    dest = tmp_path / "build" / "mybinder"
    task = {"mybinder.deploy.chart_build": {"src": str(src), "dest": str(dest), "mirror": ""}}
    (first,) = run_tasks(tmp_path, [dict(task)], env=no_repos)
    assert first.get("failed") is not True, first
    assert first["fetched"] and "dependency update" in first["command"]
    assert sorted(p.name for p in (dest / "charts").iterdir()) == sorted(
        f"{d['name']}-{d['version']}.tgz" for d in yaml.safe_load(lock)["dependencies"]
    )
    assert (dest / "Chart.lock").read_text() == lock  # the copy keeps the source's lock
    (second,) = run_tasks(tmp_path, [dict(task)], env=no_repos)
    assert not second["fetched"] and not second["changed"], second

    # a lock that pins another version than the repository serves is refused, naming both
    pinned = src / "Chart.lock"
    pinned.write_text(lock.replace("version: 10.5.15", "version: 10.5.14"))
    (refused,) = run_tasks(tmp_path, [dict(task)], env=no_repos)
    assert refused.get("failed"), refused
    assert "the upstream repositories resolved other dependency versions than" in refused["msg"]


def test_the_index_is_always_served_whole_never_not_modified(mirror):
    """One loopback URL serves different directories over time (fixtures, then the real charts):
    a client's If-Modified-Since from a newer index must not get a stale one confirmed."""
    url = mirror("start").stdout.strip()
    req = urllib.request.Request(
        f"{url}/index.yaml", headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT", "If-None-Match": '"x"'}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        assert yaml.safe_load(resp.read())["entries"]["cert-manager"]
