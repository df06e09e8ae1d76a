"""Shared pytest fixtures.

`cluster` brings the real local control plane up once per test session (tools/localcluster.py),
reuses one that is already running, and stops it at the end only if this session started it.
Tests that need Kubernetes take `cluster` (or `kube`, a kubernetes client bundle) and put what
they create in a namespace of their own (`namespace` fixture), so tests do not see each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import localcluster  # noqa: E402


def tools_bin() -> Path:
    out = subprocess.run(
        [str(ROOT / "tools" / "build-binaries.sh"), "--print"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


# Tools built by the project come first on PATH, as `make` arranges it.
os.environ["PATH"] = os.pathsep.join([str(tools_bin()), str(ROOT / ".venv" / "bin"), os.environ["PATH"]])
os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))


@dataclass
class Cluster:
    kubeconfig: Path
    server: str
    bin_dir: Path
    started_here: bool

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=input_text,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}): {res.stderr}")
        return res

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    state = localcluster.load_state()
    started_here = False
    if not localcluster.running(state):
        rc = localcluster.main(["up"])
        if rc != 0:
            pytest.fail("the local cluster did not start (see the [cluster] messages above)")
        started_here = True
        state = localcluster.load_state()
    assert state is not None
    os.environ["KUBECONFIG"] = str(localcluster.KUBECONFIG)
    yield Cluster(
        kubeconfig=localcluster.KUBECONFIG,
        server=f"https://127.0.0.1:{state['ports']['apiserver']}",
        bin_dir=Path(state["bin_dir"]),
        started_here=started_here,
    )
    if started_here and not os.environ.get("MYBINDER_KEEP_CLUSTER"):
        localcluster.main(["down"])


@pytest.fixture(scope="session")
def kube(cluster: Cluster):
    """kubernetes Python client objects bound to the local cluster."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    return type(
        "Kube",
        (),
        {
            "api_client": api_client,
            "core": client.CoreV1Api(api_client),
            "apps": client.AppsV1Api(api_client),
            "policy": client.PolicyV1Api(api_client),
        },
    )()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
