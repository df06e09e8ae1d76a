"""Run a list of tasks on localhost with the project's ansible.cfg and return each task's result."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from conftest import ROOT


def run_tasks(tmp: Path, tasks: list[dict[str, Any]], *args: str, env: dict[str, str] | None = None) -> list[dict]:
    """Each task's result in order; a failing task does not stop the play (ignore_errors)."""
    for task in tasks:
        task.setdefault("ignore_errors", True)
    book = tmp / "play.yml"
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(book), *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_NOCOLOR": "1",
            **(env or {}),
        },
        cwd=ROOT,
    )
    assert "{" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])  # timing lines may follow
    out = []
    for task in doc["plays"][0]["tasks"]:
        out.extend(task["hosts"].values())
    assert len(out) == len(tasks), proc.stdout[-3000:] + proc.stderr[-2000:]
    return out
