"""Shared helpers for the meta chart and render tests (no cluster needed).

Everything expensive is computed once per test session (lru_cache): the chart mirror (the real
charts, tools/chart-mirror.py), a build of the meta chart with its dependencies from that mirror, and one render per
environment through playbooks/render.yml (the same chart build and values layering as the
deploy).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ENVS = ("staging", "prod", "ovh", "local")
LABEL = "mybinder.org/node-purpose"
GITCRYPT_MAGIC = b"\x00GITCRYPT\x00"


def helm() -> str:
    path = shutil.which("helm")
    assert path, "helm is not on PATH (tests/conftest.py puts tools/build-binaries.sh --print first)"
    return path


def run(cmd: list[str], check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def tmpdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.lru_cache(maxsize=1)
def mirror_url() -> str:
    """The chart mirror of this session's cluster dir, serving the real charts (started if needed,
    stopped at exit if we started it)."""
    tool = str(ROOT / "tools" / "chart-mirror.py")
    was_running = run([tool, "url"], check=False).returncode == 0
    url = run([tool, "start"]).stdout.strip().splitlines()[-1]
    if not was_running:
        atexit.register(lambda: run([tool, "stop"], check=False))
    return url


@functools.lru_cache(maxsize=1)
def built_chart() -> Path:
    """mybinder/ with its dependencies (the real charts) built from the mirror, in a temporary copy."""
    dest = tmpdir("mybinder-chart-") / "mybinder"
    shutil.copytree(ROOT / "mybinder", dest, ignore=shutil.ignore_patterns("charts", "*.tgz"))
    chart = dest / "Chart.yaml"
    chart.write_text(re.sub(r"repository: https://\S+", f"repository: {mirror_url()}", chart.read_text()))
    (dest / "Chart.lock").unlink()
    run([helm(), "dependency", "update", str(dest)])
    return dest


def load_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


# Registry settings every render needs (use_registry is on in mybinder/values.yaml).
REGISTRY_VALUES = ROOT / "tests" / "fixtures" / "registry-values.yaml"


def with_registry(values_files: list[str | Path]) -> list[str | Path]:
    """The values files with registry settings first: an environment's secret file before its
    config/<env>.yaml (as the deploy layers them), else the test registry."""
    envs = [Path(v).stem for v in values_files if Path(v).parent == ROOT / "config"]
    first = [ROOT / "secret" / "config" / f"{envs[0]}.yaml"] if envs else [REGISTRY_VALUES]
    return [*first, *values_files]


def helm_template(values_files: list[str | Path], release: str = "t", namespace: str = "t", *extra: str) -> list[dict]:
    """Unredacted render of the built meta chart, in memory only (with test registry credentials
    first, so that an environment's own values files override them)."""
    cmd = [helm(), "template", release, str(built_chart()), "--namespace", namespace]
    for vf in with_registry(values_files):
        cmd += ["--values", str(vf)]
    return load_docs(run([*cmd, *extra]).stdout)


def helm_template_fails(values_files: list[str | Path], *extra: str) -> str:
    cmd = [helm(), "template", "t", str(built_chart())]
    for vf in with_registry(values_files):
        cmd += ["--values", str(vf)]
    res = run([*cmd, *extra], check=False)
    assert res.returncode != 0, "helm template succeeded, a failure was expected"
    return res.stderr


@dataclass
class Render:
    env: str
    out: Path
    proc: subprocess.CompletedProcess[str]
    index: dict[str, Any]

    @property
    def release(self) -> dict[str, Any]:
        return self.index["releases"][0]

    @property
    def docs(self) -> list[dict[str, Any]]:
        return load_docs((self.out / self.release["file"]).read_text())

    def values_files(self) -> list[Path]:
        return [p if Path(p).is_absolute() else ROOT / p for p in map(Path, self.release["values_files"])]

    def unredacted(self) -> list[dict[str, Any]]:
        """The same release rendered with helm directly from the same values files (secrets included)."""
        return helm_template(self.values_files(), self.release["name"], self.release["namespace"])


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def run_render(
    env: str, *extra: str, out: Path | None = None, check: bool = True
) -> Render | subprocess.CompletedProcess:
    out = out or tmpdir(f"render-{env}-")
    cmd = [
        str(ROOT / ".venv" / "bin" / "ansible-playbook"),
        str(ROOT / "playbooks" / "render.yml"),
        "-i",
        str(ROOT / "inventories" / env),
        "-e",
        f"render_dir={out}",
        # No upstream chart repository is reachable from the test machines.
        "-e",
        f"mybinder_chart_mirror={mirror_url()}",
        "-v",
        *extra,
    ]
    proc = run(cmd, check=False, env=ansible_env(), cwd=ROOT)
    if not check:
        return proc
    assert proc.returncode == 0, f"render of {env} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    index = yaml.safe_load((out / "releases.yaml").read_text())
    return Render(env, out, proc, index)


@functools.cache
def render(env: str, *extra: str) -> Render:
    """One render per environment (and extra arguments) per session."""
    require_unlocked(env)
    result = run_render(env, *extra)
    assert isinstance(result, Render)
    return result


def require_unlocked(env: str) -> None:
    secret = ROOT / "secret" / "config" / f"{env}.yaml"
    assert secret.exists(), f"{secret} is missing"
    assert not secret.read_bytes().startswith(GITCRYPT_MAGIC), (
        f"{secret} is still encrypted: unlock the secrets first (secret/README.md)"
    )


def secret_leaves(env: str) -> list[str]:
    """Every secret value of an environment (to prove none of them leaks)."""
    data = yaml.safe_load((ROOT / "secret" / "config" / f"{env}.yaml").read_text()) or {}
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif node is not None and len(str(node)) >= 8:
            out.append(str(node))

    walk(data)
    return out


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet")}


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    """A Secret's content as text, from `data` (base64) and `stringData` (jupyterhub's hub Secret
    uses the one, binderhub's binder-secret the other)."""
    import base64

    out = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    out.update(secret.get("stringData") or {})
    return out


def secret_values_yaml(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The values.yaml a chart stores in one of its Secrets."""
    return yaml.safe_load(secret_data(by_kind(docs, "Secret")[name])["values.yaml"])


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)
