"""Benchmark of the deploy: `deploy.yml` against the raw sequence upstream's script ran, with the
real charts (binderhub with jupyterhub, prometheus, grafana, cert-manager, ingress-nginx; served
from the mirror directory by tools/chart-mirror.py, as the local inventory takes them).

Two throwaway local clusters (tools/localcluster.py, each with its own mirror of the real charts) run
side by side, one for each contender, so each full deploy starts from an empty cluster and both see
the same background load:

- deploy.yml: `ansible-playbook deploy.yml -i inventories/local` (every stage: preflight, secrets,
  cluster access, TLS, ingress, mybinder, verify).
- raw: what upstream's deploy script ran, with the same charts and the same values (read back from
  the releases deploy.yml made, `helm get values`): `helm dependency update` of the meta chart (from the mirror),
  `kubectl apply --server-side` of the cert-manager CRDs, `helm upgrade --install --create-namespace
  --cleanup-on-fail` of cert-manager, `kubectl rollout status` of its Deployments and the
  ClusterIssuers (applied again every second until cert-manager's webhook, which the real chart
  registers with failurePolicy Fail, admits them: a script must wait for it too), ingress-nginx and
  the meta chart, then `kubectl get deploy,ds,sts -o name` and `kubectl rollout status
  --timeout=600s` for every workload of their namespaces, one after the other.

Measured: the full deploy of each on its empty cluster (three rounds, each on a new pair of
clusters), then the no-op redeploy (nothing changed) three times each, alternating; medians.
Targets (the real-charts issue): full deploy at most 1.2x the raw sequence, with the first-install
validation (the API server's dry run of every object before anything is created) kept; no-op
redeploy at most 0.5x the raw sequence, with changed=0. Prints one markdown section;
tests/bench/run.py puts it into docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
NOOP_ROUNDS = int(os.environ.get("BENCH_DEPLOY_NOOP_ROUNDS", "3"))
FULL_ROUNDS = int(os.environ.get("BENCH_DEPLOY_FULL_ROUNDS", "3"))
RECAP = re.compile(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
TASKS = re.compile(r"^\S+\s+:\s+ok=(\d+)\s+.*?skipped=(\d+)", re.MULTILINE)
ROLE_TIME = re.compile(r"^(\w+) -+ ([\d.]+)s$", re.MULTILINE)
STAGES = ("preflight", "secrets", "cluster_access", "tls", "ingress", "mybinder", "verify")


def log(msg: str) -> None:
    print(f"[bench_deploy] {msg}", file=sys.stderr, flush=True)


def bin_dir() -> Path:
    out = subprocess.run(
        [str(ROOT / "tools" / "build-binaries.sh"), "--print"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


class Cluster:
    def __init__(self, name: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"mybinder-bench-{name}-"))
        self.env = dict(
            os.environ,
            MYBINDER_CLUSTER_DIR=str(self.dir),
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            PATH=os.pathsep.join([str(bin_dir()), str(ROOT / ".venv" / "bin"), os.environ["PATH"]]),
        )
        self.env.pop("KUBECONFIG", None)
        self.kubeconfig = self.dir / "kubeconfig"

    def run(
        self, *cmd: str | Path, check: bool = True, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [str(c) for c in cmd], cwd=ROOT, env=self.env, capture_output=True, text=True, input=input_text
        )
        if check and res.returncode != 0:
            raise RuntimeError(
                f"{' '.join(map(str, cmd))} failed ({res.returncode}):\n{(res.stdout + res.stderr)[-3000:]}"
            )
        return res

    def up(self) -> None:
        self.run(sys.executable, ROOT / "tools" / "localcluster.py", "up")
        self.mirror = (
            self.run(sys.executable, ROOT / "tools" / "chart-mirror.py", "start").stdout.strip().splitlines()[-1]
        )

    def down(self) -> None:
        self.run(sys.executable, ROOT / "tools" / "chart-mirror.py", "stop", check=False)
        self.run(sys.executable, ROOT / "tools" / "localcluster.py", "down", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        return self.run("kubectl", "--kubeconfig", self.kubeconfig, *args, input_text=input_text).stdout

    def helm(self, *args: str | Path) -> str:
        return self.run("helm", "--kubeconfig", self.kubeconfig, *args).stdout


def timed(fn) -> tuple[float, object]:
    t0 = time.monotonic()
    out = fn()
    return time.monotonic() - t0, out


LAST_TASKS = {"count": 0}


def deploy_yml(c: Cluster) -> tuple[int, dict[str, float]]:
    """Run deploy.yml; return the changed count and the time of each role (profile_roles). The
    number of tasks it ran (skipped ones included) is kept in LAST_TASKS."""
    c.env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_roles"
    res = c.run(ROOT / ".venv" / "bin" / "ansible-playbook", "deploy.yml", "-i", "inventories/local", check=False)
    out = res.stdout + res.stderr
    recap = RECAP.findall(out)
    if res.returncode != 0 or not recap or any(int(f) or int(u) for _, _, u, f in recap):
        raise RuntimeError(f"deploy.yml failed ({res.returncode}):\n{out[-5000:]}")
    LAST_TASKS["count"] = sum(int(ok) + int(skipped) for ok, skipped in TASKS.findall(out))
    roles = {name: float(t) for name, t in ROLE_TIME.findall(out.split("ROLES RECAP", 1)[-1]) if name != "total"}
    return sum(int(ch) for _, ch, _, _ in recap), roles


def ansible_floor(c: Cluster) -> float:
    """What any ansible-playbook run against this inventory costs before it does anything."""
    play = Path(tempfile.mkdtemp(prefix="mybinder-bench-floor-")) / "floor.yml"
    play.write_text("- hosts: mybinder_clusters\n  gather_facts: false\n  tasks: []\n")
    t, _ = timed(
        lambda: c.run(ROOT / ".venv" / "bin" / "ansible-playbook", play, "-i", str(ROOT / "inventories" / "local"))
    )
    shutil.rmtree(play.parent, ignore_errors=True)
    return t


def ansible_per_task(c: Cluster, floor: float, n: int = 50) -> float:
    """Ansible's own cost per task on this machine: a play of n set_fact tasks, minus the floor."""
    play = Path(tempfile.mkdtemp(prefix="mybinder-bench-tasks-")) / "tasks.yml"
    tasks = "".join(f"    - name: t{i}\n      ansible.builtin.set_fact:\n        x{i}: 1\n" for i in range(n))
    play.write_text(f"- hosts: mybinder_clusters\n  gather_facts: false\n  tasks:\n{tasks}")
    t, _ = timed(
        lambda: c.run(ROOT / ".venv" / "bin" / "ansible-playbook", play, "-i", str(ROOT / "inventories" / "local"))
    )
    shutil.rmtree(play.parent, ignore_errors=True)
    return max(0.0, t - floor) / n


