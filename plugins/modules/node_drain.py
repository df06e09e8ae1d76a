#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_drain
short_description: Cordon, drain and uncordon BinderHub nodes the way the cluster autoscaler needs
version_added: 0.1.0
description:
  - Retires Kubernetes nodes of a BinderHub cluster without killing users' sessions. The selected nodes are
    cordoned (C(spec.unschedulable), a C(mybinder.org/retiring=true:NoSchedule) taint and a
    C(mybinder.org/cordoned-by) annotation saying who cordoned them, when, and whether they were cordoned
    before), then the pods that keep the cluster autoscaler from removing them are evicted through the
    Eviction API, respecting PodDisruptionBudgets.
  - With O(evict=blockers) (the default) user servers and image builds (O(user_pod_selector)) are left alone
    to end at their maximum age; the result says when each is expected to be gone (O(max_pod_age)) and
    so when the node should be empty. DaemonSet and mirror pods are never evicted.
  - Evictions run concurrently (O(parallelism)). An eviction refused because of a PodDisruptionBudget (HTTP
    429) is retried with backoff until O(timeout); a pod selected by several PDBs (HTTP 500, which never
    resolves by itself) is reported with the PDBs' names. Pods already terminating are not evicted again but
    waited for. Waiting compares UIDs, so a replacement pod with the same name does not count as the old one.
  - BinderHub's image cleaner uncordons nodes; the taint keeps new pods away meanwhile, and the next run
    re-asserts the cordon and says so (C(reasserted) of RV(nodes)). O(state=uncordoned) removes only what
    this module added and refuses nodes it did not cordon unless O(force=true).
  - "Safety: refuses to cordon the last schedulable node of a pool (pools by O(pool_labels)), and refuses
    when every running pod of a critical workload (O(critical_pod_selectors): hub, ingress controller)
    would be left on cordoned nodes; O(force=true) turns both refusals into warnings."
  - Progress is shown while the module runs. It writes progress lines (what was cordoned and evicted, what
    is left, when the user pods are expected to end) as they happen; when the task runs on the controller
    (C(ansible_connection=local), as this collection's cluster hosts do) the module's action plugin prints
    them in the play output. Elsewhere, or with C(async), set O(progress_file) and C(tail -f) it.
  - C(changed) is true whenever anything was changed, also when the task fails half way; the failure
    message then says what was done and what is left.
requirements:
  - kubernetes (the Python client), except for kubeconfig contexts with a client certificate or a static token
extends_documentation_fragment:
  - mybinder.deploy.module
  - mybinder.deploy.kube_connection
attributes:
  check_mode:
    support: full
    details:
      - Asks the API server instead of guessing. Node patches and evictions are sent as server-side dry
        runs, so a PodDisruptionBudget that forbids an eviction now is reported in C(blocked) of RV(nodes),
        and an eviction that would have to wait until a PDB's budget recovers is marked with C(pdb_wait).
      - Nothing is waited for in check mode.
  diff_mode:
    support: full
    details: Shows, per node, the cordon state and the pods that are not DaemonSet or mirror pods, before and after.
  idempotent:
    description: Running the module again with the same options changes nothing more.
    support: full
    details:
      - A second run changes nothing when the first one finished. It evicts pods that arrived since, and
        re-asserts a cordon that something else removed.
options:
  name:
    description:
      - The node or nodes to act on. Every name must exist.
      - Mutually exclusive with O(selector); one of the two is required.
    type: list
    elements: str
  selector:
    description:
      - Label selector of the nodes to act on, e.g. V(mybinder.org/node-purpose=user), in kubectl's syntax
        (V(key=value), V(key!=value), V(key in (a,b\)), V(key notin (a\)), V(key), V(!key)).
    type: str
  older_than:
    description:
      - Only nodes created longer ago than this, e.g. V(4d), V(12h), V(1d12h) or a number of seconds.
    type: raw
  max_nodes:
    description:
      - Act on at most this many of the selected nodes. Nodes this module already retires come first (so a
        second run picks the same ones), then the oldest.
    type: int
  state:
    description:
      - V(cordoned) only marks the nodes as retiring. V(drained) also evicts pods (O(evict)) and waits
        (O(wait)). V(uncordoned) removes this module's cordon, taint and annotation.
    type: str
    choices: [cordoned, drained, uncordoned]
    default: drained
  evict:
    description:
      - V(blockers) evicts every pod that is not a user server or build (O(user_pod_selector)), not a
        DaemonSet pod and not a mirror pod, which are exactly the pods that keep the autoscaler from
        removing the node. Finished pods and pods of a DaemonSet that no longer exists are evicted too.
      - V(all) also evicts user servers and builds, ending those sessions.
    type: str
    choices: [blockers, all]
    default: blockers
  user_pod_selector:
    description:
      - Label selector of the pods that are users' sessions and image builds.
    type: str
    default: component in (singleuser-server,binderhub-build)
  wait:
    description:
      - V(none) returns once the evictions are accepted.
      - V(blockers) waits until every evicted pod (and every non-user pod that was already terminating) is
        gone.
      - V(empty) waits until only DaemonSet and mirror pods are left, that is until user pods have ended
        too; set O(timeout) above O(max_pod_age) for that.
    type: str
    choices: [none, blockers, empty]
    default: blockers
  timeout:
    description:
      - Seconds from the start of the task until evictions refused by a PodDisruptionBudget stop being
        retried and the wait ends. What then happens to what is left is O(on_timeout).
    type: int
    default: 300
  on_timeout:
    description:
      - What to do with pods still there (or still blocked by a PDB) when O(timeout) is reached.
      - V(fail) fails the task, saying what was done and what is left.
      - V(force) deletes what is left, bypassing PodDisruptionBudgets, with O(grace_period), then waits for
        those pods to go.
      - V(continue) stops waiting and reports what is left with a warning (used by
        C(playbooks/rotate-user-pool.yml) to let a first batch of nodes empty for a while).
    type: str
    choices: [fail, force, continue]
    default: fail
  grace_period:
    description:
      - Seconds each evicted or force-deleted pod gets to terminate. V(0) means immediately. Unset, each pod's
        own C(terminationGracePeriodSeconds) applies.
    type: int
  max_pod_age:
    description:
      - How long user servers and builds live at most (JupyterHub's culler C(maxAge), 6 hours on mybinder.org),
        e.g. V(6h) or seconds. Used to report when each remaining user pod, and so the node, is expected to be
        gone.
    type: raw
    default: 6h
  delete_node:
    description:
      - Delete the Node object once it is empty. Needs O(state=drained) and O(wait=empty).
      - Deleting the Node object does not delete the machine; the cloud's autoscaler or node pool does that.
    type: bool
    default: false
  parallelism:
    description: How many API requests (evictions, deletions, listings) run at the same time.
    type: int
    default: 32
  force:
    description:
      - Proceed although the last schedulable node of a pool would be cordoned or a critical workload would
        be left only on cordoned nodes (warnings instead of refusals), and uncordon nodes this module did not
        cordon.
    type: bool
    default: false
  pool_labels:
    description:
      - Node label keys that name a node's pool; the first one a node carries counts. Used to refuse cordoning
        the last schedulable node of a pool.
    type: list
    elements: str
    default: [mybinder.org/node-purpose, hub.jupyter.org/node-purpose]
  critical_pod_selectors:
    description:
      - Label selectors of workloads that must keep at least one pod on a schedulable node (per namespace).
    type: list
    elements: str
    default:
      - component=hub
      - app.kubernetes.io/name=ingress-nginx,app.kubernetes.io/component=controller
      - app=nginx-ingress,component=controller
  cordoned_by:
    description:
      - Who cordons, recorded in the node's C(mybinder.org/cordoned-by) annotation. Defaults to C(user@host)
        of the machine running the module.
    type: str
  reason:
    description: Free text recorded in the annotation, e.g. a ticket or "pool rotation".
    type: str
  progress_file:
    description:
      - Append one line per step and per progress change to this file while the module runs (created if
        missing), for C(tail -f).
      - Not needed for progress in the play output on a local connection; the action plugin then uses a
        temporary file of its own unless this is set.
    type: path
notes:
  - A drained node is only removed by the cluster autoscaler once user pods have ended (or were evicted), and
    a node annotated C(cluster-autoscaler.kubernetes.io/scale-down-disabled=true) never is; such a node-level
    blocker is listed in C(autoscaler_blockers) of RV(nodes).
  - Taint, annotation and the other cordon marks are written with a merge patch guarded by the node's
    resourceVersion, and re-read and re-computed on a conflict, so a concurrent change by another controller
    is never overwritten.
seealso:
  - module: kubernetes.core.k8s_drain
    description: Generic drain of one node, like kubectl drain.
"""

EXAMPLES = r"""
- name: Retire user-3 gently (evict only what blocks the autoscaler, leave sessions to end)
  mybinder.deploy.node_drain:
    name: user-3
    reason: replacing the user pool

- name: Cordon the two oldest user nodes older than 4 days
  mybinder.deploy.node_drain:
    selector: mybinder.org/node-purpose=user
    older_than: 4d
    max_nodes: 2
    state: cordoned

- name: Wait until user-3 is empty, then force out what is left and delete the Node object
  mybinder.deploy.node_drain:
    name: user-3
    wait: empty
    timeout: 23400  # 6.5 h: past the culler's max age
    on_timeout: force
    grace_period: 30
    delete_node: true
    progress_file: /tmp/drain-user-3.log

- name: Predict a drain (dry-run evictions ask the server which PDBs would block)
  mybinder.deploy.node_drain:
    name: user-3
    evict: all
  check_mode: true
  register: prediction

- name: Put user-3 back into service
  mybinder.deploy.node_drain:
    name: user-3
    state: uncordoned
"""

RETURN = r"""
nodes:
  description: One entry per selected node, keyed by node name.
  returned: always
  type: dict
  contains:
    cordoned:
      description: Whether the node is unschedulable (or tainted as retiring) after the run.
      type: bool
      sample: true
    cordoned_by_us:
      description: Whether the node carries this module's retiring mark (annotation or taint) after the run.
      type: bool
      sample: true
    cordon:
      description:
        - What the run did to the cordon. V(cordoned) (newly), V(already), V(reasserted) (our mark was there
          but the node had been made schedulable again), V(uncordoned), V(kept-cordoned), V(schedulable).
      type: str
      sample: cordoned
    reasserted:
      description: Whether a cordon removed by something else (e.g. BinderHub's image cleaner) was put back.
      type: bool
      sample: false
    cordon_record:
      description: The node's C(mybinder.org/cordoned-by) annotation (who, when, whether it was cordoned before).
      type: dict
      sample:
        by: alice@laptop
        at: "2024-05-01T10:00:00Z"
        tool: mybinder.deploy.node_drain
        unschedulable_before: false
    evicted:
      description:
        - Pods evicted (in check mode, that the server accepted as a dry run). C(attempts) counts eviction
          requests; C(pdb_wait) names a PodDisruptionBudget the eviction had to wait for (or, in check mode,
          would have to, because earlier evictions of this run use up its budget).
      type: list
      elements: dict
      sample: [{namespace: kube-system, name: kube-dns-5c8f-x2x, reason: "blocks the autoscaler: ...", attempts: 1}]
    skipped:
      description: Pods not evicted, with the reason (user session, build, DaemonSet, mirror, already terminating).
      type: list
      elements: dict
      sample: [{namespace: prod, name: jupyter-alice, reason: "user session: left to end on its own (evict: blockers)"}]
    blocked:
      description: Pods whose eviction a PodDisruptionBudget refused until the end, with the PDB(s) and the message.
      type: list
      elements: dict
      sample: [{namespace: prod, name: web-1, pdbs: [web], message: "Cannot evict pod ..."}]
    forced:
      description: Pods deleted because of O(on_timeout=force), with the grace period used.
      type: list
      elements: dict
      sample: []
    user_pods:
      description:
        - User servers and builds still on the node, with their start, age and expected end (start plus
          O(max_pod_age)); C(overdue) when that is in the past (the culler is late).
      type: list
      elements: dict
      sample: [{namespace: prod, name: jupyter-alice, kind: user, started: "2024-05-01T08:00:00Z", age: 2h00m,
                age_seconds: 7200, expected_end: "2024-05-01T14:00:00Z", overdue: false, terminating: false}]
    estimated_empty_at:
      description:
        - When the node should hold only DaemonSet and mirror pods; the run's end if it already does; null when
          something other than user pods is left (see C(autoscaler_blockers) of RV(nodes)).
      type: str
      sample: "2024-05-01T14:00:00Z"
    empty:
      description: Whether only DaemonSet and mirror pods are left (predicted in check mode).
      type: bool
      sample: false
    autoscaler_blockers:
      description:
        - What still keeps the cluster autoscaler from removing the node, user pods aside (those are in
          C(user_pods) of RV(nodes)); each entry has the pod (or C(node)) and the reasons.
      type: list
      elements: dict
      sample: [{namespace: kube-system, name: metrics-agent-1, reasons: [no controller (bare pod)]}]
    deleted:
      description: Whether the Node object was deleted (O(delete_node)).
      type: bool
      sample: false
    elapsed:
      description: Seconds from the start of the task until this node was done.
      type: float
      sample: 12.5
summary:
  description: A table with one line per node, for printing.
  returned: always
  type: list
  elements: str
  sample: ["NODE    CORDON  EVICTED  BLOCKED  SKIPPED  USER PODS  BLOCKERS LEFT  EMPTY BY              ELAPSED",
           "user-3  ours    4        0        6        3          0              2024-05-01T14:00:00Z  3.2s"]
elapsed:
  description: Seconds the whole task took.
  returned: always
  type: float
  sample: 12.5
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils import _drain as d
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KUBE_CONNECTION_ARG_SPEC
from ansible_collections.mybinder.deploy.plugins.module_utils._node_drain import drain_nodes


def argument_spec() -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": {"type": "list", "elements": "str"},
        "selector": {"type": "str"},
        "older_than": {"type": "raw"},
        "max_nodes": {"type": "int"},
        "state": {"type": "str", "choices": ["cordoned", "drained", "uncordoned"], "default": "drained"},
        "evict": {"type": "str", "choices": ["blockers", "all"], "default": "blockers"},
        "user_pod_selector": {"type": "str", "default": d.DEFAULT_USER_POD_SELECTOR},
        "wait": {"type": "str", "choices": ["none", "blockers", "empty"], "default": "blockers"},
        "timeout": {"type": "int", "default": 300},
        "on_timeout": {"type": "str", "choices": ["fail", "force", "continue"], "default": "fail"},
        "grace_period": {"type": "int"},
        "max_pod_age": {"type": "raw", "default": "6h"},
        "delete_node": {"type": "bool", "default": False},
        "parallelism": {"type": "int", "default": 32},
        "force": {"type": "bool", "default": False},
        "pool_labels": {"type": "list", "elements": "str", "default": list(d.DEFAULT_POOL_LABELS)},
        "critical_pod_selectors": {
            "type": "list",
            "elements": "str",
            "default": list(d.DEFAULT_CRITICAL_POD_SELECTORS),
        },
        "cordoned_by": {"type": "str"},
        "reason": {"type": "str"},
        "progress_file": {"type": "path"},
    }
    spec.update(KUBE_CONNECTION_ARG_SPEC)
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("name", "selector")],
        required_one_of=[("name", "selector")],
        supports_check_mode=True,
    )
    conclude(module, lambda: drain_nodes(module.params, module.check_mode, module._diff, module.warn))


if __name__ == "__main__":
    main()
