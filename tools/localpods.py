"""Real processes in place of the simulated pods that must really run on the local cluster.

    localpods.py serve STATE_DIR PORT     (started and stopped by tools/localcluster.py)

kwok simulates every pod: nothing runs in it. For most workloads that is the point (the deploy is
rehearsed, not the application). A few pods must really run for the cluster to behave as a real
one, because the API server or the scheduler depends on them:

- cert-manager's webhook: its chart registers it with failurePolicy Fail, so every cert-manager
  object is refused unless a real webhook answers; with cert-manager's controller and cainjector,
  which fill the webhook's CA bundle and issue certificates;
- the JupyterHub chart's user-scheduler, a kube-scheduler with the chart's own configuration:
  without it every user server and placeholder pod (schedulerName <release>-user-scheduler)
  stays Pending.

This process watches the cluster's Deployments and keeps one real process running for each one
whose container image is one of those (the binaries built by tools/build-binaries.sh at the
pinned versions), with the container's own arguments and the files of its ConfigMap volumes,
authenticated as the pod's ServiceAccount (a client certificate for that user, so the chart's
own RBAC applies). What a container would get from its pod and cannot here is replaced, and
only that: the kubeconfig instead of the in-cluster service account token, listeners on
loopback ports instead of the pod IP. A changed Deployment restarts its process; a deleted one
stops it. Logs: STATE_DIR/logs/pods/<namespace>.<deployment>.log.

GET http://127.0.0.1:PORT/healthz answers "ok" and /processes the JSON of what runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import hashlib
import http.server
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

POLL_SECONDS = 1.0
# The group whose reads make up for what a newer kube-scheduler watches (see user_scheduler).
NEWER_SCHEDULER = "mybinder-local:newer-kube-scheduler"
# The webhook's URL as the cert-manager chart's `webhook.url.host` must name it (written at start).
WEBHOOK_HOST_FILE = "cert-manager-webhook-host"


@dataclass
class Spec:
    """One process to run for one Deployment."""

    key: str  # namespace/deployment
    argv: list[str]
    files: dict[str, str] = field(default_factory=dict)  # path -> content written before the start
    env: dict[str, str] = field(default_factory=dict)  # on top of this process's environment

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.argv, self.files, self.env], sort_keys=True).encode()).hexdigest()


class Runner:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.state = json.loads((state_dir / "state.json").read_text())
        self.pki = state_dir / "pki"
        self.bin = Path(self.state["bin_dir"])
        self.server = f"https://127.0.0.1:{self.state['ports']['apiserver']}"
        self.work = state_dir / "pods"
        self.logs = state_dir / "logs" / "pods"
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        self.ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        self.running: dict[str, tuple[Spec, subprocess.Popen[bytes]]] = {}
        self.restarts: dict[str, int] = {}
        self.not_before: dict[str, float] = {}  # a crashed process waits until then to restart
        self.lock = threading.Lock()
        self.webhook_port = int(self.state["ports"]["cert_manager_webhook"])
        (state_dir / WEBHOOK_HOST_FILE).write_text(f"localhost:{self.webhook_port}\n")

    # ---------------------------------------------------------------------------------------
    # the API server

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.server}{path}", context=self.ctx, timeout=10) as resp:
            return json.load(resp)

    def configmap(self, namespace: str, name: str) -> dict[str, str]:
        try:
            return self.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}").get("data") or {}
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return {}
            raise

    # ---------------------------------------------------------------------------------------
    # identities: a client certificate per ServiceAccount

    def kubeconfig_for(self, namespace: str, service_account: str, groups: tuple[str, ...] = ()) -> Path:
        suffix = "".join(f"+{g.rsplit(':', 1)[-1]}" for g in groups)
        path = self.work / "identities" / f"{namespace}.{service_account}{suffix}.kubeconfig"
        if path.exists():
            return path
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        path.parent.mkdir(parents=True, exist_ok=True)
        ca_key = serialization.load_pem_private_key((self.pki / "ca.key").read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate((self.pki / "ca.crt").read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:serviceaccounts"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"system:serviceaccounts:{namespace}"),
                *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups),
                x509.NameAttribute(NameOID.COMMON_NAME, f"system:serviceaccount:{namespace}:{service_account}"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        stem = path.with_suffix("")
        key_path, cert_path = Path(f"{stem}.key"), Path(f"{stem}.crt")
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "local", "cluster": {"server": self.server, "certificate-authority": str(self.pki / "ca.crt")}}
            ],
            "users": [{"name": "sa", "user": {"client-certificate": str(cert_path), "client-key": str(key_path)}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "sa", "namespace": namespace}}],
            "current-context": "local",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    # ---------------------------------------------------------------------------------------
    # what to run for a Deployment

    def spec_for(self, deploy: dict[str, Any]) -> Spec | None:
        if (deploy["spec"].get("replicas", 1) or 0) < 1:
            return None
        pod = deploy["spec"]["template"]["spec"]
        container = pod["containers"][0]
        image = str(container.get("image", ""))
        for pattern, adapt in PROFILES:
            if re.search(pattern, image):
                return adapt(self, deploy, pod, container)
        return None

    def container_args(self, deploy: dict[str, Any], container: dict[str, Any]) -> list[str]:
        """The container's arguments (after its command's program), with Kubernetes' $(VAR)
        expansion from its env."""
        env = {"POD_NAMESPACE": deploy["metadata"]["namespace"]}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif (item.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
                env[item["name"]] = deploy["metadata"]["namespace"]
            elif (item.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[item["name"]] = deploy["metadata"]["name"]
        # the image's entry point is replaced by our binary; what follows it in `command` stays
        words = [*(container.get("command") or [])[1:], *(container.get("args") or [])]
        return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), str(a)) for a in words]

    def identity(self, deploy: dict[str, Any], pod: dict[str, Any], groups: tuple[str, ...] = ()) -> Path:
        return self.kubeconfig_for(deploy["metadata"]["namespace"], pod.get("serviceAccountName") or "default", groups)

    # ---------------------------------------------------------------------------------------
    # supervising

    def sync(self) -> None:
        deployments = self.get("/apis/apps/v1/deployments")["items"]
        wanted: dict[str, Spec] = {}
        for deploy in deployments:
            if deploy["metadata"].get("deletionTimestamp"):
                continue
            spec = self.spec_for(deploy)
            if spec is not None:
                wanted[spec.key] = spec
        with self.lock:
            for key in list(self.running):
                spec, proc = self.running[key]
                if key not in wanted or wanted[key].digest != spec.digest:
                    self.stop(key)
                elif proc.poll() is not None:
                    self.restarts[key] = self.restarts.get(key, 0) + 1
                    del self.running[key]
            for key, spec in wanted.items():
                # a crashing process is restarted with a growing pause, as a kubelet does
                if key not in self.running and time.monotonic() >= self.not_before.get(key, 0):
                    self.start(spec)
                    self.not_before[key] = time.monotonic() + min(30, 2 ** self.restarts.get(key, 0))

    def start(self, spec: Spec) -> None:
        for path, content in spec.files.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
        log = (self.logs / f"{spec.key.replace('/', '.')}.log").open("ab")
        log.write(f"--- {datetime.datetime.now(datetime.UTC).isoformat()} start: {' '.join(spec.argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            spec.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.work,
            env={**os.environ, **spec.env},
            preexec_fn=die_with_parent,
        )
        log.close()
        self.running[spec.key] = (spec, proc)

    def stop(self, key: str) -> None:
        _spec, proc = self.running.pop(key)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        with self.lock:
            for key in list(self.running):
                self.stop(key)

    def report(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    "deployment": key,
                    "pid": proc.pid,
                    "binary": Path(spec.argv[0]).name,
                    "running": proc.poll() is None,
                    "restarts": self.restarts.get(key, 0),
                }
                for key, (spec, proc) in sorted(self.running.items())
            ]


def die_with_parent() -> None:
    """The child gets SIGTERM when the runner dies, even by SIGKILL (no orphans)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# --------------------------------------------------------------------------------------------
