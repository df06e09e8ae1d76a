# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The release a helm module acts on, and how helm runs (argument spec:
    # plugins/module_utils/_helm_release.py RELEASE_ARG_SPEC), shared by helm_release and helm_rollback.
    DOCUMENTATION = r"""
options:
  name:
    description: Release name.
    type: str
    required: true
    aliases: [release_name]
  namespace:
    description: Namespace of the release.
    type: str
    required: true
    aliases: [release_namespace]
  timeout:
    description: Time helm may spend on each Kubernetes operation and on hooks, as a Go duration (C(5m), C(90s)).
    type: str
    default: 5m
  binary_path:
    description: The helm binary; found on E(PATH) when not set.
    type: path
"""
