"""pmaports tree -> the packages each (branch, splitrepo, arch) repository should hold.

Reads APKBUILDs statically (never running shell), caches each parse by the file's
inode, size and mtime, and hands the parses to `resolve`, which resolves internal
dependencies the way pmbootstrap does. A branch is resolved again only when one
of its APKBUILDs changed, and a git checkout whose HEAD and index did not move
need not even be walked (`trust_git`). `device/archived/` is never built. A file
that cannot be used becomes a BrokenPackage with its reason; the rest of the
tree carries on.

A tree is input from outside (`treefiles`): an APKBUILD is read only as a regular
file of at most `max_apkbuild_bytes` inside the tree (a symlink to a file of the
tree is fine), and a directory whose name is not UTF-8 makes every APKBUILD below
it broken. Reasons name files relative to the tree with such bytes escaped
(`\\xff`), so nothing the reader hands on holds a surrogate, a path outside the
tree or anything read from there; nothing in a tree makes it raise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from reconciler.collector import collector_paused
from reconciler.config.branches import BranchConfig
from reconciler.desired.gitref import git_dir, read_head_commit
from reconciler.desired.parsecache import Entry, Ident, ParseCache
from reconciler.desired.resolve import ParsedFile, resolve_branch
from reconciler.desired.treefiles import escaped_name, inside_target, utf8_name
from reconciler.formats.apkbuild import ApkbuildError, parse_apkbuild
from reconciler.fs.regularfile import Refused, check_regular, read_regular
from reconciler.model.packages import BranchDesired

__all__ = ["DesiredReader", "ParsedFile", "git_mark", "resolve_branch"]

log = logging.getLogger(__name__)

SKIPPED_DIRS = ("device/archived/",)
Refusals = dict[tuple[str, str, str], ParsedFile]  # (path, splitrepo, why) -> its ParsedFile


class DesiredReader:
    """Turns pmaports trees into BranchDesired values, caching parses across passes."""

    def __init__(
        self,
        splitrepos: tuple[str, ...],
        parse_cache: ParseCache | None = None,
        *,
        max_apkbuild_bytes: int = 1024 * 1024,
    ) -> None:
        self._splitrepos = splitrepos
        self._max_bytes = max_apkbuild_bytes
        # tree root -> APKBUILD path -> ((inode, size, mtime_ns), parse); replaced
        # whole by every walk, so removed files are forgotten.
        self._cache: dict[str, dict[str, Entry]] = {}
        # tree root -> the refused files of its last walk: the same refusal is the
        # same object, so a tree with one still resolves only when it changed.
        self._refused: dict[str, Refusals] = {}
        # tree root -> the problems logged by its last walk (each logged once while it lasts)
        self._logged: dict[str, set[str]] = {}
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
        mark = _safe_git_mark(branch.pmaports)
        if trust_git and mark is not None:
            known = self._git_marks.get(branch.name)
            if known is not None and known[0] == (branch, *mark):
                return known[1]
        with collector_paused():
            files = self.scan_tree(branch.pmaports)
            commit = mark[0] if mark is not None else _safe_head_commit(branch.pmaports)
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
        """Every APKBUILD below root, parsed or refused, in path order."""
        top = os.fspath(root)
        known = self._cache.get(top)
        if known is None:
            known = self._parse_cache.read(top) if self._parse_cache is not None else {}
        before = (self._refused.get(top, {}), self._logged.get(top, set()))
        walk = _Walk(top, self._max_bytes, self._splitrepo_of, known, *before)
        walk.run()
        self._cache[top] = walk.seen
        self._refused[top] = walk.refused
        self._logged[top] = walk.logged
        if self._parse_cache is not None:
            self._parse_cache.save(top, walk.seen)
        return walk.found

    def _splitrepo_of(self, rel: str) -> str | None:
        parts = rel.split("/")
        if parts[0] != "extra-repos":
            return ""
        if len(parts) >= 3 and parts[1] in self._splitrepos:
            return parts[1]
        return None  # an extra repo this configuration does not publish


class _Walk:
    """One walk of one tree: what it found, parsed, refused and logged."""

    def __init__(
        self,
        top: str,
        max_bytes: int,
        splitrepo_of: Callable[[str], str | None],
        known: dict[str, Entry],
        refused_before: Refusals,
        logged_before: set[str],
    ) -> None:
        self.top = top
        self.real_root = os.path.realpath(top)  # once per walk: symlinks must stay below it
        self.max_bytes = max_bytes
        self.splitrepo_of = splitrepo_of
        self.known = known
        # The walk before's refusals and problems: reused (the same objects), not logged again.
        self.refused_before = refused_before
        self.logged_before = logged_before
        self.seen: dict[str, Entry] = {}
        self.refused: Refusals = {}
        self.logged: set[str] = set()
        self.found: list[ParsedFile] = []

    def run(self) -> None:
        """os.walk's order (a directory, then its subdirectories by name, links to
        directories not followed), with one scandir per directory, the file types
        from its entries and one stat: the APKBUILD's. Iterative, so that no depth
        of nesting reaches the recursion limit."""
        # (directory, its path relative to the tree with bytes that are not UTF-8
        # escaped, the first directory on the way whose name is not UTF-8)
        stack: list[tuple[str, str, str]] = [(self.top, "", "")]
        while stack:
            directory, rel, bad = stack.pop()
            subdirs: list[tuple[str, str]] = []
            apkbuild: os.DirEntry[str] | None = None
            try:
                with os.scandir(directory) as listing:
                    for entry in listing:
                        name = entry.name
                        try:
                            if name == "APKBUILD":
                                apkbuild = entry  # of any type: a directory is refused
                            elif name[0] != "." and entry.is_dir(follow_symlinks=False):
                                subdirs.append((name, entry.path))
                        except OSError:
                            pass  # vanished, or unreadable: neither a file nor a directory
            except OSError as exc:
                self._log(f"{rel or '.'}: cannot list the directory: {_why(exc)}")
                continue
            if apkbuild is not None and rel and not (rel + "/").startswith(SKIPPED_DIRS):
                splitrepo = self.splitrepo_of(rel)
                if splitrepo is not None:
                    self.found.append(self._file(apkbuild, rel, splitrepo, bad))
            subdirs.sort(reverse=True)  # popped in name order
            for name, path in subdirs:
                text = utf8_name(name)
                if text is None:
                    text = escaped_name(name)
                    child = f"{rel}/{text}" if rel else text
                    stack.append((path, child, bad or child))
                else:
                    stack.append((path, f"{rel}/{text}" if rel else text, bad))

    def _file(self, entry: os.DirEntry[str], rel: str, splitrepo: str, bad: str) -> ParsedFile:
        """The APKBUILD `entry`: its cached parse while its (inode, size, mtime)
        stay the same, else read and parsed; or refused."""
        if bad:
            return self._refuse(rel, splitrepo, f"the name is not UTF-8 ({bad})")
        path = entry.path
        max_bytes = self.max_bytes
        try:
            if entry.is_symlink():
                path = inside_target(path, self.real_root)
                info = os.stat(path)
            else:
                info = entry.stat(follow_symlinks=False)
            check_regular(info, max_bytes)
        except Refused as exc:
            return self._refuse(rel, splitrepo, str(exc))
        except (OSError, ValueError) as exc:
            return self._refuse(rel, splitrepo, f"cannot read: {_why(exc)}")
        ident: Ident = (info.st_ino, info.st_size, info.st_mtime_ns)
        cached = self.known.get(entry.path)
        if cached is not None and cached[0] == ident:
            self.seen[entry.path] = cached
            return cached[1]
        try:
            # Checked again on the open file: what is read is what was checked.
            info, data = read_regular(path, max_bytes)
        except Refused as exc:
            return self._refuse(rel, splitrepo, str(exc))
        except OSError as exc:
            return self._refuse(rel, splitrepo, f"cannot read: {_why(exc)}")
        parsed = _parse_bytes(data, rel, splitrepo, info.st_mtime_ns)
        self.seen[entry.path] = ((info.st_ino, info.st_size, info.st_mtime_ns), parsed)
        return parsed

    def _refuse(self, rel: str, splitrepo: str, why: str) -> ParsedFile:
        """The refused APKBUILD of `rel`: the walk before's object for the same reason."""
        key = (rel, splitrepo, why)
        parsed = self.refused_before.get(key)
        if parsed is None:
            parsed = ParsedFile(rel, splitrepo, None, f"{rel}/APKBUILD: {why}")
        self.refused[key] = parsed
        return parsed

    def _log(self, problem: str) -> None:
        if problem not in self.logged_before:
            log.warning("pmaports tree %s: %s", self.top, problem)
        self.logged.add(problem)


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


