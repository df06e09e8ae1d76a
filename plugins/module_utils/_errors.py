# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The root of this collection's exceptions (collection-private).

Every failure a module reports is a ``ModuleError``: the code that finds the problem raises it
with a message meant for the operator and the facts that go with it, and the module's ``main()``
ends with ``conclude()``, which turns it into ``fail_json(**exc.result())`` in exactly one place,
as kubernetes.core's modules do with their own exception type. Nothing below ``main()`` calls
``fail_json``; a missing library is a ``Requirement`` that ``conclude()`` checks first.

``_git_crypt.GitCryptError`` is a ModuleError too, with the same shape (``msg``, ``details``,
``result()``) and, when tools/check-plaintext-secrets.py imports _git_crypt.py as a file of its
own outside Ansible, ``Exception`` for its root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ansible.module_utils.basic import missing_required_lib


class ModuleError(Exception):
    """A failure a module reports. ``msg`` is for the operator (never key material or secret
    values); ``details`` are further result keys (e.g. ``status``, ``changed``, what was done)."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details: dict[str, Any] = details

    def result(self) -> dict[str, Any]:
        """The keyword arguments of fail_json."""
        return {"msg": self.msg, **self.details}


@dataclass(frozen=True)
class Requirement:
    """A Python library a module needs: whether it imported, its name, the import error, and the
    hints missing_required_lib gives (why it is needed, where to get it)."""

    present: bool
    library: str
    error: str | None = None
    reason: str | None = None
    url: str | None = None

    def check(self) -> None:
        """Raise the ModuleError of the library when it is missing."""
        if not self.present:
            details = {} if self.error is None else {"exception": self.error}
            message = missing_required_lib(self.library, reason=self.reason, url=self.url)
            raise ModuleError(message, **details)


def conclude(module: Any, run: Callable[[], dict[str, Any]], *requirements: Requirement) -> None:
    """The end of every module's main(), its one boundary: check the libraries it needs, run it,
    and exit_json with the result, or fail_json with the ModuleError raised on the way
    (``changed: false`` unless the error says otherwise)."""
    try:
        for requirement in requirements:
            requirement.check()
        result = run()
    except ModuleError as exc:
        module.fail_json(**{"changed": False, **exc.result()})
    module.exit_json(**result)
