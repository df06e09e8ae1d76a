"""A real Kubernetes control plane on loopback, for rehearsing deploys and drains.

    localcluster.py up [--core-nodes N] [--user-nodes N]   start (or report the running cluster)
    localcluster.py down                                   stop what `up` started, remove the state
    localcluster.py status                                 health of every component and node

Runs the upstream etcd, kube-apiserver, kube-controller-manager and kube-scheduler as plain
processes, with kwok simulating the kubelets of the Node objects it creates, and
tools/localpods.py running the real binaries of the few pods that must really run (cert-manager,
the JupyterHub user-scheduler). Binaries come from
tools/build-binaries.sh (a per-version cache outside the work tree). Everything this writes lives
under .cluster/ of the checkout: the kubeconfig, PKI, component logs and the pids it started.

Why not kwokctl: it works with local binaries, but starting the processes ourselves lets `down`
stop exactly what `up` started, lets `up` pick free ports and name a component that died at start
with the end of its log, and keeps one short, readable file in charge.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("MYBINDER_CLUSTER_DIR", ROOT / ".cluster"))
STATE_FILE = STATE_DIR / "state.json"
KUBECONFIG = STATE_DIR / "kubeconfig"
LOGS = STATE_DIR / "logs"
PKI = STATE_DIR / "pki"

# Preferred ports; a taken one is replaced by a free port (and said so).
PREFERRED_PORTS = {
    "etcd_client": 2379,
    "etcd_peer": 2380,
    "apiserver": 6443,
    "controller_manager": 10257,
    "scheduler": 10259,
    "kwok": 10247,
    "pods": 10248,
    "cert_manager_webhook": 10260,
}
COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "pods"]
# What `up` writes into STATE_DIR (the chart mirror keeps chart-mirror/ there too).
CLUSTER_FILES = [
    "state.json",
    "kubeconfig",
    "kwok-stages.yaml",
    "etcd",
    "pki",
    "logs",
    "pods",
    "cert-manager-webhook-host",
    ".gitignore",
]
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
NODE_LABEL_KEYS = ("mybinder.org/node-purpose", "hub.jupyter.org/node-purpose")


class ClusterError(Exception):
    """A failure with a message that says what went wrong and what to do."""


def say(msg: str) -> None:
    print(f"[cluster] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# binaries, ports, addresses


def bin_dir() -> Path:
    env = os.environ.get("MYBINDER_BIN_DIR")
    if env:
        return Path(env)
    out = subprocess.run(
        [str(ROOT / "tools" / "build-binaries.sh"), "--print"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def ensure_binaries() -> Path:
    bdir = bin_dir()
    wanted = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"]
    if all((bdir / b).exists() for b in wanted):
        return bdir
    say("control-plane binaries are not built yet: building them (first run only)")
    res = subprocess.run([str(ROOT / "tools" / "build-binaries.sh")], stdout=subprocess.PIPE, text=True, check=False)
    if res.returncode != 0:
        raise ClusterError("building the control-plane binaries failed (see the messages above)")
    return Path(res.stdout.strip().splitlines()[-1])


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Every running local cluster of this user, as a link to its directory: several clusters side by
# side (inventories/local-fleet) must not be given the same port. A free port is not enough: the
# cert-manager webhook's port is chosen at `up` but listened on only once cert-manager is deployed.
REGISTRY = Path(tempfile.gettempdir()) / f"mybinder-localclusters-{os.getuid()}"


def registry_entry() -> Path:
    return REGISTRY / hashlib.sha256(str(STATE_DIR.resolve()).encode()).hexdigest()[:16]


@contextlib.contextmanager
def registry_locked() -> Iterator[None]:
    REGISTRY.mkdir(mode=0o700, exist_ok=True)
    with (REGISTRY / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ports_of_other_clusters() -> set[int]:
    """The ports the state of every other registered cluster names (stale entries are dropped)."""
    taken: set[int] = set()
    for entry in REGISTRY.iterdir():
        if entry.name.startswith(".") or entry == registry_entry():
            continue
        try:
            state = json.loads((entry / "state.json").read_text())
            procs = state["processes"].values()
            if procs and not any(pid_alive(p["pid"], p["binary"]) for p in procs):
                raise ValueError("stopped without `down`")
            taken.update(int(p) for p in state["ports"].values())
        except (OSError, ValueError, KeyError):
            entry.unlink(missing_ok=True)
    return taken


def register(state: dict[str, Any]) -> None:
    """Choose the ports and record this cluster, under the registry's lock."""
    with registry_locked():
        state["ports"] = choose_ports(ports_of_other_clusters())
        save_state(state)
        entry = registry_entry()
        entry.unlink(missing_ok=True)
        entry.symlink_to(STATE_DIR.resolve())


