"""pmaports tree -> the packages each (branch, splitrepo, arch) repository should hold.

Reads APKBUILDs statically (never running shell), caches each parse by the file's
inode, size and mtime, and hands the parses to `resolve`, which resolves internal
dependencies the way pmbootstrap does. A branch is resolved again only when one
of its APKBUILDs changed, and a git checkout whose HEAD and index did not move
need not even be walked (`trust_git`). `device/archived/` is never built. A file
that cannot be used becomes a BrokenPackage with its reason; the rest of the
tree carries on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from reconciler.config.branches import BranchConfig
from reconciler.desired.gitref import git_dir, read_head_commit
from reconciler.desired.parsecache import Entry, ParseCache
from reconciler.desired.resolve import ParsedFile, resolve_branch
from reconciler.formats.apkbuild import ApkbuildError, parse_apkbuild
from reconciler.model.packages import BranchDesired

__all__ = ["DesiredReader", "ParsedFile", "git_mark", "resolve_branch"]

log = logging.getLogger(__name__)

SKIPPED_DIRS = ("device/archived/",)


class DesiredReader:
    """Turns pmaports trees into BranchDesired values, caching parses across passes."""

    def __init__(self, splitrepos: tuple[str, ...], parse_cache: ParseCache | None = None) -> None:
        self._splitrepos = splitrepos
        # tree root -> APKBUILD path -> ((inode, size, mtime_ns), parse); replaced
        # whole by every walk, so removed files are forgotten.
        self._cache: dict[str, dict[str, Entry]] = {}
        # Parses of a previous run, for each tree's first walk (the state directory's).
        self._parse_cache = parse_cache
        # branch -> (fingerprint, result, the parses it came from: kept alive so
        # their ids in the fingerprint cannot be reused by other objects)
        self._resolved: dict[str, tuple[tuple[object, ...], BranchDesired, list[ParsedFile]]] = {}
        # branch -> (its config and git state when last walked, the result then)
        self._git_marks: dict[str, tuple[tuple[object, ...], BranchDesired]] = {}

    def read_branch(self, branch: BranchConfig, *, trust_git: bool = False) -> BranchDesired:
        """The branch's desired state; resolved again only when a file changed.

        With `trust_git`, a checkout whose HEAD commit and git index did not change
        since the last walk is not walked again: the daemon's checkouts change only
        through git (checkout, reset, pull rewrite the index). Edits that bypass git
        are seen by the next walk (the daemon walks on start, resync and push).
        A plain directory (no .git) is always walked.
        """
        mark = git_mark(branch.pmaports)
        if trust_git and mark is not None:
            known = self._git_marks.get(branch.name)
            if known is not None and known[0] == (branch, *mark):
                return known[1]
        files = self.scan_tree(branch.pmaports)
        commit = mark[0] if mark is not None else read_head_commit(branch.pmaports)
        # Parses are cached objects: the same objects mean the same tree.
        fingerprint = (branch, commit, tuple(id(f) for f in files))
        cached = self._resolved.get(branch.name)
        if cached is not None and cached[0] == fingerprint:
            result = cached[1]
        else:
            result = resolve_branch(branch, files, commit)
            self._resolved[branch.name] = (fingerprint, result, files)
        if mark is not None:
            self._git_marks[branch.name] = ((branch, *mark), result)
        else:
            self._git_marks.pop(branch.name, None)
        return result

    def scan_tree(self, root: Path) -> list[ParsedFile]:
        """Every usable APKBUILD below root, in path order."""
        top = os.fspath(root)
        known = self._cache.get(top)
        if known is None:
            known = self._parse_cache.read(top) if self._parse_cache is not None else {}
        seen: dict[str, Entry] = {}
        found: list[ParsedFile] = []
        self._walk(top, "", known, seen, found)
        self._cache[top] = seen
        if self._parse_cache is not None:
            self._parse_cache.save(top, seen)
        return found

    def _walk(
        self,
        directory: str,
        rel: str,
        known: dict[str, Entry],
        seen: dict[str, Entry],
        found: list[ParsedFile],
    ) -> None:
        """os.walk's order (a directory, then its subdirectories by name, links to
        directories not followed), with one scandir per directory, the file types
        from its entries and one stat: the APKBUILD's."""
        subdirs: list[tuple[str, str]] = []
        apkbuild: os.DirEntry[str] | None = None
        try:
            with os.scandir(directory) as listing:
                for entry in listing:
                    name = entry.name
                    try:
                        if name == "APKBUILD" and not _is_dir(entry):
                            apkbuild = entry
                        elif name[0] != "." and entry.is_dir(follow_symlinks=False):
                            subdirs.append((name, entry.path))
                    except OSError:
                        pass  # vanished, or unreadable: neither a file nor a directory
        except OSError:
            return
        if apkbuild is not None and rel and not (rel + "/").startswith(SKIPPED_DIRS):
            splitrepo = self._splitrepo_of(rel)
            if splitrepo is not None:
                found.append(self._parse_cached(apkbuild, rel, splitrepo, known, seen))
        subdirs.sort()
        for name, path in subdirs:
            self._walk(path, f"{rel}/{name}" if rel else name, known, seen, found)

    def _splitrepo_of(self, rel: str) -> str | None:
        parts = rel.split("/")
        if parts[0] != "extra-repos":
            return ""
        if len(parts) >= 3 and parts[1] in self._splitrepos:
            return parts[1]
        return None  # an extra repo this configuration does not publish

    def _parse_cached(
        self,
        entry: os.DirEntry[str],
        rel: str,
        splitrepo: str,
        known: dict[str, Entry],
        seen: dict[str, Entry],
    ) -> ParsedFile:
        try:
            stat = entry.stat()
        except OSError as exc:
            return ParsedFile(rel, splitrepo, None, f"{rel}/APKBUILD: cannot read: {exc}")
        ident = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        cached = known.get(entry.path)
        if cached is not None and cached[0] == ident:
            seen[entry.path] = cached
            return cached[1]
        parsed = _parse_file(Path(entry.path), rel, splitrepo, stat.st_mtime_ns)
        seen[entry.path] = (ident, parsed)
        return parsed


def git_mark(worktree: Path) -> tuple[str, tuple[int, int, int]] | None:
    """(HEAD commit, (inode, size, mtime_ns) of the git index) of a checkout, read
    without running git; None for a plain directory or an unreadable one."""
    gitdir = git_dir(worktree)
    if gitdir is None:
        return None
    commit = read_head_commit(worktree)
    try:
        stat = os.stat(gitdir / "index")
    except OSError:
        return None
    return (commit, (stat.st_ino, stat.st_size, stat.st_mtime_ns)) if commit else None


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _parse_file(file: Path, rel: str, splitrepo: str, mtime_ns: int) -> ParsedFile:
    try:
        # Bytes, then decode: read_text would turn CRLF into LF and hide it.
        text = file.read_bytes().decode("utf-8")
        return ParsedFile(rel, splitrepo, parse_apkbuild(text, f"{rel}/APKBUILD"), "", mtime_ns)
    except UnicodeDecodeError as exc:
        reason = f"{rel}/APKBUILD: not UTF-8 text ({exc.reason} at byte {exc.start})"
    except (OSError, ApkbuildError) as exc:
        reason = str(exc)
    return ParsedFile(rel, splitrepo, None, reason, mtime_ns)
