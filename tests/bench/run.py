"""`make bench`: run every tests/bench/bench_*.py and write docs/benchmarks.md.

Each bench script measures one topic on this machine and prints one markdown section (its own
commands, numbers and targets). This runner adds the header (command, date, machine) and keeps
going when one script fails, marking its section as failed, so one broken benchmark does not hide
the others; the exit status is non-zero if any failed.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return f"{os.cpu_count()} cores, {mem_kib / 1024 / 1024:.0f} GiB memory, {platform.system()} {platform.machine()}"


def main() -> int:
    only = sys.argv[1:]
    scripts = sorted((ROOT / "tests" / "bench").glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if any(o in s.name for o in only)]
    sections = []
    failed = []
    for script in scripts:
        print(f"[bench] {script.name} ...", flush=True)
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, check=False)
        took = time.monotonic() - t0
        sys.stderr.write(res.stderr[-4000:])
        if res.returncode != 0:
            failed.append(script.name)
            sections.append(
                f"## {script.stem} (FAILED)\n\n`python tests/bench/{script.name}` exited {res.returncode} "
                f"after {took:.0f} s:\n\n```\n{(res.stdout + res.stderr)[-3000:]}\n```\n"
            )
        else:
            sections.append(res.stdout.strip() + "\n")
        print(f"[bench] {script.name}: {'FAILED' if res.returncode else 'ok'} in {took:.0f} s", flush=True)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        "# Benchmarks\n\n"
        f"Produced by `make bench` (which runs `.venv/bin/python tests/bench/run.py`) on {now}, on a machine with "
        f"{machine()}. Each section names the exact commands it timed. Numbers are single runs on a "
        "shared 2-core machine unless a section says otherwise; read ratios, not absolute seconds.\n\n"
    )
    if only:
        # a partial run replaces only its own sections in the existing file
        existing = OUT.read_text() if OUT.exists() else header
        for section in sections:
            title = section.splitlines()[0].replace(" (FAILED)", "")
            existing = replace_section(existing, title, section)
        OUT.write_text(existing)
    else:
        OUT.write_text(header + "\n".join(sections))
    print(f"[bench] wrote {OUT.relative_to(ROOT)}")
    return 1 if failed else 0


def replace_section(text: str, title: str, section: str) -> str:
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip().replace(" (FAILED)", "") == title), None)
    if start is None:
        return text.rstrip() + "\n\n" + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "".join(lines[:start]) + section + ("\n" if end < len(lines) else "") + "".join(lines[end:])


if __name__ == "__main__":
    sys.exit(main())
