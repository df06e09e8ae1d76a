#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: git_crypt
short_description: Unlock or lock a git-crypt repository safely and idempotently
version_added: 0.1.0
description:
  - Brings a git repository whose secret files are encrypted with L(git-crypt,https://www.agwa.name/projects/git-crypt/)
    to O(state=unlocked) (files readable) or O(state=locked) (files encrypted in the work tree), using the
    real C(git-crypt) executable.
  - Idempotent, unlike C(git-crypt) itself. A repository already unlocked with the same key is left alone
    (no file is touched, RV(ignore:changed=false)); unlocked with a different key is an error and nothing changes;
    locking a locked repository reports no change.
  - The key reaches C(git-crypt) on standard input (C(git-crypt unlock -)) or through an inherited pipe, never on a
    command line, in an environment variable, in a temporary file or in a result. O(key) is C(no_log).
  - Before anything is installed the key is tried on one committed encrypted file. A valid key of another
    repository is refused with "this key does not belong to this repository" and nothing changes. If
    C(git-crypt unlock) fails (or the module is interrupted by SIGINT, SIGTERM or SIGHUP) after it started,
    the repository is put back exactly as it was (git-crypt keys, git configuration, clean work tree).
  - A work tree with modified tracked files is refused with the list of those files (git-crypt would refuse
    too); nothing changes.
  - After an unlock, decrypted credential files (O(private_file_patterns), by default kubeconfigs, private keys
    and service-account JSON) get mode O(private_file_mode).
  - Repairs a half-finished unlock done with the same key (files still encrypted or missing) when the only
    modified files are the ones git-crypt left behind.
requirements:
  - git
  - git-crypt >= 0.7.0 (reads keys from standard input)
extends_documentation_fragment:
  - mybinder.deploy.module
attributes:
  check_mode:
    support: full
    details:
      - Check mode runs every check a real run does (key format, key belongs to the repository, clean work tree,
        different key installed) and returns the result the real run would, without installing anything.
  diff_mode:
    support: full
    details: The diff shows the repository state and the number of readable files before and after.
  idempotent:
    description: Running the module again with the same options reports no change and touches no file.
    support: full
options:
  path:
    description:
      - The repository, its top directory or any directory inside its work tree.
    type: path
    required: true
  state:
    description:
      - V(unlocked) installs the key and decrypts the files in the work tree. Needs O(key) or O(key_file).
      - V(locked) removes the key from the repository and puts the encrypted files back in the work tree.
    type: str
    choices: [unlocked, locked]
    default: unlocked
  key:
    description:
      - The base64 text of an exported key (C(git-crypt export-key FILE), then C(base64 -w0 FILE)), the way CI
        systems store it. Spaces and line breaks anywhere in the text are ignored.
      - Mutually exclusive with O(key_file).
    type: str
  key_file:
    description:
      - Path to an exported key file (as written by C(git-crypt export-key)). A relative path is relative to O(path).
      - The file is only read; give it mode 0600 and keep it outside the repository. The module warns when the
        file is inside the work tree and git neither tracks nor ignores it (one C(git add -A) from a leak).
    type: path
  key_name:
    description:
      - The git-crypt key name (C(git-crypt init -k NAME)); unset means the default key.
      - With O(state=unlocked), git-crypt takes the name from the key file; when set, it must match the key's
        embedded name. With O(state=locked), selects which key to lock (C(git-crypt lock -k NAME)).
    type: str
  force:
    description:
      - With O(state=locked), lock even when tracked files are modified (C(git-crypt lock --force)); their
        uncommitted changes are lost. Without it such a lock is refused with the list of files.
      - Has no effect on O(state=unlocked), as an unlock never discards changes.
    type: bool
    default: false
  binary_path:
    description:
      - Path of the C(git-crypt) executable. Default is C(git-crypt) found on E(PATH).
    type: path
  private_file_patterns:
    description:
      - Shell patterns (C(fnmatch)) matched against the repository-relative path and the base name of each
        decrypted file; matching files get O(private_file_mode) after an unlock.
      - Set to V([]) to leave modes alone.
    type: list
    elements: str
    default: ['*kubeconfig*', '*.kubeconfig', '*.key', '*.pem', '*.p12', '*.pfx', '*-sa.json', '*service-account*.json',
              '*service_account*.json', 'id_rsa*', 'id_ecdsa*', 'id_ed25519*']
  private_file_mode:
    description: Mode for the files matched by O(private_file_patterns), as an octal string.
    type: raw
    default: '0600'
notes:
  - Run it where the repository is (normally the controller, O(path) being the checkout). With
    C(ansible_pipelining=true) for the task, the module arguments (including O(key)) go to the module over
    standard input instead of a temporary file; the P(mybinder.deploy.secrets#role) role does that.
  - Without an encrypted file committed for the key yet (a fresh C(git-crypt init)), there is nothing to try the
    key on; the unlock then just installs it.
seealso:
  - module: mybinder.deploy.secrets_check
  - name: git-crypt
    description: Transparent file encryption in git.
    link: https://www.agwa.name/projects/git-crypt/
"""

EXAMPLES = r"""
- name: Unlock the secrets with the key CI stores as base64
  mybinder.deploy.git_crypt:
    path: "{{ playbook_dir }}"
    key: "{{ lookup('ansible.builtin.env', 'GIT_CRYPT_KEY') }}"
  vars:
    ansible_pipelining: true

- name: Unlock with an exported key file
  mybinder.deploy.git_crypt:
    path: /srv/mybinder-deploy
    key_file: /etc/mybinder/git-crypt.key

- name: Unlock a named key (git-crypt init -k ovh)
  mybinder.deploy.git_crypt:
    path: /srv/mybinder-deploy
    key_file: /etc/mybinder/ovh.key
    key_name: ovh

- name: Lock again, discarding uncommitted changes to encrypted files
  mybinder.deploy.git_crypt:
    path: /srv/mybinder-deploy
    state: locked
    force: true
"""

RETURN = r"""
repository:
  description: Top directory of the repository's work tree.
  returned: always
  type: str
  sample: /srv/mybinder-deploy
state:
  description: State of the repository for this key after the run (predicted in check mode).
  returned: always
  type: str
  sample: unlocked
state_before:
  description:
    - State before the run. V(partial) is a half-finished unlock or lock (key installed but files still
      encrypted, or configuration without a key).
  returned: always
  type: str
  sample: locked
key_name:
  description: The git-crypt key name; V(null) for the default key.
  returned: always
  type: str
  sample: null
decrypted:
  description:
    - Files of this key readable in plaintext in the work tree after the run (all files assigned to the key by
      C(.gitattributes)); empty after a lock.
  returned: always
  type: list
  elements: str
  sample: [secret/config/prod.yaml, secret/ovh-kubeconfig.yml]
permissions_fixed:
  description: Decrypted credential files whose mode was set to O(private_file_mode).
  returned: always
  type: list
  elements: str
  sample: [secret/ovh-kubeconfig.yml]
dirty_files:
  description: Modified tracked files that made the module refuse to run.
  returned: failure, when the work tree is not clean
  type: list
  elements: str
  sample: [secret/config/prod.yaml]
command:
  description: The command that failed (never holds key material).
  returned: failure, when git or git-crypt failed
  type: list
  elements: str
  sample: [/usr/bin/git-crypt, unlock, "-"]
rc:
  description: Exit status of the failed command.
  returned: failure, when git or git-crypt failed
  type: int
stderr:
  description: Standard error of the failed command.
  returned: failure, when git or git-crypt failed
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._git_crypt import DEFAULT_PRIVATE_PATTERNS
from ansible_collections.mybinder.deploy.plugins.module_utils._git_crypt_run import run


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["unlocked", "locked"], default="unlocked"),
            key=dict(type="str", no_log=True),
            key_file=dict(type="path"),
            key_name=dict(type="str"),
            force=dict(type="bool", default=False),
            binary_path=dict(type="path"),
            private_file_patterns=dict(type="list", elements="str", default=list(DEFAULT_PRIVATE_PATTERNS)),
            private_file_mode=dict(type="raw", default="0600"),
        ),
        mutually_exclusive=[("key", "key_file")],
        required_if=[("state", "unlocked", ("key", "key_file"), True)],
        supports_check_mode=True,
    )
    conclude(module, lambda: run(module.params, module.check_mode, module._diff, module.get_bin_path))


if __name__ == "__main__":
    main()
