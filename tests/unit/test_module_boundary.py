"""The one boundary of every module (module_utils/_errors.py conclude) and the helpers the
runners share: a failure becomes fail_json with its result keys, a missing library the Ansible
message, a file git-crypt still encrypts a clear refusal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
from ansible_collections.mybinder.deploy.plugins.module_utils import _errors, _yaml
from ansible_collections.mybinder.deploy.plugins.module_utils._drain import DrainInputError
from ansible_collections.mybinder.deploy.plugins.module_utils._helm import HelmError
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KubeApiError, KubeError


class Exited(Exception):
    pass


class FakeModule:
    def __init__(self) -> None:
        self.exited: dict[str, Any] | None = None
        self.failed: dict[str, Any] | None = None

    def exit_json(self, **result: Any) -> None:
        self.exited = result
        raise Exited

    def fail_json(self, **result: Any) -> None:
        self.failed = result
        raise Exited


def conclude(run: Any, *requirements: _errors.Requirement) -> FakeModule:
    module = FakeModule()
    with pytest.raises(Exited):
        _errors.conclude(module, run, *requirements)
    return module


def test_a_result_exits():
    assert conclude(lambda: {"changed": True, "x": 1}).exited == {"changed": True, "x": 1}


def test_a_module_error_fails_with_its_result_keys_and_changed_false_unless_it_says_so():
    def fails() -> dict[str, Any]:
        raise _errors.ModuleError("no", status=403)

    assert conclude(fails).failed == {"changed": False, "msg": "no", "status": 403}

    def fails_after_a_change() -> dict[str, Any]:
        raise _errors.ModuleError("half done", changed=True)

    assert conclude(fails_after_a_change).failed == {"changed": True, "msg": "half done"}


@pytest.mark.parametrize(
    "error",
    [
        KubeApiError(404, "Not Found", {"message": "gone"}, "GET", "/x"),
        KubeError("unreachable"),
        HelmError("helm failed", ["helm", "upgrade"], 1, "", "boom"),
        DrainInputError("timeout: 0 must be a positive number of seconds"),
    ],
    ids=["KubeApiError", "KubeError", "HelmError", "DrainInputError"],
)
def test_the_collections_errors_share_one_root(error: Exception):
    def fails() -> dict[str, Any]:
        raise error

    failed = conclude(fails).failed
    assert (failed is not None and failed["msg"] == str(error)) or failed["msg"] == error.msg  # type: ignore[attr-defined]


def test_a_missing_library_fails_before_the_run_with_ansibles_message():
    ran = []
    missing = _errors.Requirement(False, "kubernetes", "No module named 'kubernetes'", url="https://example.org/k")
    module = conclude(lambda: ran.append(1) or {}, missing)
    assert not ran
    assert module.failed is not None
    assert "kubernetes" in module.failed["msg"] and "https://example.org/k" in module.failed["msg"]
    assert module.failed["exception"] == "No module named 'kubernetes'"


def test_read_unlocked_says_what_is_wrong_with_the_file(tmp_path: Path):
    class Refused(_errors.ModuleError):
        pass

    class Locked(_errors.ModuleError):
        pass

    plain = tmp_path / "plain.yaml"
    plain.write_bytes(b"a: 1\n")
    assert _yaml.read_unlocked(str(plain), "values file", "unlock it", Refused) == b"a: 1\n"
    with pytest.raises(Refused, match=r"values file .*/missing\.yaml does not exist"):
        _yaml.read_unlocked(str(tmp_path / "missing.yaml"), "values file", "unlock it", Refused)
    locked = tmp_path / "locked.yaml"
    locked.write_bytes(b"\x00GITCRYPT\x00" + b"\x01" * 20)
    with pytest.raises(Locked, match="is still encrypted by git-crypt: unlock it"):
        _yaml.read_unlocked(str(locked), "values file", "unlock it", Refused, Locked)
