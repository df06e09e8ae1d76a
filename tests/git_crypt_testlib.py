"""Real git-crypt repositories in temporary directories, and ways to run the git_crypt module on them.

Used by tests/unit/test_git_crypt*.py, tests/integration/test_git_crypt*.py, test_secrets*.py and
tests/bench/bench_git_crypt.py. Everything here drives the real git and git-crypt binaries.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / ".collections"
MODULE = ROOT / "plugins" / "modules" / "git_crypt.py"
HEADER = b"\x00GITCRYPT\x00"

# Make `ansible_collections.mybinder.deploy` importable from this checkout (as ansible.cfg does).
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.mybinder.deploy.plugins.module_utils import _git_crypt as gc_utils  # noqa: E402, F401  # pylint: disable=unused-import  (re-exported to the tests)
from ansible_collections.mybinder.deploy.plugins.module_utils import _secrets as secrets_utils  # noqa: E402, F401  # pylint: disable=unused-import

GIT_ENV = {
    "GIT_AUTHOR_NAME": "mybinder tests",
    "GIT_AUTHOR_EMAIL": "tests@mybinder.invalid",
    "GIT_COMMITTER_NAME": "mybinder tests",
    "GIT_COMMITTER_EMAIL": "tests@mybinder.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git_crypt_path() -> str:
    """The git-crypt binary: on PATH (make tools links it), else the project's installer's copy."""
    found = shutil.which("git-crypt")
    if found:
        return found
    out = subprocess.run([str(ROOT / "tools" / "install-git-crypt.sh")], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def ensure_git_crypt_on_path() -> str:
    path = git_crypt_path()
    bindir = str(Path(path).parent)
    if shutil.which("git-crypt") is None:
        os.environ["PATH"] = bindir + os.pathsep + os.environ["PATH"]
    return path


def env_without_git_crypt() -> dict[str, str]:
    """The environment with every PATH entry that holds a git-crypt removed."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(
        d for d in env["PATH"].split(os.pathsep) if d and not (Path(d) / "git-crypt").exists()
    )
    return env


def sh(*args: str | Path, cwd: Path | None = None, input: bytes | None = None, check: bool = True, env=None):
    res = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        input=input,
        capture_output=True,
        env={**(env or os.environ), **GIT_ENV},
        check=False,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"{args} failed ({res.returncode}): {res.stderr.decode(errors='replace')}")
    return res


@dataclass
class CryptRepo:
    """An origin repository (unlocked, where keys were made) and its exported keys."""

    origin: Path
    keys: dict[str | None, bytes] = field(repr=False)

    def key(self, name: str | None = None) -> bytes:
        return self.keys[name]

    def key_b64(self, name: str | None = None) -> str:
        return base64.b64encode(self.keys[name]).decode()

    def clone(self, dest: Path) -> Path:
        """A fresh, locked clone, as CI checks it out."""
        sh("git", "clone", "-q", "--no-hardlinks", self.origin, dest)
        return dest


def make_repo(
    path: Path,
    files: dict[str, bytes | str],
    *,
    attributes: str = "secret/** filter=git-crypt diff=git-crypt\n",
    key_names: tuple[str | None, ...] = (None,),
) -> CryptRepo:
    """git init + git-crypt init (one key per name) + .gitattributes + files, committed; keys exported."""
    gc = git_crypt_path()
    path.mkdir(parents=True)
    sh("git", "init", "-q", "-b", "main", cwd=path)
    keys: dict[str | None, bytes] = {}
    for name in key_names:
        sh(gc, "init", *(["-k", name] if name else []), cwd=path)
        exported = sh(gc, "export-key", *(["-k", name] if name else []), "-", cwd=path).stdout
        keys[name] = exported
    (path / ".gitattributes").write_text(attributes)
    for rel, content in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    sh("git", "add", "-A", cwd=path)
    sh("git", "commit", "-q", "-m", "initial", cwd=path)
    return CryptRepo(origin=path, keys=keys)


def export_foreign_key(path: Path) -> bytes:
    """A valid git-crypt key of another repository."""
    gc = git_crypt_path()
    path.mkdir(parents=True)
    sh("git", "init", "-q", cwd=path)
    sh(gc, "init", cwd=path)
    return sh(gc, "export-key", "-", cwd=path).stdout


