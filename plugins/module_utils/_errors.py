# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The root of this collection's exceptions (collection-private).

Every failure a module reports is a ``ModuleError``: the code that finds the problem raises it
with a message meant for the operator and the facts that go with it, and the module's ``main()``
turns it into ``fail_json(**exc.result())`` in exactly one place, as kubernetes.core's modules do
with their own exception type. Nothing below ``main()`` calls ``fail_json``.

One exception to the rule: ``_git_crypt.GitCryptError`` has the same shape (``msg``, ``details``,
``result()``) but its own root, because _git_crypt.py is also imported outside Ansible by
tools/check-plaintext-secrets.py, as a file of its own.
"""

from __future__ import annotations

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


def require(present: bool, library: str, error: str | None, **hint: Any) -> None:
    """Raise the ModuleError of a missing Python library: missing_required_lib's message (``hint``:
    its ``reason`` and ``url``) and the import error."""
    if not present:
        details = {} if error is None else {"exception": error}
        raise ModuleError(missing_required_lib(library, **hint), **details)