def _safe_git_mark(worktree: Path) -> tuple[str, tuple[int, int, int]] | None:
    try:
        return git_mark(worktree)
    except (OSError, ValueError) as exc:
        log.warning("pmaports tree %s: cannot read its git state: %s", worktree, _why(exc))
        return None


def _safe_head_commit(worktree: Path) -> str:
    try:
        return read_head_commit(worktree)
    except (OSError, ValueError) as exc:
        log.warning("pmaports tree %s: cannot read its git HEAD: %s", worktree, _why(exc))
        return ""


def _why(exc: Exception) -> str:
    """An error's words without the file name it may carry (which may lead out of
    the tree or not be UTF-8)."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


def _parse_bytes(data: bytes, rel: str, splitrepo: str, mtime_ns: int) -> ParsedFile:
    where = f"{rel}/APKBUILD"
    try:
        # Bytes, then decode: read_text would turn CRLF into LF and hide it.
        text = data.decode("utf-8")
        return ParsedFile(rel, splitrepo, parse_apkbuild(text, where), "", mtime_ns)
    except UnicodeDecodeError as exc:
        reason = f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})"
    except ApkbuildError as exc:
        reason = str(exc)
    except ValueError as exc:
        reason = f"{where}: {exc}"
    return ParsedFile(rel, splitrepo, None, reason, mtime_ns)
