"""The collection's modules run inside Ansible's worker process on the controller
(plugins/plugin_utils/_inprocess.py) and give the same results as in a process of their own:
success and failure, the task's environment (and only that task's), no_log, and the fallback when
the switch is off or another interpreter is asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT

MARK = "in the worker process"

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: With the cluster's kubeconfig in the task's environment
      mybinder.deploy.cluster_check:
        timeout: 10
      environment:
        K8S_AUTH_KUBECONFIG: "{kubeconfig}"
      register: good

    - name: Without it (the previous task's environment must not leak here)
      mybinder.deploy.cluster_check:
        timeout: 10
      register: bad
      ignore_errors: true

    - name: A no_log task
      mybinder.deploy.cluster_check:
        kubeconfig: "{kubeconfig}"
        timeout: 10
      register: hidden
      no_log: true

    - name: Keep the results
      ansible.builtin.copy:
        content: "{{{{ {{'good': good, 'bad': bad, 'hidden': hidden}} | to_json }}}}"
        dest: "{out}"
        mode: "0600"
"""


def run(tmp: Path, kubeconfig: Path, name: str, in_process: bool, extra: tuple[str, ...] = ()) -> tuple[dict, str]:
    play = tmp / f"{name}.yml"
    out = tmp / f"{name}.json"
    play.write_text(textwrap.dedent(PLAY.format(kubeconfig=kubeconfig, out=out)))
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG")}
    env.update(
        HOME=str(home),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        MYBINDER_DEPLOY_IN_PROCESS="1" if in_process else "0",
    )
    res = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-vvv", str(play), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    return json.loads(out.read_text()), res.stdout + res.stderr


def comparable(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("elapsed", "invocation")}


@pytest.fixture(scope="module")
def both(cluster, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inprocess")
    return run(tmp, cluster.kubeconfig, "here", True), run(tmp, cluster.kubeconfig, "apart", False)


def test_the_in_process_run_is_taken_and_answers_like_a_module_process(both):
    (here, here_log), (apart, apart_log) = both
    assert MARK in here_log and MARK not in apart_log
    assert here["good"]["server_version"] and not here["good"].get("failed")
    assert comparable(here["good"]) == comparable(apart["good"])


def test_failures_and_the_environment_of_one_task_only(both):
    (here, _), (apart, _) = both
    # the first task's K8S_AUTH_KUBECONFIG is gone: the second finds no cluster, in both ways
    assert here["bad"]["failed"] and apart["bad"]["failed"]
    assert here["bad"]["msg"] == apart["bad"]["msg"]


def test_no_log_hides_the_result_alike(both, cluster):
    (here, here_log), (apart, _) = both
    assert comparable(here["hidden"]) == comparable(apart["hidden"])
    shown = here_log.split("A no_log task", 1)[1].split("Keep the results", 1)[0]
    assert "censored" in shown and str(cluster.server) not in shown


def test_another_interpreter_runs_the_module_apart(cluster, tmp_path):
    # The same Python under another path: a different interpreter as far as the plugin can tell.
    other = tmp_path / "python"
    other.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    other.chmod(0o755)
    result, log = run(tmp_path, cluster.kubeconfig, "other", True, ("-e", f"ansible_python_interpreter={other}"))
    assert MARK not in log
    assert result["good"]["server_version"]
