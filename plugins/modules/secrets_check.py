#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: secrets_check
short_description: Refuse to deploy with encrypted, shared or plaintext-committed secrets
version_added: 0.1.0
description:
  - Read-only checks a deploy runs before it uses any secret of a git-crypt repository.
  - O(required_files) - fails while any of these files is missing or still starts with the git-crypt header
    (the repository is locked), naming the files and how to unlock.
  - O(compare_files) - fails when files of two different environments hold the same value anywhere, reporting the
    files and key paths, never the value. Each file of O(compare_files) is one environment; the files of
    O(environment_files) together are one more (the environment being deployed). Values are compared by SHA-256
    digest.
  - O(committed_plaintext) - fails when a file that C(.gitattributes) assigns to git-crypt is committed (or
    staged) unencrypted, the mistake C(git-crypt status) only warns about.
  - Every problem found is reported in one failure message.
requirements:
  - git (for O(committed_plaintext))
  - PyYAML (for O(compare_files))
extends_documentation_fragment:
  - mybinder.deploy.module
  - mybinder.deploy.attributes.read_only
attributes:
  idempotent:
    description: Running the module again gives the same result; it never changes anything.
    support: full
options:
  path:
    description:
      - The repository (its top directory or any directory inside it). Relative file names are relative to its top.
    type: path
    required: true
  required_files:
    description:
      - Secret files the environment needs; each must exist and be decrypted.
    type: list
    elements: path
    default: []
  compare_files:
    description:
      - Secret files of different environments, one file per environment (for example C(secret/config/staging.yaml)
        and C(secret/config/prod.yaml)). No value may appear in two environments. YAML and JSON files are compared
        leaf by leaf; any other file as a whole. Each must exist and be decrypted.
    type: list
    elements: path
    default: []
  environment_files:
    description:
      - Secret files of the environment being deployed (its values file, kubeconfig, ...). They count as one
        environment, compared with each file of O(compare_files) but not with each other (one environment may
        repeat a value). Only used when O(compare_files) is set; a file in both lists counts here.
    type: list
    elements: path
    default: []
  compare_min_length:
    description:
      - Values shorter than this are not compared (short values such as V(true) or a port are not secrets).
    type: int
    default: 8
  compare_ignore_keys:
    description:
      - Key paths (shell patterns such as V(*.auth_uri)) whose values may be the same across environments.
    type: list
    elements: str
    default: []
  committed_plaintext:
    description:
      - Check every file assigned to git-crypt by C(.gitattributes) (filter C(git-crypt) or C(git-crypt-NAME)).
        Its committed (C(HEAD)) and staged blobs must start with the git-crypt header. Works without the key.
    type: bool
    default: false
seealso:
  - module: mybinder.deploy.git_crypt
"""

EXAMPLES = r"""
- name: Refuse to deploy prod while its secrets are encrypted or shared with staging
  mybinder.deploy.secrets_check:
    path: "{{ playbook_dir }}"
    required_files:
      - secret/config/prod.yaml
    environment_files:
      - secret/config/prod.yaml
    compare_files:
      - secret/config/staging.yaml
      - secret/config/ovh.yaml

- name: Nothing marked for git-crypt may be committed in plaintext (needs no key)
  mybinder.deploy.secrets_check:
    path: "{{ playbook_dir }}"
    committed_plaintext: true
"""

RETURN = r"""
repository:
  description: Top directory of the repository (or O(path) when it is not a git work tree).
  returned: always
  type: str
encrypted_files:
  description: Files of O(required_files) or O(compare_files) that still start with the git-crypt header.
  returned: always
  type: list
  elements: str
  sample: [secret/config/prod.yaml]
missing_files:
  description: Files of O(required_files) or O(compare_files) that do not exist.
  returned: always
  type: list
  elements: str
shared_values:
  description: Groups of places (file and key path) in two or more files that hold the same value.
  returned: always
  type: list
  elements: list
  sample:
    - - {file: secret/config/staging.yaml, key: grafana.adminPassword}
      - {file: secret/config/prod.yaml, key: grafana.adminPassword}
committed_plaintext:
  description: Files assigned to git-crypt whose committed (V(HEAD)) or staged (V(index)) blob is not encrypted.
  returned: always
  type: list
  elements: dict
  sample: [{path: secret/config/prod.yaml, where: HEAD}]
checked:
  description: How many files each check looked at.
  returned: always
  type: dict
  sample: {required: 2, compared: 4, marked_for_git_crypt: 9}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import Requirement, conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._secrets_check import run
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import HAS_YAML


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            required_files=dict(type="list", elements="path", default=[]),
            compare_files=dict(type="list", elements="path", default=[]),
            environment_files=dict(type="list", elements="path", default=[]),
            compare_min_length=dict(type="int", default=8),
            compare_ignore_keys=dict(type="list", elements="str", default=[], no_log=False),
            committed_plaintext=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    yaml_needed = Requirement(
        not module.params["compare_files"] or HAS_YAML, "PyYAML", reason="to compare secret files"
    )
    conclude(module, lambda: run(module.params, module.get_bin_path("git")), yaml_needed)


if __name__ == "__main__":
    main()
