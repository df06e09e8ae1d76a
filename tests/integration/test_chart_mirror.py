"""tools/chart-mirror.py: a local Helm repository serving the stand-in charts (no cluster)."""

from __future__ import annotations

import contextlib
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


class Mirror:
    def __init__(self, state: Path, charts: Path | None = None):
        self.env = {**os.environ, "MYBINDER_CLUSTER_DIR": str(state)}
        if charts:
            self.env["MYBINDER_STAND_IN_CHARTS"] = str(charts)
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
    """A copy of the stand-in charts, so a test can change them."""
    copy = tmp_path / "stand-in-charts"
    shutil.copytree(
        ROOT / "tests" / "stand-in-charts", copy, ignore=shutil.ignore_patterns("charts", "*.tgz", "Chart.lock")
    )
    m = Mirror(tmp_path / "cluster", copy)
    yield m, copy
    m("stop", check=False)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


def chart_meta(tgz: bytes, name: str) -> dict:
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        return yaml.safe_load(tar.extractfile(f"{name}/Chart.yaml").read())


def test_start_serves_every_stand_in_as_a_helm_repository(mirror):
    res = mirror("start")
    url = res.stdout.strip()
    assert res.stdout.count("\n") == 1 and url.startswith("http://127.0.0.1:"), "stdout is the URL only"
    index = yaml.safe_load(fetch(f"{url}/index.yaml"))
    expected = {}
    for chart in sorted((ROOT / "tests" / "stand-in-charts").glob("*/Chart.yaml")):
        meta = yaml.safe_load(chart.read_text())
        expected[meta["name"]] = str(meta["version"])
    assert {n: [v["version"] for v in vs] for n, vs in index["entries"].items()} == {
        n: [v] for n, v in expected.items()
    }
    assert {"binderhub", "jupyterhub", "prometheus", "grafana"} <= set(expected)
    for name, versions in index["entries"].items():
        meta = chart_meta(fetch(f"{url}/{versions[0]['urls'][0]}"), name)
        assert meta["annotations"]["mybinder.org/stand-in"] == "true", name
        assert meta["description"].startswith("STAND-IN"), name
    # binderhub carries jupyterhub inside, like the real chart
    with tarfile.open(fileobj=io.BytesIO(fetch(f"{url}/{index['entries']['binderhub'][0]['urls'][0]}"))) as tar:
        assert any(n == "binderhub/charts/jupyterhub/Chart.yaml" for n in tar.getnames())
    # the source tree is left as it was
    assert not list((ROOT / "tests" / "stand-in-charts").glob("*/charts"))
    assert not list((ROOT / "tests" / "stand-in-charts").glob("*/Chart.lock"))


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


def test_a_changed_stand_in_is_packaged_again(own_charts):
    m, charts = own_charts
    url = m("start").stdout.strip()
    values = charts / "grafana" / "values.yaml"
    values.write_text(values.read_text().replace("replicas: 1", "replicas: 3"))
    res = m("start")
    assert "packaged grafana-" in res.stderr
    assert "packaged binderhub-" not in res.stderr
    index = yaml.safe_load(fetch(f"{url}/index.yaml"))
    with tarfile.open(fileobj=io.BytesIO(fetch(f"{url}/{index['entries']['grafana'][0]['urls'][0]}"))) as tar:
        assert "replicas: 3" in tar.extractfile("grafana/values.yaml").read().decode()


def test_a_chart_that_does_not_say_it_is_a_stand_in_is_refused(own_charts):
    m, charts = own_charts
    chart = charts / "grafana" / "Chart.yaml"
    chart.write_text(chart.read_text().replace('mybinder.org/stand-in: "true"', 'mybinder.org/stand-in: "no"'))
    res = m("start", check=False)
    assert res.returncode == 1
    assert "grafana/Chart.yaml lacks the annotation mybinder.org/stand-in" in res.stderr
    assert res.stdout == ""


def test_status_url_and_stop(mirror):
    assert mirror("status", check=False).returncode == 3
    assert mirror("url", check=False).returncode == 3
    url = mirror("start").stdout.strip()
    pid = mirror.pid()
    status = mirror("status")
    assert f"running at {url}" in status.stdout and "STAND-IN" in status.stdout
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
            if b"_serve" in cmdline and str(state / "charts").encode() in cmdline:
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
