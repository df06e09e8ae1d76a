"""Run the TLS and ingress roles against the local cluster and read what they did.

Each run is a real `ansible-playbook` of a two-line playbook that applies one role (or one of its
entry points) with the given variables; results come back through the ansible.posix.json
callback, so tests can assert which tasks changed, what the role reported and what failed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = """---
- name: Apply one role
  hosts: {hosts}
  gather_facts: false
  tasks:
    - name: Include mybinder.deploy.{role}
      ansible.builtin.include_role:
        name: mybinder.deploy.{role}
        tasks_from: {entry}
"""
INCLUDE_TASK = "Include mybinder.deploy."
# cert-manager's real CRD manifest, as the mirror directory holds it (manifests/)
CRDS = ROOT.parent / "shared" / "charts" / "manifests" / "cert-manager.crds.yaml"
# Where the local cluster serves cert-manager's real webhook (tools/localpods.py)
WEBHOOK_HOST_FILE = Path(os.environ.get("MYBINDER_CLUSTER_DIR", ROOT / ".cluster")) / "cert-manager-webhook-host"


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    doc: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def results(self) -> list[tuple[str, dict[str, Any]]]:
        """(task name, host result) for every task that ran, in order."""
        out = []
        for play in self.doc.get("plays", []):
            for task in play.get("tasks", []):
                name = task["task"]["name"]
                if name.startswith(INCLUDE_TASK):  # the include_role of the test playbook itself
                    continue
                for res in task.get("hosts", {}).values():
                    out.append((name.split(" : ", 1)[-1], res))
        return out

    def changed(self) -> list[str]:
        return [name for name, res in self.results() if res.get("changed")]

    def task(self, fragment: str) -> dict[str, Any]:
        matches = [res for name, res in self.results() if fragment in name]
        assert matches, f"no task named like {fragment!r}; tasks: {[n for n, _ in self.results()]}"
        return matches[-1]

    def ran(self, fragment: str) -> bool:
        return any(fragment in name and not res.get("skipped") for name, res in self.results())

    def failed(self) -> list[tuple[str, dict[str, Any]]]:
        return [(n, r) for n, r in self.results() if r.get("failed")]

    def fact(self, name: str) -> Any:
        value = None
        for _n, res in self.results():
            facts = res.get("ansible_facts") or {}
            if name in facts:
                value = facts[name]
        return value

    def messages(self) -> str:
        """Every msg of every task (and of every loop item), one JSON string per line."""
        out = []
        for _n, r in self.results():
            out.append(json.dumps(r.get("msg", "")))
            out.extend(json.dumps(item.get("msg", "")) for item in r.get("results", []) if isinstance(item, dict))
        return "\n".join(out)


def _ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_NOCOLOR="1",
    )
    return env


def run_role(
    role: str,
    variables: dict[str, Any],
    *,
    entry: str = "main",
    check: bool = False,
    inventory: Path | None = None,
    extra_args: tuple[str, ...] = (),
    timeout: int = 900,
) -> Run:
    """ansible-playbook of `role` (entry point `entry`) with `variables` as extra vars."""
    with tempfile.TemporaryDirectory(prefix="tls-test-") as tmp:
        book = Path(tmp) / "play.yml"
        hosts = "mybinder_clusters" if inventory else "localhost"
        book.write_text(PLAYBOOK.format(hosts=hosts, role=role, entry=entry))
        varfile = Path(tmp) / "vars.json"
        varfile.write_text(json.dumps(variables))
        cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(book), "-e", f"@{varfile}"]
        if inventory:
            cmd += ["-i", str(inventory)]
        if check:
            cmd.append("--check")
        cmd += list(extra_args)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_ansible_env(), cwd=ROOT, timeout=timeout)
    return _parse(proc)


def run_playbook(playbook: Path, variables: dict[str, Any], inventory: Path, *extra: str, timeout: int = 900) -> Run:
    """ansible-playbook of one of the collection's playbooks with `variables` as extra vars."""
    with tempfile.TemporaryDirectory(prefix="tls-test-") as tmp:
        varfile = Path(tmp) / "vars.json"
        varfile.write_text(json.dumps(variables))
        cmd = [
            str(ROOT / ".venv" / "bin" / "ansible-playbook"),
            str(playbook),
            "-i",
            str(inventory),
            "-e",
            f"@{varfile}",
        ]
        proc = subprocess.run(
            [*cmd, *extra], capture_output=True, text=True, env=_ansible_env(), cwd=ROOT, timeout=timeout
        )
    return _parse(proc)


def _parse(proc: subprocess.CompletedProcess[str]) -> Run:
    doc: dict[str, Any] = {}
    lines = proc.stdout.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.rstrip() == "{":  # profile_tasks prints timing lines around the JSON document
            doc, _ = json.JSONDecoder().raw_decode("".join(lines[i:]))
            break
    return Run(proc.returncode, proc.stdout, proc.stderr, doc)


def expect_ok(run: Run) -> Run:
    assert run.ok, f"playbook failed (rc {run.rc}): {run.failed() or run.stderr[-3000:] or run.stdout[-3000:]}"
    return run


def mirror_url() -> str:
    tool = ROOT / "tools" / "chart-mirror.py"
    res = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(tool), "start"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().splitlines()[-1]


