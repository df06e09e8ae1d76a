# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # What every module of this collection documents alike: its authors, what its attributes
    # mean (as ansible.builtin.action_common_attributes words them) and its platform (every module
    # runs on the controller, or a POSIX host it reaches). Each module says how it supports the
    # attributes: check_mode, diff_mode and idempotent in its own documentation, or through
    # mybinder.deploy.attributes.read_only.
    DOCUMENTATION = r"""
options: {}
author:
  - mybinder.deploy developers (!UNKNOWN)
attributes:
  check_mode:
    description: >-
      Can run in check_mode and return changed status prediction without modifying target, if not supported
      the action will be skipped.
  diff_mode:
    description: >-
      Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
"""
