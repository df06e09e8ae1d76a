# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""git-crypt support shared by the git_crypt and secrets_check modules (collection-private).

Standard library only, so that tools/check-plaintext-secrets.py, the tests and the benchmark can
import this file directly.

Why this exists instead of ``shell: git-crypt unlock KEYFILE``:
- git-crypt has no "already unlocked" or "already locked" answer: unlock re-checks out every
  encrypted file, lock on a locked repository is an error. The state is inferred here from the
  installed key (``.git/git-crypt/keys/<name>``), the filter configuration and the work tree.
- A valid key of another repository installs fine and leaves the repository half unlocked. The key
  is tried on one committed encrypted blob first (``git-crypt smudge``), and any unlock failure is
  rolled back to a snapshot of the key directory, the git configuration and the work tree.
- Key material lives in memory and reaches git-crypt on standard input (``unlock -``) or through an
  inherited pipe (``--key-file=/dev/fd/N``): never in argv, the environment, a temporary file, a
  result or a message.

Encrypted blob layout (git-crypt 0.4+): the 10-byte header ``\\0GITCRYPT\\0``, a 12-byte nonce,
then AES-256-CTR data. Exported key layout: ``\\0GITCRYPTKEY``, format version 2 (big-endian
uint32), header fields (id, length, data; 1 = key name; 0 ends), then key entries made of fields
(1 = version, 3 = AES key, 5 = HMAC key; 0 ends each entry). Odd field ids git-crypt does not know
are "critical" and make a key unreadable; even ones may be skipped.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fnmatch
import os
import posixpath
import re
import signal
import stat
import struct
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

try:  # the collection's exception root, when this file is imported as part of the collection
    from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError as _ErrorRoot
except ImportError:  # tools/check-plaintext-secrets.py imports this file on its own (standard library only)
    _ErrorRoot = Exception  # type: ignore[assignment,misc]

HEADER = b"\x00GITCRYPT\x00"
KEY_MAGIC = b"\x00GITCRYPTKEY"
KEY_FORMAT_VERSION = 2
_AES_KEY_LEN = 32
_HMAC_KEY_LEN = 64
_MAX_FIELD_LEN = 1 << 20
_KEY_NAME_MAX_LEN = 128

INSTALL_HINT = (
    "Install git-crypt (Debian/Ubuntu: apt-get install git-crypt; Fedora: dnf install git-crypt; "
    "macOS: brew install git-crypt), or in a mybinder.deploy checkout run tools/install-git-crypt.sh and "
    "put the directory of the path it prints on PATH (`make tools` links it into the project's tool "
    "directory); or give the executable's path in binary_path."
)

# Decrypted files that hold credentials: made private (0600) after an unlock.
DEFAULT_PRIVATE_PATTERNS = (
    "*kubeconfig*",
    "*.kubeconfig",
    "*.key",
    "*.pem",
    "*.p12",
    "*.pfx",
    "*-sa.json",
    "*service-account*.json",
    "*service_account*.json",
    "id_rsa*",
    "id_ecdsa*",
    "id_ed25519*",
)

_CONFIG_RE = r"^(filter|diff)\.git-crypt(-[^.]+)?\."


class GitCryptError(_ErrorRoot):  # type: ignore[valid-type,misc]
    """A failure an operator can act on. Message and details never hold key material or secret values.
    In the collection a ModuleError (_errors.py); outside it, with the same msg, details and result()."""

    def __init__(self, msg: str, **details: object) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def result(self) -> dict[str, object]:
        """The keyword arguments of fail_json (as _errors.ModuleError.result)."""
        return {"msg": self.msg, **self.details}


class GitCryptCommandError(GitCryptError):
    """A git or git-crypt command failed. ``command`` is the exact argv (which never holds a key)."""

    def __init__(self, msg: str, *, command: list[str], rc: int, stdout: str, stderr: str) -> None:
        super().__init__(msg, command=command, rc=rc, stdout=stdout, stderr=stderr)
        self.command = command
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr


class KeyFormatError(GitCryptError):
    """The key given is not a readable git-crypt key."""