class Raw:
    """Upstream's sequence, with the releases and values deploy.yml made on the other cluster."""

    def __init__(self, c: Cluster, releases: list[dict], issuers: list[dict]) -> None:
        self.c = c
        self.releases = releases
        self.issuers = issuers
        self.work = Path(tempfile.mkdtemp(prefix="mybinder-bench-raw-"))
        # upstream's chart directory, pointing at the mirror (this is the only preparation not timed)
        self.chart = self.work / "mybinder"
        shutil.copytree(ROOT / "mybinder", self.chart, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
        meta = yaml.safe_load((self.chart / "Chart.yaml").read_text())
        for dep in meta.get("dependencies") or []:
            dep["repository"] = c.mirror
        (self.chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
        for rel in releases:
            values = rel["values"]
            if rel["chart_name"] == "cert-manager":
                # the one value that differs between the two clusters: where this one's webhook listens
                host = (c.dir / "cert-manager-webhook-host").read_text().strip()
                values = {**values, "webhook": {**values.get("webhook", {}), "url": {"host": host}}}
            (self.work / f"{rel['name']}-values.yaml").write_text(yaml.safe_dump(values))
        (self.work / "issuers.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": issuers}))

    def run(self) -> None:
        c, m = self.c, self.c.mirror
        c.helm("dependency", "update", self.chart)
        c.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(ROOT.parent / "shared" / "charts" / "manifests" / "cert-manager.crds.yaml"),
        )
        namespaces = []
        for rel in self.releases:
            args = [
                "upgrade",
                "--install",
                rel["name"],
                "-n",
                rel["namespace"],
                "--create-namespace",
                "--cleanup-on-fail",
            ]
            values = ["-f", str(self.work / f"{rel['name']}-values.yaml")]
            if rel["chart_name"] == "mybinder":
                args += [str(self.chart), *values]
            else:
                args += [rel["chart_name"], "--repo", m, "--version", rel["version"], *values]
                if rel["chart_name"] == "cert-manager":
                    args.append("--skip-crds")
            c.helm(*args)
            if rel["chart_name"] == "cert-manager" and self.issuers:
                for w in c.kubectl("get", "deploy", "-n", rel["namespace"], "-o", "name").split():
                    c.kubectl("rollout", "status", "-n", rel["namespace"], w, "--timeout=600s")
                self.apply_issuers()
            namespaces.append(rel["namespace"])
        for ns in namespaces:
            for w in c.kubectl("get", "deploy,ds,sts", "-n", ns, "-o", "name").split():
                c.kubectl("rollout", "status", "-n", ns, w, "--timeout=600s")

    def apply_issuers(self, timeout: float = 120) -> None:
        """The ClusterIssuers, again every second while cert-manager's webhook cannot admit them
        yet (its CA is injected by cainjector once it runs)."""
        deadline = time.monotonic() + timeout
        while True:
            res = self.c.run(
                "kubectl",
                "--kubeconfig",
                self.c.kubeconfig,
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                str(self.work / "issuers.json"),
                check=False,
            )
            if res.returncode == 0:
                return
            if "webhook" not in res.stderr or time.monotonic() > deadline:
                raise RuntimeError(f"applying the ClusterIssuers failed: {res.stderr[-2000:]}")
            time.sleep(1)


