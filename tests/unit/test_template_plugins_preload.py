"""plugin_utils/_inprocess.py loads Ansible's builtin filters and tests, imports urllib3 and makes
the chart repositories' TLS context when the main process imports it, so that the workers forked
for each task inherit them instead of loading them again (10-60 ms per task). In a worker (a
child process) it loads nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import multiprocessing, sys
sys.path.insert(0, {collections!r})
from ansible.plugins.loader import filter_loader, test_loader, init_plugin_loader
init_plugin_loader()

def loaded():
    return sorted({{p.rsplit('/', 1)[-1] for p in filter_loader._module_cache}}), sorted(
        {{p.rsplit('/', 1)[-1] for p in test_loader._module_cache}})

def imported():
    return 'urllib3' in sys.modules

def state():
    return {state}()

def child(q):
    import ansible_collections.mybinder.deploy.plugins.plugin_utils._inprocess  # noqa: F401
    q.put(state())

if __name__ == "__main__":
    if sys.argv[1] == "child":
        q = multiprocessing.get_context("fork").Queue()
        p = multiprocessing.get_context("fork").Process(target=child, args=(q,))
        p.start(); print(q.get()); p.join()
    else:
        print(state())
        import ansible_collections.mybinder.deploy.plugins.plugin_utils._inprocess  # noqa: F401
        print(state())
        from ansible_collections.mybinder.deploy.plugins.module_utils import _chart_repo
        print(_chart_repo._TLS_CONTEXT is not None and _chart_repo.tls_context() is _chart_repo._TLS_CONTEXT)
"""


def probe(mode: str, state: str = "loaded") -> list[str]:
    """Run the probe in a new interpreter: `state` (loaded: the builtin filter and test files;
    imported: whether urllib3 is) before and after importing _inprocess, or in a forked child."""
    code = PROBE.format(collections=str(ROOT / ".collections"), state=state)
    out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True, cwd=ROOT)
    return out.stdout.strip().splitlines()


def test_the_main_process_loads_the_builtin_filters_and_tests():
    before, after, _ = probe("main")
    assert before == "([], [])"
    assert "'core.py'" in after and "'mathstuff.py'" in after and "'files.py'" in after, after


def test_a_worker_process_loads_nothing():
    (in_child,) = probe("child")
    assert in_child == "([], [])"


def test_the_main_process_imports_what_the_modules_import_when_they_connect():
    # urllib3 is what every module that talks to a cluster imports when it builds its client;
    # the TLS context of chart repository requests is made once, there, and then reused
    assert probe("main", "imported") == ["False", "True", "True"]


def test_a_worker_process_imports_nothing_for_later_tasks():
    assert probe("child", "imported") == ["False"]