class WrongKeyError(GitCryptError):
    """The key is a valid git-crypt key, but not the one this repository's files are encrypted with."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived while the repository was being changed (SIGINT gives KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# ---------------------------------------------------------------------------------------------
# Keys


@dataclass(frozen=True)
class KeyEntry:
    version: int
    aes_key: bytes = field(repr=False)
    hmac_key: bytes = field(repr=False)


@dataclass(frozen=True)
class GitCryptKey:
    """A parsed exported key. ``repr`` never shows key material; equality compares name and material."""

    name: str | None
    entries: tuple[KeyEntry, ...] = field(repr=False)
    raw: bytes = field(repr=False, compare=False)

    @property
    def display_name(self) -> str:
        return self.name or "default"

    @property
    def filter_name(self) -> str:
        return filter_name(self.name)


def filter_name(key_name: str | None) -> str:
    """The .gitattributes filter (and git config section) git-crypt uses for a key."""
    return f"git-crypt-{key_name}" if key_name else "git-crypt"


def validate_key_name(name: str) -> None:
    """git-crypt's rules for key names (``-k NAME``)."""
    if not name:
        raise GitCryptError("key_name is empty: leave it unset for the default key")
    if name == "default":
        raise GitCryptError("key_name 'default' is reserved by git-crypt: leave key_name unset for the default key")
    if len(name) > _KEY_NAME_MAX_LEN:
        raise GitCryptError(f"key_name is longer than {_KEY_NAME_MAX_LEN} characters")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise GitCryptError(
            f"key_name {name!r} is not a valid git-crypt key name: use letters, digits, '-' and '_' only"
        )


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.pos = 0
        self.source = source

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise KeyFormatError(
                f"{self.source} is truncated or corrupted (it ends in the middle of a field); "
                "export the key again with `git-crypt export-key FILE` in an unlocked clone"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def field(self) -> tuple[int, bytes] | None:
        field_id = self.u32()
        if field_id == 0:
            return None
        length = self.u32()
        if length > _MAX_FIELD_LEN:
            raise KeyFormatError(f"{self.source} is corrupted (a field claims {length} bytes)")
        return field_id, self.take(length)


def _looks_like_base64(data: bytes) -> bool:
    text = b"".join(data.split())
    return bool(text) and re.fullmatch(rb"[A-Za-z0-9+/=_-]+", text) is not None


def parse_key(data: bytes, source: str = "the key") -> GitCryptKey:
    """Parse an exported git-crypt key (format version 2). Errors name ``source``, never key bytes."""
    if data.startswith(HEADER):
        raise KeyFormatError(
            f"{source} is a git-crypt encrypted file, not a key: export the key with "
            "`git-crypt export-key FILE` in an unlocked clone"
        )
    if not data.startswith(KEY_MAGIC):
        if data.startswith(b"\x00GITCRYPT"):
            hint = "it is damaged"
        elif len(data) == _AES_KEY_LEN + _HMAC_KEY_LEN:
            hint = "it looks like a legacy (pre-0.4) key: convert it with `git-crypt migrate-key OLD NEW`"
        elif _looks_like_base64(data):
            hint = (
                "it looks like base64 text: give that text in `key` (base64) instead, "
                "or decode it first with `base64 -d`"
            )
        else:
            hint = "it does not start with the git-crypt key signature"
        raise KeyFormatError(
            f"{source} is not a git-crypt key ({hint}); expected a file written by `git-crypt export-key`"
        )
    reader = _Reader(data, source)
    reader.take(len(KEY_MAGIC))
    version = reader.u32()
    if version != KEY_FORMAT_VERSION:
        raise KeyFormatError(
            f"{source} has key format version {version}; this module reads version {KEY_FORMAT_VERSION} "
            "(git-crypt 0.4 and later). Export it again with a current git-crypt."
        )
    name: str | None = None
    while (item := reader.field()) is not None:
        field_id, value = item
        if field_id == 1:
            try:
                name = value.decode("ascii")
                validate_key_name(name)
            except (UnicodeDecodeError, GitCryptError):
                raise KeyFormatError(f"{source} is corrupted (its key name is not valid)") from None
        elif field_id & 1:
            raise KeyFormatError(
                f"{source} uses a header field ({field_id}) this git-crypt key reader does not know: "
                "it was written by a newer git-crypt"
            )
    entries: list[KeyEntry] = []
    while not reader.at_end():
        key_version: int | None = None
        aes: bytes | None = None
        hmac: bytes | None = None
        while (item := reader.field()) is not None:
            field_id, value = item
            if field_id == 1 and len(value) == 4:
                key_version = struct.unpack(">I", value)[0]
            elif field_id == 3 and len(value) == _AES_KEY_LEN:
                aes = value
            elif field_id == 5 and len(value) == _HMAC_KEY_LEN:
                hmac = value
            elif field_id in (1, 3, 5) or field_id & 1:
                raise KeyFormatError(f"{source} is corrupted (key field {field_id} has a wrong length or is unknown)")
        if key_version is None or aes is None or hmac is None:
            raise KeyFormatError(f"{source} is corrupted (a key entry lacks its version, AES or HMAC key)")
        entries.append(KeyEntry(key_version, aes, hmac))
    if not entries:
        raise KeyFormatError(f"{source} holds no key (it ends after its header)")
    return GitCryptKey(name=name, entries=tuple(entries), raw=bytes(data))


def decode_key_text(text: str) -> bytes:
    """Decode the base64 text of an exported key, as CI systems store it (whitespace and line breaks ignored)."""
    compact = "".join(text.split())
    if not compact:
        raise KeyFormatError("`key` is empty: give the base64 text of an exported key (base64 -w0 KEYFILE)")
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(
            "`key` is not base64 text (after removing whitespace and line breaks it still has characters "
            "outside the base64 alphabet, or a bad length). Encode an exported key with `base64 -w0 KEYFILE`, "
            "or give the exported file itself in key_file."
        ) from None


def load_key(*, key_text: str | None = None, key_file: str | None = None) -> GitCryptKey:
    if key_text is not None:
        return parse_key(decode_key_text(key_text), "the key given in `key` (after base64 decoding)")
    if key_file is None:
        raise GitCryptError("state=unlocked needs a key: set key (base64 text) or key_file (exported key file)")
    try:
        with open(key_file, "rb") as fh:
            data = fh.read(_MAX_FIELD_LEN)
    except FileNotFoundError:
        raise GitCryptError(f"key_file {key_file} does not exist") from None
    except IsADirectoryError:
        raise GitCryptError(f"key_file {key_file} is a directory, not an exported key file") from None
    except PermissionError:
        raise GitCryptError(f"key_file {key_file} cannot be read (permission denied)") from None
    return parse_key(data, f"key_file {key_file}")


# ---------------------------------------------------------------------------------------------
# Commands


def find_git_crypt(explicit: str | None, on_path: str | None) -> str:
    """The git-crypt executable: ``explicit`` (binary_path) or what was found on PATH."""
    if explicit:
        if not os.path.isfile(explicit) or not os.access(explicit, os.X_OK):
            raise GitCryptError(f"binary_path {explicit} is not an executable file. {INSTALL_HINT}")
        return explicit
    if not on_path:
        raise GitCryptError(f"git-crypt was not found on PATH. {INSTALL_HINT}")
    return on_path


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class GitCryptCli:
    """Runs git and git-crypt in one repository.

    Every child runs in its own process group, so an interrupted module kills git-crypt *and* the
    ``git checkout`` it started before rolling back. Failures raise GitCryptCommandError carrying
    rc, stdout, stderr and the exact command; key bytes only ever travel on stdin or a pipe.
    """

    def __init__(self, repo: str, git_crypt: str | None = None, git: str = "git") -> None:
        self.repo = repo
        self.git_crypt_bin = git_crypt
        self.git_bin = git
        self.commands: list[list[str]] = []  # what ran, in order (tests assert on it)

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        pass_fds: Sequence[int] = (),
        check: bool = True,
        secret_output: bool = False,
        what: str | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        argv = list(argv)
        self.commands.append(argv)
        env = dict(os.environ, LC_ALL="C", GIT_TERMINAL_PROMPT="0")
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.repo,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                pass_fds=tuple(pass_fds),
                start_new_session=True,
            )
        except FileNotFoundError:
            if argv[0] == self.git_crypt_bin:
                raise GitCryptError(f"git-crypt ({argv[0]}) could not be started. {INSTALL_HINT}") from None
            raise GitCryptError(f"{argv[0]} was not found: install git") from None
        try:
            out, err = proc.communicate(stdin)
        except BaseException:
            _kill_group(proc)
            raise
        res = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        if check and res.returncode != 0:
            stderr = err.decode("utf-8", "replace").strip()
            stdout = "(not shown: may hold secret data)" if secret_output else out.decode("utf-8", "replace")[-2000:]
            label = what or " ".join(argv[:3])
            raise GitCryptCommandError(
                f"{label} failed (rc={res.returncode}): {stderr or stdout or 'no output'}",
                command=argv,
                rc=res.returncode,
                stdout=stdout,
                stderr=stderr,
            )
        return res

    def git(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return self.run([self.git_bin, *args], **kwargs)  # type: ignore[arg-type]

    def git_crypt(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        if not self.git_crypt_bin:
            raise GitCryptError(f"git-crypt was not found on PATH. {INSTALL_HINT}")
        return self.run([self.git_crypt_bin, *args], **kwargs)  # type: ignore[arg-type]

    def unlock(self, key: GitCryptKey) -> None:
        # `unlock -` reads the key from standard input (reliable since git-crypt 0.7.0).
        self.git_crypt("unlock", "-", stdin=key.raw, what="git-crypt unlock")

    def lock(self, key_name: str | None, force: bool) -> None:
        args = ["lock"]
        if key_name:
            args += ["--key-name", key_name]
        if force:
            args.append("--force")
        self.git_crypt(*args, what="git-crypt lock")

    def decrypts(self, key: GitCryptKey, blob: bytes) -> bool:
        """Whether ``key`` decrypts ``blob`` (git-crypt checks the HMAC-derived nonce: 'tampered' otherwise).

        The key goes through a pipe the child inherits as /dev/fd/N; nothing touches the disk and the
        decrypted output is dropped.
        """
        rfd, wfd = os.pipe()
        writer = threading.Thread(target=_write_and_close, args=(wfd, key.raw), daemon=True)
        writer.start()
        try:
            res = self.git_crypt(
                "smudge", f"--key-file=/dev/fd/{rfd}", stdin=blob, pass_fds=(rfd,), check=False, secret_output=True
            )
        finally:
            os.close(rfd)
            writer.join()
        ok = res.returncode == 0
        del res
        return ok


def _write_and_close(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError:
        pass  # the reader went away (git-crypt failed early); its exit status tells the rest
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# Repository state


def _split_z(data: bytes) -> list[str]:
    return [p.decode("utf-8", "surrogateescape") for p in data.split(b"\x00") if p]


@dataclass
class TrackedFile:
    path: str
    mode: str
    sha: str
    filter: str | None = None


class Repo:
    """A git work tree seen through git and git-crypt's on-disk state."""

    def __init__(self, cli: GitCryptCli) -> None:
        self.cli = cli
        if not os.path.isdir(cli.repo):
            raise GitCryptError(f"path {cli.repo} is not a directory: give the repository's work tree")
        res = cli.git("rev-parse", "--show-toplevel", "--git-dir", check=False)
        if res.returncode != 0:
            raise GitCryptError(
                f"{cli.repo} is not inside a git work tree "
                f"({res.stderr.decode('utf-8', 'replace').strip() or 'git rev-parse failed'}): check path"
            )
        top, git_dir = res.stdout.decode("utf-8", "surrogateescape").splitlines()[:2]
        self.toplevel = Path(top)
        self.git_dir = (Path(cli.repo) / git_dir).resolve() if not os.path.isabs(git_dir) else Path(git_dir)
        cli.repo = top
        self._tracked: list[TrackedFile] | None = None

    # -- index and attributes -------------------------------------------------------------------
    def tracked(self) -> list[TrackedFile]:
        if self._tracked is None:
            out = self.cli.git("ls-files", "--stage", "-z").stdout
            files = []
            for rec in _split_z(out):
                meta, path = rec.split("\t", 1)
                mode, sha, stage = meta.split(" ")
                if stage not in ("0", "2") or mode in ("160000", "120000"):
                    continue  # submodules and symlinks are never encrypted; skip conflict stages 1/3
                files.append(TrackedFile(path=path, mode=mode, sha=sha))
            if files:
                stdin = b"\x00".join(f.path.encode("utf-8", "surrogateescape") for f in files) + b"\x00"
                attrs = _split_z(self.cli.git("check-attr", "-z", "--stdin", "filter", stdin=stdin).stdout)
                values = {attrs[i]: attrs[i + 2] for i in range(0, len(attrs) - 2, 3)}
                for f in files:
                    value = values.get(f.path)
                    if value == "git-crypt" or (value or "").startswith("git-crypt-"):
                        f.filter = value
            self._tracked = files
        return self._tracked

    def key_files(self, key_name: str | None) -> list[TrackedFile]:
        wanted = filter_name(key_name)
        return [f for f in self.tracked() if f.filter == wanted]

    def git_crypt_files(self) -> list[TrackedFile]:
        return [f for f in self.tracked() if f.filter]

    def attributes_mention(self, key_name: str | None) -> bool:
        """Whether any .gitattributes (tracked, or .git/info/attributes) assigns files to this key."""
        pattern = re.compile(rb"filter=" + re.escape(filter_name(key_name).encode()) + rb"(\s|$)", re.M)
        candidates = [self.toplevel / f.path for f in self.tracked() if posixpath.basename(f.path) == ".gitattributes"]
        candidates.append(self.git_dir / "info" / "attributes")
        for path in candidates:
            with contextlib.suppress(OSError):
                if pattern.search(path.read_bytes()):
                    return True
        return False

    # -- git-crypt's own state ------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.git_dir / "git-crypt"

    def key_path(self, key_name: str | None) -> Path:
        return self.state_dir / "keys" / (key_name or "default")

    def installed_key(self, key_name: str | None) -> GitCryptKey | None:
        path = self.key_path(key_name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return parse_key(data, f"the installed key {path}")
        except KeyFormatError as exc:
            raise GitCryptError(
                f"{exc.msg}. Remove it with `git-crypt lock --force"
                + (f" --key-name {key_name}" if key_name else "")
                + "` (or state=locked, force=true) and unlock again"
            ) from None

    def config(self) -> list[tuple[str, str]]:
        res = self.cli.git("config", "--local", "-z", "--get-regexp", _CONFIG_RE, check=False)
        if res.returncode not in (0, 1):
            raise GitCryptCommandError(
                "git config failed",
                command=list(res.args),
                rc=res.returncode,
                stdout="",
                stderr=res.stderr.decode("utf-8", "replace"),
            )
        out = []
        for rec in _split_z(res.stdout):
            name, _sep, value = rec.partition("\n")
            out.append((name, value))
        return out

    def configured(self, key_name: str | None) -> bool:
        section = f"filter.{filter_name(key_name)}."
        return any(name.startswith(section) for name, _value in self.config())

    # -- work tree ------------------------------------------------------------------------------
    def worktree_encrypted(self, files: Iterable[TrackedFile]) -> tuple[list[str], list[str]]:
        """(files whose work-tree copy starts with the git-crypt header, files missing from the work tree)."""
        encrypted, missing = [], []
        for f in files:
            try:
                with open(self.toplevel / f.path, "rb") as fh:
                    if fh.read(len(HEADER)) == HEADER:
                        encrypted.append(f.path)
            except FileNotFoundError:
                missing.append(f.path)
        return encrypted, missing

    def dirty(self) -> list[str]:
        """Modified tracked files, as git-crypt sees them (`git status -uno --porcelain`)."""
        # --no-optional-locks: do not refresh the index as a side effect (check mode changes nothing).
        out = self.cli.git("--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=no").stdout
        paths: list[str] = []
        recs = out.split(b"\x00")
        i = 0
        while i < len(recs):
            rec = recs[i]
            i += 1
            if len(rec) < 4:
                continue
            paths.append(rec[3:].decode("utf-8", "surrogateescape"))
            if rec[:1] in (b"R", b"C"):
                i += 1  # the rename source follows
        return paths

    def pristine(self, files: Sequence[TrackedFile]) -> set[str]:
        """Files whose work-tree bytes are exactly their index blob (unfiltered): safe to check out again."""
        present = [f for f in files if (self.toplevel / f.path).is_file() and "\n" not in f.path]
        if not present:
            return set()
        stdin = "".join(f.path + "\n" for f in present).encode("utf-8", "surrogateescape")
        out = self.cli.git("hash-object", "--no-filters", "--stdin-paths", stdin=stdin).stdout.decode().split()
        return {f.path for f, sha in zip(present, out, strict=False) if sha == f.sha}

    def blobs(self, shas: Sequence[str]) -> dict[str, bytes]:
        """Raw (still encrypted) blob contents by sha, through one `git cat-file --batch`."""
        unique = list(dict.fromkeys(shas))
        if not unique:
            return {}
        out = self.cli.git("cat-file", "--batch", stdin="".join(s + "\n" for s in unique).encode(), secret_output=True)
        data = out.stdout
        result: dict[str, bytes] = {}
        pos = 0
        while pos < len(data):
            nl = data.index(b"\n", pos)
            head = data[pos:nl].decode().split()
            pos = nl + 1
            if len(head) < 3 or head[1] == "missing":
                continue
            size = int(head[2])
            result[head[0]] = data[pos : pos + size]
            pos += size + 1
        return result

    def head_files(self) -> dict[str, str]:
        """path -> blob sha of the committed tree (empty before the first commit)."""
        res = self.cli.git("ls-tree", "-r", "-z", "--full-tree", "HEAD", check=False)
        if res.returncode != 0:
            return {}
        out = {}
        for rec in _split_z(res.stdout):
            meta, path = rec.split("\t", 1)
            mode, kind, sha = meta.split(" ")
            if kind == "blob" and mode != "120000":
                out[path] = sha
        return out

    def checkout(self, paths: Sequence[str]) -> None:
        """Write ``paths`` from the index again (deleting them first so git cannot skip "unchanged" ones)."""
        for p in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.toplevel / p)
        for chunk in _chunks(list(paths), 500):
            self.cli.git("--literal-pathspecs", "checkout", "--quiet", "--", *chunk, what="git checkout")


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def classify(installed: bool, configured: bool, unreadable: bool) -> str:
    if installed and configured and not unreadable:
        return "unlocked"
    if not installed and not configured:
        return "locked"
    return "partial"


# ---------------------------------------------------------------------------------------------
# Snapshot and rollback


@dataclass
class Snapshot:
    """What an unlock may change: git-crypt's key directory, the git-crypt config sections, the index lock."""

    config: list[tuple[str, str]]
    state_files: dict[str, bytes] = field(repr=False)
    state_dirs: set[str]
    started: float

    @classmethod
    def take(cls, repo: Repo) -> Snapshot:
        files: dict[str, bytes] = {}
        dirs: set[str] = set()
        if repo.state_dir.is_dir():
            dirs.add(".")
            for root, dnames, fnames in os.walk(repo.state_dir):
                rel = os.path.relpath(root, repo.state_dir)
                dirs.update(os.path.normpath(os.path.join(rel, d)) for d in dnames)
                for name in fnames:
                    files[os.path.normpath(os.path.join(rel, name))] = Path(root, name).read_bytes()
        return cls(config=repo.config(), state_files=files, state_dirs=dirs, started=time.time())

    def restore(self, repo: Repo, files: Sequence[TrackedFile]) -> None:
        # A killed `git checkout` or `git config` (git-crypt runs both) leaves its lock behind, and
        # the config lock makes every `git config` below fail; only remove locks younger than this run.
        for lock in (repo.git_dir / "index.lock", repo.git_dir / "config.lock"):
            with contextlib.suppress(FileNotFoundError):
                if lock.stat().st_mtime >= self.started - 1:
                    lock.unlink()
        # git configuration: drop every git-crypt section now present, put back what was there.
        for section in dict.fromkeys(name.rsplit(".", 1)[0] for name, _value in repo.config()):
            repo.cli.git("config", "--local", "--remove-section", section, check=False)
        for name, value in self.config:
            repo.cli.git("config", "--local", "--add", name, value)
        # git-crypt's key directory.
        state = repo.state_dir
        if state.is_dir():
            for root, dnames, fnames in os.walk(state, topdown=False):
                rel_root = os.path.relpath(root, state)
                for name in fnames:
                    rel = os.path.normpath(os.path.join(rel_root, name))
                    if rel not in self.state_files:
                        os.unlink(os.path.join(root, name))
                for name in dnames:
                    rel = os.path.normpath(os.path.join(rel_root, name))
                    if rel not in self.state_dirs:
                        with contextlib.suppress(OSError):
                            os.rmdir(os.path.join(root, name))
            if "." not in self.state_dirs:
                with contextlib.suppress(OSError):
                    os.rmdir(state)
        for rel, data in self.state_files.items():
            path = state / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        # Work tree: the encrypted files as the restored configuration renders them.
        repo.checkout([f.path for f in files])


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """SIGTERM/SIGHUP raise Interrupted (SIGINT already raises KeyboardInterrupt) so rollback runs."""

    def handler(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    with _signal_handlers((signal.SIGTERM, signal.SIGHUP), handler):
        yield


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """Let a rollback finish even if the operator presses Ctrl-C again."""
    with _signal_handlers((signal.SIGINT, signal.SIGTERM, signal.SIGHUP), signal.SIG_IGN):
        yield


@contextlib.contextmanager
def _signal_handlers(signals: tuple[signal.Signals, ...], handler: object) -> Iterator[None]:
    """``handler`` for ``signals`` while the block runs, the previous handlers again after it."""
    previous = {}
    try:
        for sig in signals:
            previous[sig] = signal.signal(sig, handler)  # type: ignore[arg-type]
    except ValueError:  # not the main thread: nothing to install
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ---------------------------------------------------------------------------------------------
# Private file modes


def parse_mode(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{3,4}", value.strip()):
        mode = int(value.strip().replace("o", ""), 8)
    else:
        raise GitCryptError(f"private_file_mode {value!r} is not an octal mode such as '0600'")
    if not 0 <= mode <= 0o7777:
        raise GitCryptError(f"private_file_mode {value!r} is out of range")
    return mode


def private_files(paths: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """Paths matching any pattern (fnmatch, on the repository-relative path or the base name)."""
    out = []
    for p in paths:
        base = posixpath.basename(p)
        if any(fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(base, pat) for pat in patterns):
            out.append(p)
    return sorted(out)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fix_modes(toplevel: Path, paths: Sequence[str], mode: int, check_mode: bool) -> list[str]:
    fixed = []
    for p in paths:
        try:
            st = os.lstat(toplevel / p)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
            if not check_mode:
                try:
                    os.chmod(toplevel / p, mode)
                except OSError as exc:
                    raise GitCryptError(f"cannot set mode {mode:04o} on {p}: {exc.strerror}") from None
            fixed.append(p)
    return fixed


def modes_after_checkout(files: Sequence[TrackedFile], paths: Sequence[str], mode: int) -> list[str]:
    """Which of ``paths`` a fresh checkout (what git-crypt unlock does) would leave with another mode."""
    umask = _current_umask()
    by_path = {f.path: f for f in files}
    out = []
    for p in paths:
        base = 0o777 if by_path[p].mode == "100755" else 0o666
        if base & ~umask != mode:
            out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# The git_crypt module's work


@dataclass
class Request:
    path: str
    state: str = "unlocked"
    key: GitCryptKey | None = field(default=None, repr=False)
    key_name: str | None = None
    force: bool = False
    private_file_patterns: Sequence[str] = DEFAULT_PRIVATE_PATTERNS
    private_file_mode: int = 0o600
    check_mode: bool = False
    key_file: str | None = None  # only to warn when it sits unprotected inside the work tree


def _not_git_crypt(repo: Repo, key_name: str | None) -> GitCryptError:
    if key_name and repo.git_crypt_files():
        names = sorted({f.filter or "" for f in repo.git_crypt_files()})
        return GitCryptError(
            f"no file in {repo.toplevel} is encrypted with the git-crypt key {key_name!r} "
            f"(no tracked file has filter={filter_name(key_name)}; filters in use: {', '.join(names)}): "
            "check key_name, or the key file's embedded name"
        )
    return GitCryptError(
        f"{repo.toplevel} is not a git-crypt repository: no tracked file has the attribute "
        f"filter={filter_name(key_name)} and no .gitattributes mentions it. Mark the secret files in "
        "`.gitattributes` (for example `secret/** filter=git-crypt diff=git-crypt`) and run `git-crypt init`, "
        "or check path."
    )


def _format_list(paths: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" (and {len(paths) - limit} more)" if len(paths) > limit else "")


def _dirty_error(dirty: Sequence[str], action: str) -> GitCryptError:
    return GitCryptError(
        f"cannot {action}: the work tree has modified tracked files: {_format_list(list(dirty))}. "
        "Commit them or `git stash` them, then run again"
        + (" (or set force=true to lock anyway and lose those changes)" if action == "lock" else "")
        + ". Nothing was changed.",
        dirty_files=list(dirty),
    )


def _repairable(repo: Repo, files: Sequence[TrackedFile], unreadable: Sequence[str]) -> set[str]:
    """Files a half-finished unlock left behind (missing, or still the committed encrypted bytes)."""
    wanted = set(unreadable)
    candidates = [f for f in files if f.path in wanted]
    missing = {f.path for f in candidates if not (repo.toplevel / f.path).exists()}
    return missing | repo.pristine(candidates)


def _sample_blob(repo: Repo, files: Sequence[TrackedFile]) -> tuple[str, bytes] | None:
    """The first committed encrypted blob of this key (to try the key on)."""
    for f in sorted(files, key=lambda x: x.path):
        blob = repo.blobs([f.sha]).get(f.sha, b"")
        if blob.startswith(HEADER):
            return f.path, blob
    return None


def ensure(cli: GitCryptCli, req: Request) -> dict[str, object]:
    """Bring the repository to ``req.state``. Returns the module result (without ``diff``)."""
    repo = Repo(cli)
    if req.state == "unlocked":
        return _ensure_unlocked(repo, req)
    return _ensure_locked(repo, req)


def _base_result(repo: Repo, key_name: str | None, state_before: str) -> dict[str, object]:
    return {
        "changed": False,
        "repository": str(repo.toplevel),
        "key_name": key_name,
        "state_before": state_before,
        "state": state_before,
        "decrypted": [],
        "permissions_fixed": [],
    }


def _key_file_warnings(repo: Repo, key_file: str | None) -> list[str]:
    """A key file inside the work tree that git neither tracks nor ignores is one `git add -A` from a leak."""
    if not key_file:
        return []
    path = Path(os.path.abspath(key_file))
    try:
        rel = path.resolve().relative_to(repo.toplevel.resolve()).as_posix()
    except ValueError:
        return []
    tracked = repo.cli.git("ls-files", "--error-unmatch", "--", rel, check=False).returncode == 0
    ignored = repo.cli.git("check-ignore", "-q", "--", rel, check=False).returncode == 0
    if tracked or ignored:
        return []
    return [
        f"key_file {rel} is inside the repository's work tree and not ignored by git: one `git add -A` would "
        "commit the key. Keep it outside the repository (or list it in .gitignore)."
    ]


def _ensure_unlocked(repo: Repo, req: Request) -> dict[str, object]:
    key = req.key
    if key is None:
        raise GitCryptError("state=unlocked needs a key: set key (base64 text) or key_file (exported key file)")
    if req.key_name is not None and req.key_name != key.name:
        raise GitCryptError(
            f"the key given is git-crypt key {key.display_name!r}, but key_name is {req.key_name!r}: "
            "git-crypt takes the key name from the key file itself; export the right key with "
            f"`git-crypt export-key --key-name {req.key_name} FILE`, or drop key_name"
        )
    key_name = key.name
    files = repo.key_files(key_name)
    installed = repo.installed_key(key_name)
    configured = repo.configured(key_name)
    if not files and installed is None and not configured and not repo.attributes_mention(key_name):
        raise _not_git_crypt(repo, key_name)
    if configured and installed is None:
        raise GitCryptError(
            f"git-crypt is configured in {repo.toplevel} for key {key.display_name!r} but no key is installed "
            "(an interrupted lock or a hand-removed key): every git command touching the encrypted files fails. "
            "Run this module with state=locked and force=true first, then unlock. Nothing was changed.",
            state_before="partial",
            key_name=key_name,
        )
    encrypted, missing = repo.worktree_encrypted(files)
    state_before = classify(installed is not None, configured, bool(encrypted or missing))
    result = _base_result(repo, key_name, state_before)
    paths = sorted(f.path for f in files)
    private = private_files(paths, req.private_file_patterns)

    warnings = _key_file_warnings(repo, req.key_file)
    if warnings:
        result["warnings"] = warnings

    if installed is not None and installed != key:
        raise GitCryptError(
            f"{repo.toplevel} is {'already unlocked' if state_before == 'unlocked' else 'half unlocked'} with a "
            f"different git-crypt key {key.display_name!r} than the one given. Nothing was changed. To switch keys, "
            "lock first (state=locked; force=true if the work tree is modified), then unlock with the new key.",
            state_before=state_before,
            key_name=key_name,
        )

    if state_before == "unlocked":
        fixed = fix_modes(repo.toplevel, private, req.private_file_mode, req.check_mode)
        result.update(changed=bool(fixed), decrypted=paths, permissions_fixed=fixed, state="unlocked")
        return result

    repairable = _repairable(repo, files, encrypted + missing) if state_before == "partial" else set()
    blocking = [p for p in repo.dirty() if p not in repairable]
    if blocking:
        raise _dirty_error(blocking, "unlock")

    sample = _sample_blob(repo, files)
    if sample is not None and not repo.cli.decrypts(key, sample[1]):
        raise WrongKeyError(
            f"this key does not belong to this repository: git-crypt key {key.display_name!r} cannot decrypt "
            f"{sample[0]} (git-crypt: 'encrypted file has been tampered with'). It is a valid git-crypt key, "
            "probably of another repository or an old key. Nothing was changed: the repository is still "
            f"{state_before}, no key was installed.",
            state_before=state_before,
            key_name=key_name,
        )

    if req.check_mode:
        result.update(
            changed=True,
            state="unlocked",
            decrypted=paths,
            permissions_fixed=modes_after_checkout(files, private, req.private_file_mode),
        )
        return result

    snapshot = Snapshot.take(repo)
    try:
        with signals_as_exceptions():
            if state_before == "partial" and installed is not None:
                # A half-finished unlock with this same key: start over from locked.
                repo.cli.lock(key_name, force=True)
            repo.cli.unlock(key)
            encrypted, missing = repo.worktree_encrypted(files)
            if encrypted or missing:
                raise GitCryptError(
                    f"git-crypt unlock finished, but these files are still not readable: "
                    f"{_format_list(encrypted + missing)}"
                )
    except BaseException as exc:
        _rollback(repo, snapshot, files, exc, key)
        raise  # _rollback raises; this is never reached
    fixed = fix_modes(repo.toplevel, private, req.private_file_mode, False)
    result.update(changed=True, state="unlocked", decrypted=paths, permissions_fixed=fixed)
    return result


def _rollback(
    repo: Repo, snapshot: Snapshot, files: Sequence[TrackedFile], exc: BaseException, key: GitCryptKey
) -> None:
    with signals_ignored():
        try:
            snapshot.restore(repo, files)
            restored_ok = not repo.dirty() and repo.config() == snapshot.config
        except GitCryptError as restore_exc:
            restored_ok = False
            restore_msg = restore_exc.msg
        except Exception as restore_exc:  # an OSError must not hide the original failure
            restored_ok = False
            restore_msg = f"{type(restore_exc).__name__}: {restore_exc}"
        else:
            restore_msg = ""
    if restored_ok:
        tail = "The repository was restored exactly as it was (same git-crypt keys and configuration, clean work tree)."
    else:
        tail = (
            "Restoring the previous state did not fully succeed"
            + (f" ({restore_msg})" if restore_msg else "")
            + ": run `git-crypt lock --force` and check `git status`."
        )
    if isinstance(exc, GitCryptCommandError) and "tampered" in exc.stderr:
        failed = re.findall(r"fatal: (.+): smudge filter", exc.stderr)
        which = f" {_format_list(failed)}" if failed else " every file"
        raise WrongKeyError(
            f"this key does not belong to this repository: git-crypt key {key.display_name!r} could not "
            f"decrypt{which} ('encrypted file has been tampered with'). {tail}",
            rc=exc.rc,
            command=exc.command,
        ) from None
    if isinstance(exc, GitCryptCommandError):
        raise GitCryptError(f"{exc.msg}. {tail}", **exc.details) from None
    if isinstance(exc, GitCryptError):
        raise GitCryptError(f"{exc.msg}. {tail}", **exc.details) from None
    if isinstance(exc, (Interrupted, KeyboardInterrupt)):
        raise GitCryptError(f"interrupted while unlocking. {tail}") from None
    raise GitCryptError(f"unexpected {type(exc).__name__} while unlocking: {exc}. {tail}") from None


def _ensure_locked(repo: Repo, req: Request) -> dict[str, object]:
    key_name = req.key_name
    files = repo.key_files(key_name)
    installed = repo.key_path(key_name).exists()
    configured = repo.configured(key_name)
    if not files and not installed and not configured and not repo.attributes_mention(key_name):
        raise _not_git_crypt(repo, key_name)
    encrypted, missing = repo.worktree_encrypted(files)
    state_before = classify(installed, configured, bool(encrypted or missing))
    result = _base_result(repo, key_name, state_before)
    if state_before == "locked":
        return result

    if configured and not installed:
        # Every `git status` fails here (the clean filter has no key), so changes cannot be told apart.
        if not req.force:
            raise GitCryptError(
                f"git-crypt is configured in {repo.toplevel} for key {key_name or 'default'!r} but its key is "
                "missing, so modified files cannot be told apart from decrypted ones. Set force=true to drop "
                "the configuration and check the encrypted files out again (uncommitted changes to them are lost)."
            )
        dirty = [f.path for f in files]
        repairable = set(dirty)
    else:
        repairable = _repairable(repo, files, encrypted + missing)
        dirty = repo.dirty()
    blocking = [p for p in dirty if p not in repairable]
    if blocking and not req.force:
        raise _dirty_error(blocking, "lock")
    result.update(changed=True, state="locked")
    if req.check_mode:
        return result
    if installed:
        repo.cli.lock(key_name, force=bool(dirty))
    if repo.configured(key_name) or repo.key_path(key_name).exists():
        # git-crypt refuses to lock when the configuration is there but the key is gone ("Unable to open
        # key file"); finish its job: drop the filter and diff sections and the key, check the files out again.
        with contextlib.suppress(FileNotFoundError):
            repo.key_path(key_name).unlink()
        for section in (f"filter.{filter_name(key_name)}", f"diff.{filter_name(key_name)}"):
            repo.cli.git("config", "--local", "--remove-section", section, check=False)
        repo.checkout([f.path for f in files])
    committed = repo.blobs([f.sha for f in files])
    encrypted_now = set(repo.worktree_encrypted(files)[0])
    still_plain = [
        f.path for f in files if committed.get(f.sha, b"").startswith(HEADER) and f.path not in encrypted_now
    ]
    if still_plain:
        raise GitCryptError(
            f"git-crypt lock finished, but these files are still decrypted: {_format_list(still_plain)}"
        )
    return result


# ---------------------------------------------------------------------------------------------
# Repository hygiene: files marked for git-crypt but committed in plaintext


@dataclass(frozen=True)
class PlaintextFinding:
    path: str
    where: str  # "HEAD" (committed) or "index" (staged)


def plaintext_committed(repo: Repo) -> list[PlaintextFinding]:
    """Files .gitattributes assigns to git-crypt whose committed or staged blob is not encrypted."""
    marked = repo.git_crypt_files()
    if not marked:
        return []
    head = repo.head_files()
    shas = [f.sha for f in marked] + [head[f.path] for f in marked if f.path in head]
    blobs = repo.blobs(shas)
    findings = []
    for f in sorted(marked, key=lambda x: x.path):
        head_sha = head.get(f.path)
        if head_sha is not None and not blobs.get(head_sha, b"").startswith(HEADER):
            findings.append(PlaintextFinding(f.path, "HEAD"))
        if f.sha != head_sha and not blobs.get(f.sha, b"").startswith(HEADER):
            findings.append(PlaintextFinding(f.path, "index"))
    return findings
