"""Benchmark of the local control plane (foundation issue).

- cold build: how long tools/build-binaries.sh took for each component when it built it on this
  machine (recorded in the cache as <component>/.build-seconds; a cold build is not repeated here
  because it costs 15-40 minutes).
- warm `up`: tools/localcluster.py up, from cached binaries to every node Ready (and the
  controller-manager serving the default ServiceAccount), in a throwaway cluster directory;
  three runs, median reported. Target: under 20 s.
- RSS: resident memory of the five processes (etcd, kube-apiserver, kube-controller-manager,
  kube-scheduler, kwok) right after `up`, and again with 300 running pods. Target: under 1.5 GiB.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CMD = [sys.executable, str(ROOT / "tools" / "localcluster.py")]


def rss_mib(pids: list[int]) -> float:
    total_kib = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024


def main() -> None:
    bindir = Path(
        subprocess.run(
            [str(ROOT / "tools" / "build-binaries.sh"), "--print"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    cache = bindir.parent
    builds = []
    for comp in sorted(cache.glob("*-v*")):
        marker = comp / ".build-seconds"
        if marker.exists() and (comp / ".complete").exists():
            builds.append((comp.name, float(marker.read_text().strip())))

    ups = []
    rss_idle = rss_loaded = 0.0
    for i in range(3):
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
            env = {**os.environ, "MYBINDER_CLUSTER_DIR": str(Path(tmp) / "c")}
            t0 = time.monotonic()
            subprocess.run([*CMD, "up"], env=env, check=True, capture_output=True, text=True)
            ups.append(time.monotonic() - t0)
            state = json.loads((Path(tmp) / "c" / "state.json").read_text())
            pids = [p["pid"] for p in state["processes"].values()]
            if i == 0:
                time.sleep(5)  # let the controllers settle
                rss_idle = rss_mib(pids)
                kubectl = [str(bindir / "kubectl"), "--kubeconfig", str(Path(tmp) / "c" / "kubeconfig")]
                subprocess.run(
                    [*kubectl, "create", "deployment", "load", "--image=registry.invalid/x", "--replicas=300"],
                    check=True,
                    capture_output=True,
                )
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    out = subprocess.run(
                        [*kubectl, "get", "deployment", "load", "-o", "jsonpath={.status.readyReplicas}"],
                        capture_output=True,
                        text=True,
                        check=False,
                    ).stdout
                    if out.strip() == "300":
                        break
                    time.sleep(1)
                rss_loaded = rss_mib(pids)
            subprocess.run([*CMD, "down"], env=env, check=True, capture_output=True)

    up = statistics.median(ups)
    print("## Local control plane (foundation)\n")
    print(
        "Commands: `tools/build-binaries.sh` (cold build, recorded when it ran), then three times "
        "`python tools/localcluster.py up` / `down` in a throwaway cluster directory "
        "(`python tests/bench/bench_cluster.py`).\n"
    )
    print("| measure | value | target | met |")
    print("|---|---|---|---|")
    for name, secs in builds:
        print(f"| cold build of {name} (first build on this machine) | {secs / 60:.1f} min | - | - |")
    if builds:
        total = sum(seconds for _name, seconds in builds)
        print(
            f"| cold build, all components | {total / 60:.1f} min | fits the 90-min CI with the suite | "
            f"{'yes' if total < 3600 else 'no'} |"
        )
    print(
        f"| warm `up` to all nodes Ready (median of 3: {', '.join(f'{u:.1f}' for u in ups)} s) | {up:.1f} s "
        f"| < 20 s | {'yes' if up < 20 else 'no'} |"
    )
    print(
        f"| RSS of the 5 processes, idle after `up` | {rss_idle:.0f} MiB | < 1536 MiB | "
        f"{'yes' if rss_idle < 1536 else 'no'} |"
    )
    print(
        f"| RSS of the 5 processes, 300 pods running | {rss_loaded:.0f} MiB | < 1536 MiB | "
        f"{'yes' if rss_loaded < 1536 else 'no'} |"
    )


if __name__ == "__main__":
    main()
