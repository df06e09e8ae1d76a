# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Attributes that several of this collection's modules share, written once. Each module still
    # declares its own attributes (platform at least) next to these.
    DOCUMENTATION = r"""
options: {}
"""

    # A module that only reads (mybinder.deploy.attributes.read_only).
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: Only reads.
  diff_mode:
    support: none
  idempotent:
    description: Only reads.
    support: full
"""

    # A module whose action plugin runs it in rounds (mybinder.deploy.attributes.rounds).
    ROUNDS = r"""
options:
  progress_interval:
    description: Seconds between two progress lines.
    type: int
    default: 10
  wait_seconds:
    description: Seconds this module run waits at most; set by the action plugin for each round. Defaults to O(timeout).
    type: float
  fail_on_timeout:
    description:
      - Whether to fail when O(wait_seconds) passes with work left; the action plugin sets it for its last round only.
    type: bool
    default: true
attributes:
  action:
    description: >-
      Indicates this has a corresponding action plugin so some parts of the options can be executed on
      the controller.
    support: full
    details: The action plugin runs the module in rounds and prints, between them, what is done and what is left.
"""