# the profiles: which images run as which binary, and what replaces the pod's environment


def cert_manager(binary: str) -> Callable[[Runner, dict[str, Any], dict[str, Any], dict[str, Any]], Spec]:
    def adapt(r: Runner, deploy: dict[str, Any], pod: dict[str, Any], container: dict[str, Any]) -> Spec:
        argv = [str(r.bin / f"cert-manager-{binary}"), *r.container_args(deploy, container)]
        kubeconfig = str(r.identity(deploy, pod))
        argv.append(f"--kubeconfig={kubeconfig}")
        if binary == "webhook":
            # The chart's `webhook.url.host` (localhost:PORT) is where the API server calls it;
            # the serving certificate must name the host without the port.
            argv += [f"--secure-port={r.webhook_port}", "--dynamic-serving-dns-names=localhost", "--healthz-port=0"]
        # Each pod would have its own metrics port (and the controller its liveness port, 9403);
        # processes on one loopback, of several local clusters side by side, take any free one.
        argv.append("--metrics-listen-address=127.0.0.1:0")
        if binary == "controller":
            argv.append("--internal-healthz-listen-address=127.0.0.1:0")
        # cainjector's client ignores --kubeconfig and reads $KUBECONFIG (controller-runtime)
        return Spec(
            f"{deploy['metadata']['namespace']}/{deploy['metadata']['name']}", argv, env={"KUBECONFIG": kubeconfig}
        )

    return adapt