def unregister() -> None:
    with contextlib.suppress(OSError):
        registry_entry().unlink(missing_ok=True)


def choose_ports(reserved: frozenset[int] | set[int] = frozenset()) -> dict[str, int]:
    ports: dict[str, int] = {}
    for name, preferred in PREFERRED_PORTS.items():
        if port_free(preferred) and preferred not in ports.values() and preferred not in reserved:
            ports[name] = preferred
        else:
            port = free_port()
            while port in ports.values() or port in reserved:
                port = free_port()
            say(f"port {preferred} ({name}) is taken or another local cluster's, using free port {port} instead")
            ports[name] = port
    return ports


def advertise_address() -> str:
    """A non-loopback address of this host: the apiserver rejects loopback for the `kubernetes`
    Endpoints. It is only published, never listened on: every component binds to 127.0.0.1."""
    env = os.environ.get("MYBINDER_ADVERTISE_ADDRESS")
    if env:
        return env
    candidates: list[str] = []
    try:
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True, check=False
        )
        for line in out.stdout.splitlines():
            parts = line.split()
            if "inet" in parts:
                candidates.append(parts[parts.index("inet") + 1].split("/")[0])
    except FileNotFoundError:
        pass
    if not candidates:
        try:
            for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
                candidates.append(str(info[4][0]))
        except OSError:
            pass
    for c in candidates:
        if not ipaddress.ip_address(c).is_loopback:
            return c
    raise ClusterError(
        "this host has no non-loopback IPv4 address, which kube-apiserver needs as its "
        "--advertise-address. Set MYBINDER_ADVERTISE_ADDRESS to any non-loopback address "
        "(it is only published, nothing connects to it)."
    )


# --------------------------------------------------------------------------------------------
# PKI


def make_pki(adv: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    PKI.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def write_key(path: Path, key: Any) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        path.chmod(0o600)

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("mybinder-local-ca"))
        .issuer_name(name("mybinder-local-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    write_key(PKI / "ca.key", ca_key)
    (PKI / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(stem: str, cn: str, org: str | None, server: bool, sans: list[x509.GeneralName]) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn, org))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        write_key(PKI / f"{stem}.key", key)
        (PKI / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ip = ipaddress.ip_address
    server_sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.DNSName("kubernetes.default.svc.cluster.local"),
        x509.IPAddress(ip("127.0.0.1")),
        x509.IPAddress(ip(adv)),
        x509.IPAddress(next(ipaddress.ip_network(SERVICE_CIDR).hosts())),
    ]
    issue("apiserver", "kube-apiserver", None, True, server_sans)
    issue("admin", "mybinder-local-admin", "system:masters", False, [])
    issue("controller-manager", "system:kube-controller-manager", None, False, [])
    issue("scheduler", "system:kube-scheduler", None, False, [])
    # kwok acts for every node; it needs rights over nodes, pods and leases of all nodes.
    issue("kwok", "kwok-controller", "system:masters", False, [])

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_key(PKI / "sa.key", sa_key)
    (PKI / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def write_kubeconfig(path: Path, server: str, user: str) -> None:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "mybinder-local", "cluster": {"server": server, "certificate-authority": str(PKI / "ca.crt")}}
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": str(PKI / f"{user}.crt"), "client-key": str(PKI / f"{user}.key")},
            }
        ],
        "contexts": [{"name": "mybinder-local", "context": {"cluster": "mybinder-local", "user": user}}],
        "current-context": "mybinder-local",
    }
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    path.chmod(0o600)


