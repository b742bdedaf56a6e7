"""The pmaports checkouts the daemon keeps: configured branches that follow a git
remote, and their staging branches, found on the remote and removed with their data.

`sync` is a pass's fetching: the branches pushed to (all on a full pass), with
the package directories each push changed. A staging branch
`<origin>_staging_<name>` tries a change against a configured branch that has a
remote and staging arches. The staging branches the daemon knows are exactly the
checkout directories under `checkouts_dir`, so the set survives a restart without
any state file. `discover` lists the remote's branches (one `git ls-remote` per
configured branch): a new staging branch gets a checkout, a deleted one loses its
checkout and its WIP, symlink and final repositories. When the remote cannot be
asked nothing is removed."""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path

from reconciler.config.settings import BranchConfig
from reconciler.desired.git import GitCheckout, GitError, remote_branches
from reconciler.execute.repos import remove_branch_data
from reconciler.model.names import STAGING_SEPARATOR, is_safe_branch, split_staging
from reconciler.model.progress import Event
from reconciler.observed.scanner import RepoRoots

log = logging.getLogger(__name__)


# branch -> (commit before, commit after, package directories changed)
Changes = dict[str, tuple[str, str, set[str]]]


class Checkouts:
    def __init__(
        self,
        configured: tuple[BranchConfig, ...],
        checkouts_dir: Path,
        roots: RepoRoots,
        splitrepos: tuple[str, ...],
    ) -> None:
        self.followed = {
            b.name: GitCheckout(b.pmaports, b.remote, b.name) for b in configured if b.remote
        }
        self.origins = {b.name: b for b in configured if b.remote and b.staging_arches}
        self.checkouts_dir = checkouts_dir
        self.roots = roots
        self.splitrepos = splitrepos
        self._branches = self._from_disk()

    @property
    def staging(self) -> tuple[BranchConfig, ...]:
        """The staging branches known now, in name order."""
        return self._branches

    def sync(self, pushed: set[str], full: bool, now: float) -> tuple[Changes, list[Event]]:
        """Fetch the branches that were pushed to (all of them on a full pass), after
        looking for new and deleted staging branches when one of those was pushed."""
        changes: Changes = {}
        events: list[Event] = []
        checkouts = [(n, c) for n, c in self.followed.items() if full or n in pushed]
        if self.origins and (full or any(split_staging(n) for n in pushed)):
            added, removed = self.discover()
            events += [Event(now, b.name, "", "", "push", "staging branch found") for b in added]
            events += [Event(now, n, "", "", "push", "staging branch deleted") for n in removed]
            pushed = pushed | {b.name for b in added}
        for branch in self._branches:
            if full or branch.name in pushed:
                checkouts.append((branch.name, self.checkout(branch)))
        for name, checkout in checkouts:
            try:
                before, after = checkout.sync()
                if before != after:
                    changes[name] = (before, after, checkout.changed_packages(before, after))
            except GitError as exc:  # the remote may be down: carry on with what we have
                log.error("cannot update pmaports for %s: %s", name, exc)
        return changes, events

    def checkout(self, branch: BranchConfig) -> GitCheckout:
        return GitCheckout(branch.pmaports, branch.remote, branch.name)

    def _config(self, name: str) -> BranchConfig | None:
        staging = split_staging(name)
        if staging is None or not is_safe_branch(name):
            return None
        origin = self.origins.get(staging[0])
        if origin is None:
            return None
        return replace(
            origin,
            name=name,
            pmaports=self.checkouts_dir / name,
            arches=origin.staging_arches,
            ignore_errors=True,
            staging_arches=(),
            origin=origin.name,
        )

    def _from_disk(self) -> tuple[BranchConfig, ...]:
        if not self.checkouts_dir.is_dir():
            return ()
        found = []
        for path in sorted(self.checkouts_dir.iterdir()):
            config = self._config(path.name)
            if config is not None and (path / ".git").is_dir():
                found.append(config)
        return tuple(found)

    def discover(self) -> tuple[list[BranchConfig], list[str]]:
        """Ask the remotes which staging branches exist: (new ones, removed names).

        New branches have an empty checkout directory; the caller syncs them."""
        present = {b.name for b in self._branches}
        added: list[BranchConfig] = []
        removed: list[str] = []
        for origin in self.origins.values():
            prefix = origin.name + STAGING_SEPARATOR
            try:
                names = remote_branches(origin.remote, prefix)
            except GitError as exc:  # keep what we have until the remote answers
                log.error("cannot list staging branches of %s: %s", origin.name, exc)
                continue
            for name in sorted(names - present):
                config = self._config(name)
                if config is None:
                    log.warning("ignoring remote branch %r: not a usable staging branch", name)
                    continue
                (config.pmaports / ".git").parent.mkdir(parents=True, exist_ok=True)
                added.append(config)
                log.info("staging branch %s found", name)
            for name in sorted(n for n in present if n.startswith(prefix) and n not in names):
                self.remove(name)
                removed.append(name)
        if added or removed:
            self._branches = tuple(
                sorted(
                    [b for b in self._branches if b.name not in removed] + added,
                    key=lambda b: b.name,
                )
            )
        return added, removed

    def remove(self, name: str) -> None:
        """Delete a staging branch's checkout and every repository it published."""
        staging = split_staging(name)
        assert staging is not None and is_safe_branch(name)
        remove_branch_data(self.roots, name, self.splitrepos)
        shutil.rmtree(self.checkouts_dir / name, ignore_errors=True)
        log.info("staging branch %s was deleted on the remote: removed its data", name)