def read_releases(c: Cluster) -> tuple[list[dict], list[dict]]:
    order = {"cert-manager": 0, "ingress-nginx": 1}
    releases = []
    for rel in json.loads(c.helm("list", "--all-namespaces", "-o", "json")):
        m = re.match(r"^(.*)-(v?\d+\.\d+\.\d+\S*)$", rel["chart"])
        chart_name, version = (m.group(1), m.group(2)) if m else (rel["chart"], "")
        values = json.loads(c.helm("get", "values", rel["name"], "-n", rel["namespace"], "-o", "json")) or {}
        releases.append(
            {
                "name": rel["name"],
                "namespace": rel["namespace"],
                "chart_name": chart_name,
                "version": version,
                "values": values,
            }
        )
    releases.sort(key=lambda r: order.get(r["chart_name"], 2))
    issuers = []
    res = c.run("kubectl", "--kubeconfig", c.kubeconfig, "get", "clusterissuers", "-o", "json", check=False)
    if res.returncode == 0:
        for item in json.loads(res.stdout)["items"]:
            meta = item["metadata"]
            issuers.append(
                {
                    "apiVersion": item["apiVersion"],
                    "kind": item["kind"],
                    "metadata": {"name": meta["name"]},
                    "spec": item["spec"],
                }
            )
    return releases, issuers