# -- state of a work tree, to prove "nothing changed" / "restored exactly" ----------------------------


def tree_state(repo: Path, *, with_times: bool = True) -> dict[str, object]:
    """Work-tree files (content digest, mode, and optionally mtime/inode), git-crypt config, keys directory."""
    files = {}
    for p in sorted(repo.rglob("*")):
        rel = p.relative_to(repo).as_posix()
        if rel == ".git" or rel.startswith(".git/") or not p.is_file():
            continue
        st = p.lstat()
        entry: tuple = (hashlib.sha256(p.read_bytes()).hexdigest(), stat.S_IMODE(st.st_mode))
        if with_times:
            entry += (st.st_mtime_ns, st.st_ino)
        files[rel] = entry
    gcdir = repo / ".git" / "git-crypt"
    keys = (
        {
            p.relative_to(gcdir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in gcdir.rglob("*")
        }
        if gcdir.exists()
        else None
    )
    config = sh("git", "config", "--local", "--get-regexp", r"^(filter|diff)\.git-crypt", cwd=repo, check=False)
    status = sh("git", "status", "--porcelain", "--untracked-files=no", cwd=repo, check=False)
    return {
        "files": files,
        "git_crypt_dir": keys,
        "config": config.stdout.decode(),
        "status": status.stdout.decode(),
    }


def worktree_encrypted(repo: Path, rel: str) -> bool:
    return (repo / rel).read_bytes()[: len(HEADER)] == HEADER


# -- running the module ----------------------------------------------------------------------------


def module_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(COLLECTIONS) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def module_command(args: dict, *, check: bool = False, diff: bool = False) -> tuple[list[str], bytes]:
    """How Ansible runs a module when pipelining: the interpreter, arguments as JSON on standard input."""
    payload = dict(args)
    payload["_ansible_check_mode"] = check
    payload["_ansible_diff"] = diff
    return [sys.executable, str(MODULE)], json.dumps({"ANSIBLE_MODULE_ARGS": payload}).encode()


def run_module(args: dict, *, check: bool = False, diff: bool = False, env: dict[str, str] | None = None) -> dict:
    argv, stdin = module_command(args, check=check, diff=diff)
    res = subprocess.run(argv, input=stdin, capture_output=True, env=env or module_env(), check=False)
    try:
        out = json.loads(res.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"module printed no JSON (rc={res.returncode}): {res.stdout!r} {res.stderr!r}") from exc
    out["_rc"] = res.returncode
    out["_stderr"] = res.stderr.decode(errors="replace")
    return out


def comparable(result: dict) -> dict:
    """A module result without the parts that legitimately differ between check mode and a real run."""
    return {k: v for k, v in result.items() if k not in ("invocation", "_rc", "_stderr", "diff")}


# -- running playbooks -----------------------------------------------------------------------------


def write_play(path: Path, tasks_or_roles: str, *, hosts: str = "localhost") -> Path:
    """A one-play playbook on the controller, modules run by the Python that runs Ansible."""
    path.write_text(
        f"""---
- name: Test play
  hosts: {hosts}
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
{tasks_or_roles}"""
    )
    return path


def run_playbook(
    playbook: Path, *args: str, tmp: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook from the project venv with the project's ansible.cfg; Ansible's temporary
    directories are put under ``tmp`` so tests can inspect what was left there."""
    exe = shutil.which("ansible-playbook") or str(ROOT / ".venv" / "bin" / "ansible-playbook")
    (tmp / "ansible-local").mkdir(parents=True, exist_ok=True)
    (tmp / "ansible-remote").mkdir(parents=True, exist_ok=True)
    full_env = {
        **os.environ,
        **GIT_ENV,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_REMOTE_TMP": str(tmp / "ansible-remote"),
        "ANSIBLE_NOCOLOR": "1",
        **(env or {}),
    }
    return subprocess.run(
        [exe, "-i", "localhost,", str(playbook), *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=tmp,
        check=False,
    )


def recap_changed(output: str) -> int:
    m = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", output)
    assert m, output[-3000:]
    return int(m.group(1))
