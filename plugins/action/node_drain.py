# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mybinder.deploy.node_drain: shows the module's progress while it runs.

A module cannot print, and a drain that waits for user sessions to end can run for hours. The
module appends progress lines to its ``progress_file``; when the task runs on the controller
itself (``ansible_connection: local``, how this collection's cluster hosts are reached) this
plugin gives the module a temporary progress file, runs the module in a thread, and prints every
new line of that file as it appears, e.g.::

    [prod] node_drain: 2024-05-01T10:00:03Z +3.1s user-3: waiting, 4m57s to the deadline: 2 user pod(s), ...

Elsewhere (another connection, become, async) the module runs as usual; its ``progress_file``
option still works there for ``tail -f``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from typing import Any

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.mybinder.deploy.plugins.plugin_utils._inprocess import on_controller

display = Display()
MODULE = "mybinder.deploy.node_drain"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        if not on_controller(self):
            result.update(
                self._execute_module(
                    module_name=MODULE, module_args=args, task_vars=task_vars, wrap_async=bool(self._task.async_val)
                )
            )
            return result

        own_file = not args.get("progress_file")
        if own_file:
            fd, path = tempfile.mkstemp(prefix="node_drain-", suffix=".log")
            os.close(fd)
            args["progress_file"] = path
        else:
            path = os.path.expanduser(str(args["progress_file"]))
        offset = os.path.getsize(path) if os.path.exists(path) else 0
        host = task_vars.get("inventory_hostname", "")
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
            except BaseException as exc:  # re-raised in the task's own thread below
                box["error"] = exc

        worker = threading.Thread(target=work, name="node_drain", daemon=True)
        try:
            worker.start()
            while worker.is_alive():
                worker.join(0.2)
                offset = show_new_lines(path, offset, host)
            show_new_lines(path, offset, host)
        finally:
            if own_file:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        if "error" in box:
            raise box["error"]
        result.update(box["result"])
        return result


def show_new_lines(path: str, offset: int, host: str) -> int:
    """Print the complete lines appended to ``path`` since ``offset``; return the new offset."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return offset
    end = data.rfind(b"\n")
    if end < 0:
        return offset
    for line in data[: end + 1].decode("utf-8", "replace").splitlines():
        if line.strip():
            display.display(f"[{host}] node_drain: {line}")
    return offset + end + 1