def user_scheduler(r: Runner, deploy: dict[str, Any], pod: dict[str, Any], container: dict[str, Any]) -> Spec:
    """kube-scheduler with the configuration of the pod's ConfigMap volume, pointed at the API
    server through the pod's ServiceAccount instead of the in-cluster token."""
    ns, name = deploy["metadata"]["namespace"], deploy["metadata"]["name"]
    home = r.work / f"{ns}.{name}"
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts") or []}
    files: dict[str, str] = {}
    moved: dict[str, str] = {}
    for volume in pod.get("volumes") or []:
        if "configMap" in volume and volume["name"] in mounts:
            local = home / volume["name"]
            moved[mounts[volume["name"]]] = str(local)
            for key, text in r.configmap(ns, volume["configMap"]["name"]).items():
                files[str(local / key)] = text
    args = r.container_args(deploy, container)
    for mount, local in moved.items():
        args = [a.replace(mount, local) for a in args]
    kubeconfig = str(r.identity(deploy, pod, groups=(NEWER_SCHEDULER,)))
    for path, text in files.items():
        doc = yaml.safe_load(text) if path.endswith((".yaml", ".yml")) else None
        if isinstance(doc, dict) and doc.get("kind") == "KubeSchedulerConfiguration":
            doc.setdefault("clientConnection", {})["kubeconfig"] = kubeconfig
            files[path] = yaml.safe_dump(doc)
    # The image's entry point is kube-scheduler at the chart's version (the jupyterhub chart 4.2.0
    # ships v1.30); this is the control plane's (v1.34). Its HTTPS endpoint would clash with the
    # control plane's scheduler on loopback (0 = none). 1.34 also watches objects that 1.30 did
    # not (DRA's resource.k8s.io objects, VolumeAttachments), which the chart's RBAC, written for
    # 1.30, does not let it read; without them it waits for its caches forever and schedules
    # nothing. Its identity gets those reads, and only those, through the group NEWER_SCHEDULER
    # (bound by tools/localcluster.py), on top of the chart's own RBAC.
    argv = [str(r.bin / "kube-scheduler"), *args, "--secure-port=0"]
    return Spec(f"{ns}/{name}", argv, files)


PROFILES: list[tuple[str, Callable[[Runner, dict[str, Any], dict[str, Any], dict[str, Any]], Spec]]] = [
    (r"/cert-manager-controller[:@]", cert_manager("controller")),
    (r"/cert-manager-webhook[:@]", cert_manager("webhook")),
    (r"/cert-manager-cainjector[:@]", cert_manager("cainjector")),
    (r"/kube-scheduler[:@]", user_scheduler),
]


# --------------------------------------------------------------------------------------------
# main


def serve(state_dir: Path, port: int) -> None:
    runner = Runner(state_dir)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"ok" if self.path == "/healthz" else json.dumps(runner.report()).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        while not stopping.is_set():
            try:
                runner.sync()
            except (urllib.error.URLError, OSError, ValueError) as exc:
                print(f"sync failed (retrying): {exc}", file=sys.stderr, flush=True)
            stopping.wait(POLL_SECONDS)
    finally:
        runner.stop_all()
        with contextlib.suppress(Exception):
            httpd.shutdown()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "serve":
        sys.exit(__doc__)
    serve(Path(sys.argv[2]), int(sys.argv[3]))
