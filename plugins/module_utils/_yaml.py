# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PyYAML, imported in one place (collection-private).

PyYAML ships with ansible-core, so it is there in practice; a module that needs it still reports
it missing the Ansible way (the requirement ``PYYAML``, which ``_errors.conclude`` checks).
"""

from __future__ import annotations

from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError, Requirement
from ansible_collections.mybinder.deploy.plugins.module_utils._git_crypt import HEADER as GITCRYPT_HEADER

YAML_IMPORT_ERROR: str | None
try:
    import yaml
except ImportError as exc:  # pragma: no cover - PyYAML ships with ansible-core
    yaml: Any = None
    YAML_IMPORT_ERROR = str(exc)
else:
    YAML_IMPORT_ERROR = None

HAS_YAML = yaml is not None
# libyaml's parser when PyYAML has it: manifests are parsed on every run, and cert-manager's CRD
# file is over a megabyte, which the pure-Python parser takes seconds to read.
SAFE_LOADER: Any = (getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader) if HAS_YAML else None
PYYAML = Requirement(HAS_YAML, "PyYAML", YAML_IMPORT_ERROR)


def read_unlocked(
    path: str, what: str, unlock: str, error: type[ModuleError], encrypted: type[ModuleError] | None = None
) -> bytes:
    """The bytes of a file the deploy reads (``what``: a kubeconfig, a values file); ``error``
    when it does not exist or cannot be read, ``encrypted`` (else ``error``) with the ``unlock``
    hint when git-crypt still has it encrypted."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError as exc:
        raise error(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror}") from exc
    if raw.startswith(GITCRYPT_HEADER):
        raise (encrypted or error)(f"{what} {path} is still encrypted by git-crypt: {unlock}")
    return raw
