"""The pmaports checkouts the daemon keeps: configured branches that follow a git
remote, and their staging branches, found on the remote and removed with their data.

`sync` is a pass's fetching: the branches pushed to (all on a full pass), with
the package directories each push changed. A staging branch
`<origin>_staging_<name>` tries a change against a configured branch that has a
remote and staging arches. The staging branches the daemon knows are exactly the
checkout directories under `checkouts_dir`, so the set survives a restart without
any state file. `discover` lists the remote's branches (one `git ls-remote` per
configured branch): a new staging branch gets a checkout; a deleted one is
forgotten and becomes a removal request, which the plan turns into an action that
deletes its repositories and then its checkout (until then the checkout stays, so
a crash in between finds the branch again and asks again). When the remote cannot
be asked nothing is removed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler.config.branches import BranchConfig
from reconciler.desired.git import GitCheckout, GitError, remote_branches
from reconciler.model.names import STAGING_SEPARATOR, is_safe_branch, split_staging
from reconciler.model.progress import Event
from reconciler.operator.intents import BranchRemoval

log = logging.getLogger(__name__)


# branch -> (commit before, commit after, package directories changed)
Changes = dict[str, tuple[str, str, set[str]]]


@dataclass(frozen=True, slots=True)
class Synced:
    """What a pass's fetching found: pushes, events, staging branches to remove."""

    changes: Changes = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    removals: tuple[BranchRemoval, ...] = ()


class Checkouts:
    def __init__(
        self,
        configured: tuple[BranchConfig, ...],
        checkouts_dir: Path,
    ) -> None:
        self.followed = {
            b.name: GitCheckout(b.pmaports, b.remote, b.name) for b in configured if b.remote
        }
        self.origins = {b.name: b for b in configured if b.remote and b.staging_arches}
        self.checkouts_dir = checkouts_dir
        self._branches = self._from_disk()

    @property
    def staging(self) -> tuple[BranchConfig, ...]:
        """The staging branches known now, in name order."""
        return self._branches

    def sync(self, pushed: set[str], full: bool, now: float) -> Synced:
        """Fetch the branches that were pushed to (all of them on a full pass), after
        looking for new and deleted staging branches when one of those was pushed."""
        changes: Changes = {}
        events: list[Event] = []
        removals: list[BranchRemoval] = []
        checkouts = [(n, c) for n, c in self.followed.items() if full or n in pushed]
        if self.origins and (full or any(split_staging(n) for n in pushed)):
            added, removed = self.discover()
            events += [Event(now, b.name, "", "", "push", "staging branch found") for b in added]
            events += [Event(now, n, "", "", "push", "staging branch deleted") for n in removed]
            why = "the staging branch was deleted on the remote"
            removals += [BranchRemoval(n, why, str(self.checkouts_dir / n)) for n in removed]
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
        return Synced(changes, tuple(events), tuple(removals))

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

        New branches have an empty checkout directory; the caller syncs them.
        Removed ones are forgotten here; their data goes with a removal request."""
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
                log.info("staging branch %s was deleted on the remote", name)
                removed.append(name)
        if added or removed:
            self._branches = tuple(
                sorted(
                    [b for b in self._branches if b.name not in removed] + added,
                    key=lambda b: b.name,
                )
            )
        return added, removed
