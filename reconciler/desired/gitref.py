"""Which commit a git checkout is at, read from .git without running git.

Reading a ref is a couple of small file reads, cheap enough for every pass; the
daemon never spawns git just to learn where a branch stands.
"""

from __future__ import annotations

import re
from pathlib import Path

_SHA_RE = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def git_dir(worktree: Path) -> Path | None:
    """The git directory of a checkout (following a `.git` file), or None."""
    dot_git = worktree / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            target = Path(text.removeprefix("gitdir:").strip())
            return target if target.is_absolute() else (worktree / target).resolve()
    return None


def read_ref(gitdir: Path, ref: str) -> str:
    """Resolve a ref name (e.g. refs/heads/main) to a commit, or "" if unknown."""
    for _ in range(10):  # symbolic refs may chain; stop on loops
        loose = [d / ref for d in (gitdir, _common_dir(gitdir)) if (d / ref).is_file()]
        if loose:
            value = loose[0].read_text(encoding="ascii", errors="replace").strip()
        else:
            value = _packed_ref(gitdir, ref) or _packed_ref(_common_dir(gitdir), ref)
        if value.startswith("ref:"):
            ref = value.removeprefix("ref:").strip()
            continue
        return value if _SHA_RE.fullmatch(value) else ""
    return ""


def read_head_commit(worktree: Path) -> str:
    """The commit HEAD points at, or "" for a plain directory."""
    gitdir = git_dir(worktree)
    if gitdir is None:
        return ""
    try:
        return read_ref(gitdir, "HEAD")
    except OSError:
        return ""


def _common_dir(gitdir: Path) -> Path:
    common = gitdir / "commondir"
    if common.is_file():
        return (gitdir / common.read_text(encoding="utf-8").strip()).resolve()
    return gitdir


def _packed_ref(gitdir: Path, ref: str) -> str:
    packed = gitdir / "packed-refs"
    if not packed.is_file():
        return ""
    for line in packed.read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith(("#", "^")):
            continue
        sha, _, name = line.partition(" ")
        if name == ref:
            return sha
    return ""
