# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The deploy lock a module renews while it works (argument spec: plugins/module_utils/_lease.py
    # LOCK_ARG_SPEC), for helm_release, helm_rollback and rollout_status.
    DOCUMENTATION = r"""
options:
  lock:
    description:
      - The deploy lock of the release this run holds (RV(mybinder.deploy.release_lock#module:lock) of
        M(mybinder.deploy.release_lock)), renewed while the module works, so that it does not expire during a long
        helm run or rollout.
      - When another run holds the lock now (this run did not renew it in time), the module fails before it changes
        anything.
    type: dict
    suboptions:
      name:
        description: Name of the Lease.
        type: str
        required: true
      namespace:
        description: Namespace of the Lease.
        type: str
        required: true
      holder:
        description: The holder this run is.
        type: str
        required: true
      duration:
        description: Seconds the lock stays valid after a renewal.
        type: int
        default: 60
"""
