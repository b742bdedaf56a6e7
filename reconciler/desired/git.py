"""A pmaports branch followed from a git remote: the daemon's own checkout of it.

The only module that runs git. Syncing fetches the branch and checks out its
tip (detached, forced, cleaned), on push triggers and every resync; reading
which commit the checkout is at is gitref's job and spawns nothing. After a
sync, the package directories touched between the old and the new commit are
taken from `git diff`, never from a webhook's (truncated) commit list.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from reconciler.desired.gitref import read_head_commit
from reconciler.model.errors import UnavailableError
from reconciler.model.names import is_safe_branch

log = logging.getLogger(__name__)

GIT_TIMEOUT = 600


class GitError(UnavailableError):
    """git failed; the message has the command and what git said."""


def _run_git(argv: list[str]) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=GIT_TIMEOUT, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        raise GitError(f"{' '.join(argv)}: {done.stderr.strip()[-500:]}")
    return done.stdout


def remote_branches(remote: str, prefix: str) -> set[str]:
    """Names of the remote's branches that start with `prefix` (one `git ls-remote`)."""
    listing = _run_git(["git", "ls-remote", "--heads", "--", remote, f"refs/heads/{prefix}*"])
    names = set()
    for line in listing.splitlines():
        _, _, ref = line.partition("\t")
        name = ref.removeprefix("refs/heads/")
        if name.startswith(prefix) and is_safe_branch(name):
            names.add(name)
    return names


class GitCheckout:
    def __init__(self, path: Path, remote: str, branch: str) -> None:
        self.path = path
        self.remote = remote
        self.branch = branch

    def _git(self, *args: str) -> str:
        return _run_git(["git", "-C", str(self.path), *args])

    def sync(self) -> tuple[str, str]:
        """Fetch the branch and check out its tip; (commit before, commit after)."""
        if not (self.path / ".git").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            self._git("init", "--quiet")
        before = read_head_commit(self.path)
        tracking = f"refs/remotes/origin/{self.branch}"
        self._git(
            "fetch",
            "--quiet",
            "--no-tags",
            "--",
            self.remote,
            f"+refs/heads/{self.branch}:{tracking}",
        )
        self._git(
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--force",
            "--detach",
            tracking,
        )
        self._git("clean", "--quiet", "-d", "--force", "-x")
        after = read_head_commit(self.path)
        if before != after:
            log.info("pmaports %s: %s -> %s", self.branch, before[:12] or "(none)", after[:12])
        return before, after

    def changed_packages(self, before: str, after: str) -> set[str]:
        """Package directories (relative, e.g. main/foo) with any file changed."""
        if not before or before == after:
            return set()
        names = self._git("diff", "--name-only", "--no-renames", before, after, "--")
        changed: set[str] = set()
        for name in names.splitlines():
            parts = name.split("/")[:-1]
            while parts:  # the deepest directory holding an APKBUILD (now or before)
                candidate = "/".join(parts)
                if (self.path / candidate / "APKBUILD").is_file() or self._existed(
                    before, candidate
                ):
                    changed.add(candidate)
                    break
                parts.pop()
        return changed

    def _existed(self, commit: str, directory: str) -> bool:
        try:
            self._git("cat-file", "-e", f"{commit}:{directory}/APKBUILD")
        except GitError:
            return False
        return True