def tls_vars(cluster: Any, **overrides: Any) -> dict[str, Any]:
    """The local-inventory TLS settings, pointed at the test cluster, the chart mirror (the real
    charts) and the cluster's real webhook process."""
    base: dict[str, Any] = {
        "tls_kubeconfig": str(cluster.kubeconfig),
        "tls_chart_mirror": mirror_url(),
        "tls_acme_email": "ops@mybinder.test",
        "tls_cluster_issuer": "letsencrypt-staging",
        "tls_cert_manager_crds_src": str(CRDS),
        "tls_cert_manager_values": {"webhook": {"url": {"host": WEBHOOK_HOST_FILE.read_text().strip()}}},
        "tls_rollout_timeout": 240,
        # the local inventory's two node pools (cert-manager's pods go to the core one)
        "mybinder_node_pool_label": "mybinder.org/node-purpose",
        "mybinder_node_pools": {"core": "core", "user": "user"},
    }
    base.update(overrides)
    return base


def controller_off(cluster: Any, **overrides: Any) -> dict[str, Any]:
    """tls_vars with cert-manager's controller at zero replicas (its webhook and cainjector run): no
    ACME server answers here, and a test that plays the controller's part must not race it."""
    variables = tls_vars(cluster, **overrides)
    variables["tls_cert_manager_values"] = {**variables["tls_cert_manager_values"], "replicaCount": 0}
    return variables


def csr_b64(host: str) -> str:
    """A real certificate signing request for host, base64 of its PEM (CertificateRequest.spec.request)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


def ingress_vars(cluster: Any, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ingress_kubeconfig": str(cluster.kubeconfig),
        "ingress_chart_mirror": mirror_url(),
        "ingress_values": {"controller": {"terminationGracePeriodSeconds": 1, "admissionWebhooks": {"enabled": False}}},
        "ingress_rollout_timeout": 240,
    }
    base.update(overrides)
    return base


def helm_releases(cluster: Any) -> dict[str, dict[str, Any]]:
    res = subprocess.run(
        ["helm", "list", "-A", "-a", "-o", "json", "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {r["name"]: r for r in json.loads(res.stdout)}


def helm_values(cluster: Any, release: str, namespace: str) -> dict[str, Any]:
    res = subprocess.run(
        ["helm", "get", "values", release, "-n", namespace, "-o", "json", "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout) or {}


def uninstall(cluster: Any, release: str, namespace: str) -> None:
    subprocess.run(
        [
            "helm",
            "uninstall",
            release,
            "-n",
            namespace,
            "--wait",
            "--timeout",
            "120s",
            "--kubeconfig",
            str(cluster.kubeconfig),
        ],
        capture_output=True,
        text=True,
    )


def reset_tls(cluster: Any) -> None:
    """No TLS controller, no cert-manager CRDs (and so none of their objects), no ingress-nginx."""
    for release, ns in (
        ("cert-manager", "cert-manager"),
        ("kube-lego", "kube-lego"),
        ("ingress-nginx", "ingress-nginx"),
    ):
        uninstall(cluster, release, ns)
    cluster.kubectl("delete", "-f", str(CRDS), "--ignore-not-found", "--wait=false", check=False)
    cluster.kubectl(
        "delete", "configmap", "kube-lego-migration", "-n", "cert-manager", "--ignore-not-found", check=False
    )
    wait_crds_gone(cluster, "cert-manager.io")


def wait_crds_gone(cluster: Any, group_suffix: str, seconds: float = 120) -> None:
    """Wait until no CRD of the group is left, re-queueing any stuck one.

    The API server's CRD cleanup finalizer cannot list the instances of a CRD whose storage is still
    being set up (a CRD deleted soon after it was made: "storage is (re)initializing"); it then retries
    with a back-off that doubles per failure, past five minutes on a busy machine. Any write to the CRD
    queues it again at once, so a stuck CRD gets an annotation (the workaround upstream projects use)."""
    deadline = time.monotonic() + seconds
    nudged = time.monotonic()
    left: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        crds = json.loads(cluster.kubectl("get", "crd", "-o", "json").stdout)["items"]
        left = [c for c in crds if c["spec"]["group"].endswith(group_suffix)]
        if not left:
            return
        if time.monotonic() - nudged > 3:
            nudged = time.monotonic()
            for crd in left:
                if crd["metadata"].get("deletionTimestamp"):
                    cluster.kubectl(
                        "annotate",
                        "crd",
                        crd["metadata"]["name"],
                        "--overwrite",
                        f"mybinder.test/requeue={nudged}",
                        check=False,
                    )
                else:
                    cluster.kubectl("delete", "crd", crd["metadata"]["name"], "--wait=false", check=False)
        time.sleep(0.5)
    states = {c["metadata"]["name"]: c.get("status", {}).get("conditions", []) for c in left}
    raise AssertionError(f"{group_suffix} CRDs still present after {seconds:.0f} s: {json.dumps(states)}")


def tls_secret(cluster: Any, namespace: str, name: str, cert_pem: bytes, key_pem: bytes, **annotations: str) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "data": {"tls.crt": base64.b64encode(cert_pem).decode(), "tls.key": base64.b64encode(key_pem).decode()},
    }
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(doc))


def condition(obj: dict[str, Any], kind: str = "Ready") -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c.get("status")
    return None
