"""Helpers for the deploy.yml tests (tests/integration/test_deploy*.py): run the real playbook
against the local cluster with per-test overrides, read the result and the release state."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import ROOT, Cluster

RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)


@dataclass
class Run:
    rc: int
    output: str
    recap: dict[str, dict[str, int]]

    def host(self, name: str = "local") -> dict[str, int]:
        assert name in self.recap, f"no recap for {name}:\n{self.output[-4000:]}"
        return self.recap[name]

    @property
    def changed(self) -> int:
        return sum(r["changed"] for r in self.recap.values())

    @property
    def failed(self) -> int:
        return sum(r["failed"] + r["unreachable"] for r in self.recap.values())


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PYTHONUNBUFFERED="1",
    )
    return e


def command(tmp: Path, extra: dict[str, Any], *args: str, inventory: str | Path = "inventories/local") -> list[str]:
    tmp.mkdir(parents=True, exist_ok=True)
    evars = tmp / f"extra-vars-{time.monotonic_ns()}.json"
    evars.write_text(json.dumps(extra))
    return [
        str(ROOT / ".venv" / "bin" / "ansible-playbook"),
        "deploy.yml",
        "-i",
        str(inventory),
        "-e",
        f"@{evars}",
        *args,
    ]


def parse(rc: int, output: str) -> Run:
    recap = {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"} for m in RECAP.finditer(output)}
    return Run(rc, output, recap)


def deploy(
    tmp: Path, extra: dict[str, Any], *args: str, timeout: float = 900, inventory: str | Path = "inventories/local"
) -> Run:
    res = subprocess.run(
        command(tmp, extra, *args, inventory=inventory),
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return parse(res.returncode, res.stdout + res.stderr)


def start_deploy(
    tmp: Path, extra: dict[str, Any], *args: str, inventory: str | Path = "inventories/local"
) -> subprocess.Popen[str]:
    """A deploy started in the background, in a process group of its own, its output on stdout."""
    return subprocess.Popen(
        command(tmp, extra, *args, inventory=inventory),
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 600) -> Run:
    """The Run of a deploy started with start_deploy, once it ended."""
    out, _ = proc.communicate(timeout=timeout)
    return parse(proc.returncode, out)


def deploy_until(tmp: Path, extra: dict[str, Any], marker: str, *args: str, timeout: float = 600) -> str:
    """Start a deploy, wait until `marker` appears in its output, then kill the whole process group
    (SIGKILL: no cleanup handler runs, as when a CI job is cancelled). Returns the output so far."""
    proc = start_deploy(tmp, extra, *args)
    assert proc.stdout is not None
    out: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:
            out.append(line)
            if marker in line:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{marker!r} did not appear within {timeout} s:\n{''.join(out)[-3000:]}")
        else:
            raise AssertionError(f"the deploy ended before {marker!r} appeared:\n{''.join(out)[-3000:]}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return "".join(out)


def helm(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [str(cluster.bin_dir / "helm"), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {res.stderr}")
    return res


def history(cluster: Cluster, release: str, namespace: str) -> list[dict[str, Any]]:
    res = helm(cluster, "history", release, "-n", namespace, "-o", "json", check=False)
    if res.returncode != 0:
        return []
    return json.loads(res.stdout)


def pods(cluster: Cluster, namespace: str, selector: str) -> dict[str, str]:
    """name -> uid of the pods matching selector (pods being deleted left out)."""
    items = cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in items if not p["metadata"].get("deletionTimestamp")}


def small_chart(path: Path, extra_template: str = "") -> Path:
    """A chart with one Deployment, a ConfigMap, a Secret and a Service, driven by `web.*` values:
    quick to deploy, yet the same deploy path (chart build, render, compare, upgrade, rollout)."""
    (path / "templates").mkdir(parents=True, exist_ok=True)
    (path / "Chart.yaml").write_text("apiVersion: v2\nname: small\nversion: 1.0.0\nappVersion: '1'\n")
    (path / "values.yaml").write_text(
        "web:\n  replicas: 2\n  message: hello\n  token: not-a-secret\n  nodeSelector: {}\n  cpu: 10m\n"
    )
    (path / "templates" / "web.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: web-config
            data:
              message: {{ .Values.web.message | quote }}
            ---
            apiVersion: v1
            kind: Secret
            metadata:
              name: web-token
            stringData:
              token: {{ .Values.web.token | quote }}
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: web
            spec:
              replicas: {{ .Values.web.replicas }}
              selector:
                matchLabels: {app: web}
              template:
                metadata:
                  labels: {app: web}
                spec:
                  terminationGracePeriodSeconds: 0
                  nodeSelector: {{ toJson .Values.web.nodeSelector }}
                  containers:
                    - name: web
                      image: registry.invalid/web:1
                      resources:
                        requests:
                          cpu: {{ .Values.web.cpu }}
            ---
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              selector: {app: web}
              ports: [{port: 80}]
            """
        )
        + extra_template
    )
    return path


def overrides(
    tmp: Path, namespace: str, chart: Path, config: dict[str, Any] | None = None, **more: Any
) -> dict[str, Any]:
    """Extra vars that point deploy.yml at a test's own release, namespace, chart and public config
    (the rest - inventory layer, secret values, mirror, cluster - is the local environment's)."""
    cfg = tmp / "config.yaml"
    cfg.write_text(json.dumps(config or {}))
    extra = {
        "mybinder_release": namespace,
        "mybinder_namespace": namespace,
        "mybinder_chart_dir": str(chart),
        "mybinder_config_values_file": str(cfg),
        "mybinder_build_dir": str(tmp / "build"),
        "mybinder_hosts": {"binder": [f"{namespace}.deploy.test"]},
        "mybinder_rollout_timeout": 120,
        "mybinder_rollout_progress_interval": 5,
        "verify_require_tls": False,
        "verify_timeout": 60,
    }
    extra.update(more)
    return extra