# --------------------------------------------------------------------------------------------
# processes


def load_state() -> dict[str, Any] | None:
    try:
        return json.loads(STATE_FILE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def save_state(state: dict[str, Any]) -> None:
    STATE_FILE.write_text(json.dumps(state, indent=2) + "\n")


def pid_alive(pid: int, binary: str) -> bool:
    """True when pid runs `binary`: a recycled pid of another program does not count.

    `binary` may be a wrapper script: while its interpreter runs, the script is the second word of
    the command line, and once it execs the real program, the program has the same name."""
    try:
        words = [w.decode(errors="replace") for w in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2]]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    if not words or not words[0]:
        return False  # a zombie: exited, not yet reaped
    return binary in words or Path(words[0]).name == Path(binary).name


def start(name: str, argv: list[str], state: dict[str, Any]) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=STATE_DIR
    )
    log.close()
    state["processes"][name] = {"pid": proc.pid, "binary": argv[0], "argv": argv}
    save_state(state)


def log_tail(name: str, lines: int = 25) -> str:
    try:
        text = (LOGS / f"{name}.log").read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


def ssl_context(client: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    if client:
        ctx.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    return ctx


def http_ok(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 2.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:
            return resp.status == 200, resp.read(200).decode(errors="replace").strip()
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        return False, str(getattr(exc, "reason", exc))


def insecure_ctx() -> ssl.SSLContext:
    # controller-manager and scheduler serve /healthz on self-signed certificates of their own.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def health_urls(state: dict[str, Any]) -> dict[str, tuple[str, ssl.SSLContext | None]]:
    p = state["ports"]
    return {
        "etcd": (f"http://127.0.0.1:{p['etcd_client']}/health", None),
        "kube-apiserver": (f"https://127.0.0.1:{p['apiserver']}/readyz", ssl_context()),
        "kube-controller-manager": (f"https://127.0.0.1:{p['controller_manager']}/healthz", insecure_ctx()),
        "kube-scheduler": (f"https://127.0.0.1:{p['scheduler']}/healthz", insecure_ctx()),
        "kwok": (f"http://127.0.0.1:{p['kwok']}/healthz", None),
        "pods": (f"http://127.0.0.1:{p['pods']}/healthz", None),
    }


def wait_healthy(name: str, state: dict[str, Any], timeout: float) -> None:
    url, ctx = health_urls(state)[name]
    proc = state["processes"][name]
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not pid_alive(proc["pid"], proc["binary"]):
            raise ClusterError(f"{name} exited during start. Last lines of {LOGS / (name + '.log')}:\n{log_tail(name)}")
        ok, last = http_ok(url, ctx)
        if ok:
            return
        time.sleep(0.2)
    raise ClusterError(
        f"{name} did not become healthy within {timeout:.0f} s (last answer: {last}). "
        f"Last lines of {LOGS / (name + '.log')}:\n{log_tail(name)}"
    )


def kubectl(bdir: Path, *args: str, input_text: str | None = None, check: bool = True) -> str:
    res = subprocess.run(
        [str(bdir / "kubectl"), "--kubeconfig", str(KUBECONFIG), *args],
        input=input_text,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and res.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": "standard",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    "provisioner": "kubernetes.io/host-path",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
}


# What kube-scheduler 1.34 watches beyond a 1.30 scheduler's RBAC, for the JupyterHub chart's
# user-scheduler that tools/localpods.py runs with the control plane's newer binary (read only).
NEWER_SCHEDULER_READS = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "mybinder-local:newer-kube-scheduler"},
        "rules": [
            {
                "apiGroups": ["resource.k8s.io"],
                "resources": ["deviceclasses", "resourceclaims", "resourceslices"],
                "verbs": ["get", "list", "watch"],
            },
            {"apiGroups": ["storage.k8s.io"], "resources": ["volumeattachments"], "verbs": ["get", "list", "watch"]},
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "mybinder-local:newer-kube-scheduler"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "mybinder-local:newer-kube-scheduler",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "mybinder-local:newer-kube-scheduler"}
        ],
    },
]