def main() -> int:
    a = b = raw = None
    releases: list[dict] | None = None
    issuers: list[dict] = []
    full_yml, full_raw, changed_full, stages_full = [], [], [], []
    try:
        # Full deploys: a fresh pair of clusters per round; deploy.yml first in odd rounds, the
        # raw sequence first in even ones (it needs the values deploy.yml made, read once).
        for i in range(FULL_ROUNDS):
            if a is not None and b is not None:
                a.down()
                b.down()
            if raw is not None:
                shutil.rmtree(raw.work, ignore_errors=True)
            a, b = Cluster("deploy"), Cluster("raw")
            log(f"full deploy round {i + 1}: starting two local clusters")
            a.up()
            b.up()
            if releases is None or i % 2 == 0:
                t_yml, (ch, stages) = timed(lambda c=a: deploy_yml(c))
                if releases is None:
                    releases, issuers = read_releases(a)
                raw = Raw(b, releases, issuers)
                t_raw, _ = timed(raw.run)
            else:
                raw = Raw(b, releases, issuers)
                t_raw, _ = timed(raw.run)
                t_yml, (ch, stages) = timed(lambda c=a: deploy_yml(c))
            full_yml.append(t_yml)
            full_raw.append(t_raw)
            changed_full.append(ch)
            stages_full.append(stages)
        noop_yml, noop_raw, changed_noop, stage_times = [], [], [], []
        for i in range(NOOP_ROUNDS):
            log(f"no-op round {i + 1}")
            t, (ch, roles) = timed(lambda: deploy_yml(a))
            noop_tasks = LAST_TASKS["count"]
            noop_yml.append(t)
            changed_noop.append(ch)
            stage_times.append(roles)
            t, _ = timed(raw.run)
            noop_raw.append(t)
        floor = ansible_floor(a)
        per_task = ansible_per_task(a, floor)
    finally:
        for c in (a, b):
            if c is not None:
                c.down()
        if raw is not None:
            shutil.rmtree(raw.work, ignore_errors=True)

    med_full_yml, med_full_raw = statistics.median_low(full_yml), statistics.median_low(full_raw)
    med_yml, med_raw = statistics.median_low(noop_yml), statistics.median_low(noop_raw)
    r_full, r_noop = med_full_yml / med_full_raw, med_yml / med_raw
    ok_full, ok_noop = r_full <= 1.2, r_noop <= 0.5 and all(ch == 0 for ch in changed_noop)
    names = ", ".join(f"{r['name']} ({r['namespace']})" for r in releases)
    print("## deploy\n")
    print(
        "`ansible-playbook deploy.yml -i inventories/local` (every stage) against the raw sequence upstream's "
        "script ran with the same real charts (from the mirror directory, served on loopback) and values: "
        "`helm dependency update`, `kubectl apply --server-side` of the cert-manager CRDs, `helm upgrade "
        f"--install --create-namespace --cleanup-on-fail` of each release ({names}) and the ClusterIssuers "
        "(once cert-manager's Deployments are rolled out, retried each second until its webhook admits them), "
        "then `kubectl rollout status --timeout=600s` for "
        "every Deployment, DaemonSet and StatefulSet. Each on its own fresh local cluster (two side by side); "
        f"full deploy: median of {FULL_ROUNDS} rounds, each on a new pair of clusters, alternating which goes "
        f"first; no-op: median of {NOOP_ROUNDS} alternating rounds. Script: `tests/bench/bench_deploy.py`.\n"
    )
    yes = {True: "yes", False: "NO"}
    rows = [
        (
            "full deploy (empty cluster)",
            f"{med_full_yml:.1f} s (changed={max(changed_full)})",
            f"{med_full_raw:.1f} s",
            r_full,
            "<= 1.2",
            ok_full,
        ),
        (
            "no-op redeploy",
            f"{med_yml:.1f} s (changed={max(changed_noop)})",
            f"{med_raw:.1f} s",
            r_noop,
            "<= 0.5, changed=0",
            ok_noop,
        ),
    ]
    print("| | deploy.yml | raw sequence | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for what, yml, rawt, ratio, target, ok in rows:
        print(f"| {what} | {yml} | {rawt} | {ratio:.2f} | {target} | {yes[ok]} |")
    rounds_yml = ", ".join(f"{t:.1f}" for t in noop_yml)
    rounds_raw = ", ".join(f"{t:.1f}" for t in noop_raw)
    full_rounds_yml = ", ".join(f"{t:.1f}" for t in full_yml)
    full_rounds_raw = ", ".join(f"{t:.1f}" for t in full_raw)
    print(f"\nFull deploy rounds: deploy.yml {full_rounds_yml} s; raw {full_rounds_raw} s.")
    print(
        f"No-op rounds: deploy.yml {rounds_yml} s; raw {rounds_raw} s. The raw sequence upgrades every release "
        "on every run (a new revision each time: it cannot tell whether anything changed); deploy.yml compares "
        "and leaves unchanged releases alone, and also runs its preflight, secret, cluster and post-deploy checks.\n"
    )
    median_round = stage_times[noop_yml.index(med_yml)]
    full_stages = stages_full[full_yml.index(med_full_yml)]
    print("Where deploy.yml spends its time (`ansible.posix.profile_roles`, seconds):\n")
    print("| stage | full deploy (median round) | no-op (median round) |")
    print("|---|---|---|")
    for stage in STAGES:
        print(f"| {stage} | {full_stages.get(stage, 0):.1f} | {median_round.get(stage, 0):.1f} |")
    rest_full, rest_noop = med_full_yml - sum(full_stages.values()), med_yml - sum(median_round.values())
    print(f"| ansible-playbook start-up and play overhead | {rest_full:.1f} | {rest_noop:.1f} |")
    print(
        f"\nAn empty play against the same inventory takes {floor:.1f} s, and Ansible's own cost per task here is "
        f"{per_task * 1000:.0f} ms (a play of 50 set_fact tasks, minus the empty play); the no-op deploy runs "
        f"{noop_tasks} tasks (skipped ones included: they cost nearly as much), so about {noop_tasks * per_task:.1f} s "
        "of it is that overhead. The collection's modules run inside Ansible's worker process (no Python start-up "
        "per task), so the rest is the work itself: reading the release records and checking their objects (an "
        "unchanged release is not rendered again), the CRD and ClusterIssuer applies, the rollout and health "
        "checks, and on a full deploy the three renders and installs. The raw "
        "sequence is a handful of Go binaries that each finish in a fraction of a second on the local cluster, "
        "whose simulated pods are ready at once.\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