def node_manifests(core: int, user: int) -> str:
    docs = []
    for purpose, count in (("core", core), ("user", user)):
        for i in range(count):
            labels = {k: purpose for k in NODE_LABEL_KEYS}
            labels.update(
                {
                    "kubernetes.io/hostname": f"{purpose}-{i}",
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                }
            )
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": f"{purpose}-{i}",
                        "labels": labels,
                        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    },
                    "status": {
                        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "1100"},
                        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "1100"},
                    },
                }
            )
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [*docs, STORAGE_CLASS, *NEWER_SCHEDULER_READS]})


# --------------------------------------------------------------------------------------------
# commands


def running(state: dict[str, Any] | None) -> bool:
    if not state or "processes" not in state:
        return False
    return all(
        name in state["processes"]
        and (
            state["processes"][name].get("restarting")  # `restart` brings it back: not a dead cluster
            or pid_alive(state["processes"][name]["pid"], state["processes"][name]["binary"])
        )
        for name in COMPONENTS
    )


def cmd_up(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    state = load_state()
    if running(state):
        assert state is not None
        wait_restarts(state)
        ok, _answer = http_ok(health_urls(state)["kube-apiserver"][0], ssl_context())
        if ok:
            say(f"already running: API server https://127.0.0.1:{state['ports']['apiserver']}, kubeconfig {KUBECONFIG}")
            return cmd_status(args)
    if state:
        say("found the state of a cluster that is not running: cleaning it up first")
        stop(state, remove=False)
    bdir = ensure_binaries()
    # Start from a clean slate of the cluster's own files only: the chart mirror may already be
    # serving from its subdirectory (tools/chart-mirror.py needs no cluster) and is left alone.
    for entry in CLUSTER_FILES:
        path = STATE_DIR / entry
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    (STATE_DIR / ".gitignore").write_text("*\n")
    adv = advertise_address()
    state = {
        "processes": {},
        "ports": {},
        "bin_dir": str(bdir),
        "advertise_address": adv,
        "nodes": {"core": args.core_nodes, "user": args.user_nodes},
    }
    register(state)
    ports = state["ports"]
    make_pki(adv)
    server = f"https://127.0.0.1:{ports['apiserver']}"
    write_kubeconfig(KUBECONFIG, server, "admin")
    for user in ("controller-manager", "scheduler", "kwok"):
        write_kubeconfig(PKI / f"{user}.kubeconfig", server, user)
    try:
        start_components(bdir, state, adv)
        kubectl(bdir, "apply", "-f", "-", input_text=node_manifests(args.core_nodes, args.user_nodes))
        wait_nodes_ready(bdir, args.core_nodes + args.user_nodes, timeout=60)
        wait_default_serviceaccount(bdir, timeout=60)
    except BaseException:
        say("start failed: stopping the components this run started")
        stop(state, remove=False)
        raise
    say(f"up in {time.monotonic() - t0:.1f} s: API server {server}, kubeconfig {KUBECONFIG}")
    say(f"use it with: export KUBECONFIG={KUBECONFIG}")
    return 0


def start_components(bdir: Path, state: dict[str, Any], adv: str) -> None:
    p = state["ports"]
    etcd_dir = STATE_DIR / "etcd"
    start(
        "etcd",
        [
            str(bdir / "etcd"),
            "--name=local",
            f"--data-dir={etcd_dir}",
            f"--listen-client-urls=http://127.0.0.1:{p['etcd_client']}",
            f"--advertise-client-urls=http://127.0.0.1:{p['etcd_client']}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-cluster=local=http://127.0.0.1:{p['etcd_peer']}",
            "--listen-metrics-urls=",
            "--quota-backend-bytes=4294967296",
            "--unsafe-no-fsync=true",  # throwaway test data: durability is not needed, speed is
            "--log-level=warn",
        ],
        state,
    )
    wait_healthy("etcd", state, 30)

    start(
        "kube-apiserver",
        [
            str(bdir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{p['etcd_client']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p['apiserver']}",
            f"--advertise-address={adv}",
            f"--tls-cert-file={PKI / 'apiserver.crt'}",
            f"--tls-private-key-file={PKI / 'apiserver.key'}",
            f"--client-ca-file={PKI / 'ca.crt'}",
            f"--service-account-key-file={PKI / 'sa.pub'}",
            f"--service-account-signing-key-file={PKI / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--max-requests-inflight=1000",
            "--max-mutating-requests-inflight=500",
            "--profiling=false",
            "--v=1",
        ],
        state,
    )
    wait_healthy("kube-apiserver", state, 90)

    start(
        "kube-controller-manager",
        [
            str(bdir / "kube-controller-manager"),
            f"--kubeconfig={PKI / 'controller-manager.kubeconfig'}",
            f"--authentication-kubeconfig={PKI / 'controller-manager.kubeconfig'}",
            f"--authorization-kubeconfig={PKI / 'controller-manager.kubeconfig'}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p['controller_manager']}",
            f"--root-ca-file={PKI / 'ca.crt'}",
            f"--service-account-private-key-file={PKI / 'sa.key'}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            "--concurrent-gc-syncs=40",
            # The cluster's storage provisioner (kubernetes.io/host-path, the default StorageClass
            # `standard` below): claims such as the hub's database and prometheus' data bind, as on
            # a cloud cluster. Its volumes are empty directories under /tmp/hostpath_pv that no pod
            # ever mounts (kwok runs no containers); the controller removes them with their claim.
            "--enable-hostpath-provisioner=true",
            "--profiling=false",
            "--v=1",
        ],
        state,
    )
    start(
        "kube-scheduler",
        [
            str(bdir / "kube-scheduler"),
            f"--kubeconfig={PKI / 'scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={PKI / 'scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={PKI / 'scheduler.kubeconfig'}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p['scheduler']}",
            "--leader-elect=false",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--profiling=false",
            "--v=1",
        ],
        state,
    )
    stages = STATE_DIR / "kwok-stages.yaml"
    stage_src = bdir / "kwok-stage"
    parts = [
        stage_src / "node" / "fast" / "node-initialize.yaml",
        stage_src / "node" / "heartbeat-with-lease" / "node-heartbeat-with-lease.yaml",
        stage_src / "pod" / "fast" / "pod-ready.yaml",
        stage_src / "pod" / "fast" / "pod-complete.yaml",
        ROOT / "tools" / "kwok-pod-delete-stage.yaml",
    ]
    stages.write_text("\n---\n".join(part.read_text() for part in parts))
    start(
        "kwok",
        [
            str(bdir / "kwok"),
            f"--kubeconfig={PKI / 'kwok.kubeconfig'}",
            f"--config={stages}",
            "--manage-all-nodes=true",
            f"--cidr={POD_CIDR}",
            # The nodes' address, which host-network pods (prometheus' node exporter) take as
            # theirs: not loopback, which EndpointSlices refuse, so their Services would never
            # have an endpoint. Only published; nothing listens on or connects to it.
            f"--node-ip={adv}",
            # Renew node Leases: the heartbeat-with-lease stage patches node status only every ~10
            # minutes, so without Leases the node lifecycle controller finds every node NotReady
            # after its grace period and marks all pods NotReady, which kwok never undoes.
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{p['kwok']}",
        ],
        state,
    )
    # Real processes for the few simulated pods that must really run (tools/localpods.py).
    start(
        "pods", [sys.executable, str(ROOT / "tools" / "localpods.py"), "serve", str(STATE_DIR), str(p["pods"])], state
    )
    state["processes"]["pods"]["binary"] = str(ROOT / "tools" / "localpods.py")
    save_state(state)
    for name in ("kube-controller-manager", "kube-scheduler", "kwok", "pods"):
        wait_healthy(name, state, 60)


def wait_nodes_ready(bdir: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    ready = 0
    while time.monotonic() < deadline:
        out = kubectl(bdir, "get", "nodes", "-o", "json")
        nodes = json.loads(out)["items"]
        ready = sum(
            1
            for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
        )
        if ready >= count:
            return
        time.sleep(0.2)
    raise ClusterError(
        f"only {ready} of {count} nodes became Ready within {timeout:.0f} s; "
        f"see {LOGS / 'kwok.log'}:\n{log_tail('kwok')}"
    )


def wait_default_serviceaccount(bdir: Path, timeout: float) -> None:
    """The controller-manager creates every namespace's `default` ServiceAccount; pods cannot be
    created before it exists, so `up` is finished only then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kubectl(bdir, "get", "serviceaccount", "default", "-n", "default", "-o", "name", check=False).strip():
            return
        time.sleep(0.2)
    raise ClusterError(
        "the default ServiceAccount was not created: is kube-controller-manager working? "
        f"{LOGS / 'kube-controller-manager.log'}:\n{log_tail('kube-controller-manager')}"
    )


def stop(state: dict[str, Any], remove: bool = True) -> list[str]:
    stopped = []
    procs = state.get("processes", {})
    for name in reversed(COMPONENTS):
        info = procs.get(name)
        if info and pid_alive(info["pid"], info["binary"]):
            try:
                os.kill(info["pid"], signal.SIGTERM)
                stopped.append(name)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 15
    for name in stopped:
        info = procs[name]
        while pid_alive(info["pid"], info["binary"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(info["pid"], info["binary"]):
            os.kill(info["pid"], signal.SIGKILL)
    # reap zombies of children started by this very process (tests call up and down in-process)
    for name in stopped:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(procs[name]["pid"], os.WNOHANG)
    if remove:
        unregister()
    if remove and STATE_DIR.exists():
        stop_chart_mirror()
        shutil.rmtree(STATE_DIR)
    return stopped


def stop_chart_mirror() -> None:
    """The chart mirror (tools/chart-mirror.py) keeps its state under the cluster directory;
    removing that directory without stopping it would strand its server."""
    if (STATE_DIR / "chart-mirror" / "server.pid").exists():
        subprocess.run(
            [sys.executable, str(ROOT / "tools" / "chart-mirror.py"), "stop"],
            env={**os.environ, "MYBINDER_CLUSTER_DIR": str(STATE_DIR)},
            check=False,
        )


def cmd_down(args: argparse.Namespace) -> int:
    state = load_state()
    if not state:
        say("no local cluster state: nothing to stop")
        if STATE_DIR.exists():
            stop_chart_mirror()
            shutil.rmtree(STATE_DIR)
        return 0
    stopped = stop(state)
    say(f"stopped {', '.join(stopped) if stopped else 'nothing (no component was running)'}; removed {STATE_DIR}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = load_state()
    if not state:
        say("not running (no state in .cluster/); start it with `make cluster-up`")
        return 1
    healthy = True
    for name in COMPONENTS:
        info = state["processes"].get(name)
        url, ctx = health_urls(state)[name]
        alive = bool(info) and pid_alive(info["pid"], info["binary"])
        ok, answer = http_ok(url, ctx) if alive else (False, "process not running")
        healthy &= ok
        pid = info["pid"] if info else "-"
        print(f"  {name:<24} pid {pid!s:<8} {'healthy' if ok else 'UNHEALTHY: ' + answer}")
    if healthy:
        bdir = Path(state["bin_dir"])
        nodes = json.loads(kubectl(bdir, "get", "nodes", "-o", "json"))["items"]
        for n in nodes:
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
            purpose = n["metadata"].get("labels", {}).get(NODE_LABEL_KEYS[0], "-")
            flags = " cordoned" if n["spec"].get("unschedulable") else ""
            print(f"  node {n['metadata']['name']:<19} {purpose:<6} {'Ready' if ready else 'NotReady'}{flags}")
        with urllib.request.urlopen(f"http://127.0.0.1:{state['ports']['pods']}/processes", timeout=5) as resp:
            for proc in json.load(resp):
                what = "running" if proc["running"] else "EXITED"
                line = f"  pod process {proc['deployment']:<40} {proc['binary']:<24} pid {proc['pid']:<8} {what}"
                print(f"{line}, {proc['restarts']} restarts")
        version = kubectl(bdir, "version", "-o", "json")
        print(f"  server version: {json.loads(version)['serverVersion']['gitVersion']}; kubeconfig: {KUBECONFIG}")
    return 0 if healthy else 1


def wait_restarts(state: dict[str, Any], timeout: float = 120) -> None:
    """Wait for the components `restart` is bringing back (another process restarts them): a
    cluster in the middle of a rehearsed outage is not a dead one to clean up."""
    deadline = time.monotonic() + timeout
    while any(p.get("restarting") for p in state["processes"].values()) and time.monotonic() < deadline:
        say("waiting for a component that is being restarted")
        time.sleep(2)
        state.update(load_state() or {})


def cmd_restart(args: argparse.Namespace) -> int:
    """Stop one component, leave it down for a while, start it again with the same command line:
    rehearses what a control-plane upgrade or a crash does to the clients (tests restart the API
    server during drains and rollout waits)."""
    state = load_state()
    if not running(state):
        raise ClusterError("no local cluster is running: start one with `make cluster-up`")
    assert state is not None
    info = state["processes"].get(args.component)
    if info is None:
        known = ", ".join(state["processes"])
        raise ClusterError(f"cannot restart {args.component!r}: this cluster's components are {known}")
    if "argv" not in info:  # started before the state recorded command lines: the kernel has it
        info["argv"] = Path(f"/proc/{info['pid']}/cmdline").read_bytes().decode().rstrip("\0").split("\0")
    info["restarting"] = True
    save_state(state)
    os.kill(info["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 15
    while pid_alive(info["pid"], info["binary"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(info["pid"], info["binary"]):
        os.kill(info["pid"], signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(info["pid"], os.WNOHANG)
    say(f"{args.component} stopped; down for {args.down:g} s")
    time.sleep(args.down)
    try:
        start(args.component, info["argv"], state)  # records the new process, without the mark
        if args.component in health_urls(state):
            wait_healthy(args.component, state, timeout=60)
    finally:
        state["processes"][args.component].pop("restarting", None)
        save_state(state)
    say(f"{args.component} running again (pid {state['processes'][args.component]['pid']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the cluster, or report the running one")
    up.add_argument("--core-nodes", type=int, default=int(os.environ.get("CORE_NODES", "1")))
    up.add_argument("--user-nodes", type=int, default=int(os.environ.get("USER_NODES", "2")))
    sub.add_parser("down", help="stop the processes `up` started and remove the state")
    sub.add_parser("status", help="health of every component")
    restart = sub.add_parser("restart", help="stop one component, wait, start it again (rehearses an outage)")
    restart.add_argument("component", help="e.g. kube-apiserver")
    restart.add_argument("--down", type=float, default=5.0, help="seconds the component stays down")
    args = parser.parse_args(argv)
    try:
        return {"up": cmd_up, "down": cmd_down, "status": cmd_status, "restart": cmd_restart}[args.command](args)
    except ClusterError as exc:
        print(f"[cluster] ERROR: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
