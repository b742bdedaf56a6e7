"""The package pages: one per package and branch, as a frozen value each.

Pure. A site at Alpine's scale has tens of thousands of package pages and they
dominate a full render, so a pass builds the values only of the pages whose
inputs may have changed since the previous pass (site.state says which); the
writer renders a value with the `package_page` macro of
`site_templates/_package.html` only when it differs from the value it last wrote.
A page says who holds its package (since when, why), what is wrong where it is
in trouble (the reason, the last lines of the failed job's log, the job in words
and its log), the state of each arch (arches in the same state share a row), the
states of its build dependencies as grid rows, what needs it and its build
history; it links only to pages that exist.

The values are NamedTuples rather than frozen dataclasses: a full render makes
tens of thousands of them, a tuple is made and compared in C, and the
`package_page` macro unpacks them in its loops without an attribute lookup per
field.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from reconciler.model.jobs import JobKind
from reconciler.model.names import RepoKey
from reconciler.model.packages import PkgSpec
from reconciler.model.progress import PkgState, PkgStatus
from reconciler.operator.intents import Hold
from reconciler.site.model import (
    PROBLEM_STATES,
    BranchInfo,
    CellTable,
    GridRow,
    JobRow,
    LogLink,
    LogLinks,
    SiteInput,
    bounded_excerpt,
    iso,
    job_row,
    package_href,
)
from reconciler.site.words import joined

HISTORY_LENGTH = 30  # build history rows per package page
RETRYING = PkgState.RETRYING  # looked up once per row
NO_VERSIONS = ("", "")


class About(NamedTuple):
    """What the APKBUILD says of the package: `url` is linked (http(s) only, never
    javascript: etc.), `plain_url` any other URL, shown as text."""

    description: str
    url: str
    plain_url: str
    path: str  # the APKBUILD's directory in pmaports ("main/foo")


class HoldLine(NamedTuple):
    """Who holds the package, where, since when, until when and why."""

    where: str  # "x86_64", "" for every arch
    who: str
    since: str
    until: str  # "" while it has no end
    why: str


class ArchRow(NamedTuple):
    """The arches of a package in the same state, for the same reason, at the same
    versions and with the same job: one row of its page's table."""

    arches: str  # "x86_64, aarch64"
    state: str
    letter: str
    text: str  # the state and the reason, no word said twice: "building, try 1 of 3"
    next_try: str  # a retrying package's next try (ISO time), else ""
    version: str  # desired
    wip: str
    final: str
    log: LogLink | None


class Trouble(NamedTuple):
    """Why a package failed, is broken or is retrying in some arches: the reason as
    the plan gives it, the last lines of the failed job's log and where to read
    all of it."""

    arches: str
    state: PkgState
    text: str  # the state and the reason: "failed: exit code 1 (try 3 of 3)"
    next_try: str
    excerpt: str
    logs: tuple[tuple[str, LogLink], ...]  # (arch, its job's log)


class PkgLink(NamedTuple):
    label: str
    href: str  # relative to the site root


class Section(NamedTuple):
    """One split repository's part of a package page."""

    splitrepo: str
    repos: str  # its repositories as names of them read elsewhere: "main/*", "main:systemd/*"
    about: About  # what its APKBUILD says ("" each without one)
    troubles: tuple[Trouble, ...]
    arches: tuple[ArchRow, ...]
    deps: tuple[GridRow, ...]  # the build dependencies' rows of the grid


class PackagePage(NamedTuple):
    branch: str
    pkgname: str
    arches: tuple[str, ...]  # the branch's, the columns of its dependencies' grid
    holds: tuple[HoldLine, ...]
    sections: tuple[Section, ...]
    needed_by: tuple[PkgLink, ...]
    history: tuple[JobRow, ...]


# branch -> dependency name -> (splitrepo, name) of the packages that need it (any arch)
Rdeps = dict[str, dict[str, set[tuple[str, str]]]]
# (branch, splitrepo, pkgname): one split repository's section of a package page
SectionKey = tuple[str, str, str]
# (branch, pkgname) of a page -> its split repositories (each with its number of statuses)
Sections = Mapping[tuple[str, str], Mapping[str, int]]


@dataclass(frozen=True, slots=True)
class SpecIndex:
    """The specs' build dependencies as the package pages read them: per section,
    the build dependencies of every arch (sorted), and per branch what needs each
    package. Built in one walk over all specs, then kept up to date section by
    section (`update`) as specs change. What a page says about the package comes
    from its specs when the page is built (`about_of`)."""

    rdeps: Rdeps
    deps: dict[SectionKey, tuple[tuple[str, str], ...]]  # (splitrepo, name), sorted

    @classmethod
    def of(
        cls, specs: Mapping[tuple[RepoKey, str], PkgSpec], branches: tuple[BranchInfo, ...]
    ) -> SpecIndex:
        """One walk over every spec of every repository (hundreds of thousands); a
        dependency's split repository is the one its first arch (in the branch's
        order) names."""
        order = {b.name: {a: i for i, a in enumerate(b.arches)} for b in branches}
        rdeps: Rdeps = {}
        deps: dict[SectionKey, dict[str, tuple[int, str]]] = {}  # name -> (arch, split repo)
        last: RepoKey | None = None
        branch = splitrepo = ""
        rank: int | None = None
        needs: dict[str, set[tuple[str, str]]] = {}
        for (repo, name), spec in specs.items():
            build_deps = spec.build_deps
            if not build_deps:
                continue
            if repo is not last:  # specs come grouped by repository
                last = repo
                arches = order.get(repo.branch)
                rank = arches.get(repo.arch) if arches is not None else None
                branch, splitrepo = repo.branch, repo.splitrepo
                needs = rdeps.get(branch) or rdeps.setdefault(branch, {})
            if rank is None:
                continue
            key = (branch, splitrepo, name)
            found = deps.get(key)
            if found is None:
                found = deps[key] = {}
            for dep in build_deps:  # the arches of a package mostly need the same
                pkgname = dep.pkgname
                seen = found.get(pkgname)
                if seen is None:
                    found[pkgname] = (rank, dep.repo.splitrepo)
                    users = needs.get(pkgname)
                    if users is None:
                        needs[pkgname] = {(splitrepo, name)}
                    else:
                        users.add((splitrepo, name))
                elif rank < seen[0]:
                    found[pkgname] = (rank, dep.repo.splitrepo)
        return cls(
            rdeps,
            {
                key: tuple(sorted([(sr, n) for n, (_, sr) in found.items()]))
                for key, found in deps.items()
            },
        )

    def update(
        self,
        key: SectionKey,
        specs: Mapping[tuple[RepoKey, str], PkgSpec],
        arches: tuple[str, ...],
    ) -> set[str]:
        """Read the section `key` again from `specs` (its branch's `arches`); the names
        of the packages whose "needed by" changed (dependencies it gained or lost)."""
        branch, splitrepo, name = key
        found: dict[str, str] = {}
        for arch in arches:
            spec = specs.get((RepoKey(branch, splitrepo, arch), name))
            if spec is not None:
                for dep in spec.build_deps:
                    if dep.pkgname not in found:
                        found[dep.pkgname] = dep.repo.splitrepo
        new = tuple(sorted((sr, n) for n, sr in found.items()))
        old = self.deps.get(key, ())
        if new == old:
            return set()
        if new:
            self.deps[key] = new
        else:
            self.deps.pop(key, None)
        entry = (splitrepo, name)
        needs = self.rdeps.setdefault(branch, {})
        old_names, new_names = {n for _, n in old}, {n for _, n in new}
        for gone in old_names - new_names:
            users = needs.get(gone)
            if users is not None:
                users.discard(entry)
                if not users:
                    del needs[gone]
        for added in new_names - old_names:
            needs.setdefault(added, set()).add(entry)
        return old_names ^ new_names


@dataclass(frozen=True, slots=True)
class PackagePages:
    built: dict[str, PackagePage]  # the pages that may have changed since the last pass
    removed: frozenset[str] = frozenset()  # pages of packages that are gone


def package_pages(
    site: SiteInput,
    table: CellTable,
    logs: LogLinks,
    index: SpecIndex,
    sections: Sections,
    wanted: Iterable[tuple[str, str]],
    history: dict[tuple[str, str], tuple[JobRow, ...]],
) -> dict[str, PackagePage]:
    """The pages of `wanted` ((branch, pkgname) of pages that exist: `sections`)."""
    return PackagePager(site, table, logs, index).pages(
        [(page, sections[page]) for page in wanted], history
    )


class PackagePager:
    """Builds the package pages of one pass, sharing what pages repeat: the link
    each package gets in the pages of what it needs."""

    def __init__(
        self,
        site: SiteInput,
        table: CellTable,
        logs: LogLinks,
        index: SpecIndex,
    ) -> None:
        self.site = site
        self.table = table
        self.logs = logs
        self.index = index
        self.repos: dict[tuple[str, str, str], RepoKey] = {}  # (branch, splitrepo, arch) -> key
        self.holds: dict[tuple[str, str], list[Hold]] = defaultdict(list)
        for hold in site.holds:
            self.holds[(hold.branch, hold.pkgname)].append(hold)
        self.links: dict[tuple[str, str, str], PkgLink] = {}  # (branch, splitrepo, name)
        self.outside: dict[tuple[str, str, str], GridRow] = {}  # deps without a row

    def pages(
        self,
        wanted: list[tuple[tuple[str, str], Mapping[str, int]]],
        history: dict[tuple[str, str], tuple[JobRow, ...]],
    ) -> dict[str, PackagePage]:
        """The pages of `wanted`: ((branch, pkgname), its split repos)."""
        rdeps = self.index.rdeps
        arches_of = {b.name: b.arches for b in self.site.branches}
        holds, section = self.holds, self.section
        pages: dict[str, PackagePage] = {}
        for (branch, pkgname), splitrepos in wanted:
            arches = arches_of.get(branch, ())
            reverse = rdeps[branch].get(pkgname) if branch in rdeps else None
            held = holds.get((branch, pkgname)) if holds else None
            pages[f"package/{branch}/{pkgname}.html"] = PackagePage(
                branch,
                pkgname,
                arches,
                tuple([hold_line(h) for h in held]) if held else (),
                tuple([section((branch, sr, pkgname), arches) for sr in sorted(splitrepos)])
                if len(splitrepos) > 1
                else (section((branch, next(iter(splitrepos)), pkgname), arches),),
                self.needed_by(branch, sorted(reverse)) if reverse else (),
                history.get((branch, pkgname), ()),
            )
        return pages

    def section(self, key: SectionKey, arches: tuple[str, ...]) -> Section:
        """One split repository's part of a package page: state per arch and dependencies."""
        branch, splitrepo, _ = key
        own = self.table.get(key)
        present = [s for s in own.statuses if s is not None] if own is not None else []
        return Section(
            splitrepo,
            f"{branch}:{splitrepo}/*" if splitrepo else f"{branch}/*",
            self.about(key, arches),
            self.troubles(present) if own is not None and own.reasons else (),
            self.arch_rows(present),
            tuple(
                [
                    self.dep_row(branch, sr, name, arches)
                    for sr, name in self.index.deps.get(key, ())
                ]
            ),
        )

    def about(self, key: SectionKey, arches: tuple[str, ...]) -> About:
        """What the APKBUILD of the section's first arch (in the branch's order)
        with one says of the package."""
        branch, splitrepo, name = key
        specs, repos = self.site.specs, self.repos
        for arch in arches:
            repo = repos.get((branch, splitrepo, arch))
            if repo is None:
                repo = repos[(branch, splitrepo, arch)] = RepoKey(branch, splitrepo, arch)
            spec = specs.get((repo, name))
            if spec is not None:
                return about(spec)
        return NO_ABOUT

    def arch_rows(self, statuses: list[PkgStatus]) -> tuple[ArchRow, ...]:
        """The arches' rows: those in the same state for the same reason at the same
        versions (and with the same job) share one."""
        if not statuses:
            return ()
        versions = self.site.versions
        if not versions and _alike(statuses):  # the common case: one row
            first = statuses[0]
            return (self._arch_row(first, [s.repo.arch for s in statuses], NO_VERSIONS),)
        groups: dict[tuple[object, ...], tuple[PkgStatus, list[str], tuple[str, str]]] = {}
        for s in statuses:
            pair = versions.get((s.repo, s.pkgname), NO_VERSIONS) if versions else NO_VERSIONS
            key = (s.state, s.reason, s.next_try_at, s.version, s.job_id, pair)
            found = groups.get(key)
            if found is None:
                groups[key] = (s, [s.repo.arch], pair)
            else:
                found[1].append(s.repo.arch)
        return tuple([self._arch_row(*group) for group in groups.values()])

    def _arch_row(self, first: PkgStatus, arches: list[str], pair: tuple[str, str]) -> ArchRow:
        state = first.state
        return ArchRow(
            ", ".join(arches),
            str(state),  # the value, without the enum's (slow) `value` property
            state.letter,
            joined(str(state), first.reason),
            iso(first.next_try_at) if state is RETRYING else "",
            first.version,
            pair[0],
            pair[1],
            self.logs.of(first.job_id),
        )

    def troubles(self, statuses: list[PkgStatus]) -> tuple[Trouble, ...]:
        """The arches in trouble, one entry per distinct reason and excerpt."""
        groups: dict[tuple[PkgState, str, str, str], list[PkgStatus]] = {}
        for s in statuses:
            if s.state in PROBLEM_STATES:
                next_try = iso(s.next_try_at) if s.next_try_at and s.state is RETRYING else ""
                key = (s.state, s.reason, next_try, s.excerpt)
                groups.setdefault(key, []).append(s)
        result = []
        for (state, reason, next_try, excerpt), members in groups.items():
            logs = []
            for s in members:
                link = self.logs.of(s.job_id)
                if link is not None:
                    logs.append((s.repo.arch, link))
            result.append(
                Trouble(
                    ", ".join(s.repo.arch for s in members),
                    state,
                    f"Its APKBUILD is broken: {reason}"
                    if state is PkgState.BROKEN
                    else joined(str(state), reason),
                    next_try,
                    bounded_excerpt(excerpt),
                    tuple(logs),
                )
            )
        return tuple(result)

    def dep_row(self, branch: str, splitrepo: str, name: str, arches: tuple[str, ...]) -> GridRow:
        """A dependency in the table of its dependents: its row of the grid; one
        outside pmaports has no cells and no page."""
        found = self.table.get((branch, splitrepo, name))
        if found is not None:
            return found
        key = (branch, splitrepo, name)
        row = self.outside.get(key)
        if row is None:
            row = self.outside[key] = GridRow(name, splitrepo, "", (None,) * len(arches), ())
        return row

    def needed_by(self, branch: str, reverse: Iterable[tuple[str, str]]) -> tuple[PkgLink, ...]:
        """Reverse dependencies, without their states: a package's state change must
        not rewrite the pages of everything it depends on."""
        links = []
        for sr, name in reverse:
            link = self.links.get((branch, sr, name))
            if link is None:
                label = name + (f" ({sr})" if sr else "")
                link = self.links[(branch, sr, name)] = PkgLink(label, package_href(branch, name))
            links.append(link)
        return tuple(links)


NO_ABOUT = About("", "", "", "")


def _alike(statuses: list[PkgStatus]) -> bool:
    """Whether the statuses (of one package's arches) share state, reason, next
    try, version and job."""
    first = statuses[0]
    state, reason, version, job, due = (
        first.state,
        first.reason,
        first.version,
        first.job_id,
        first.next_try_at,
    )
    for s in statuses:
        if (
            s.state is not state
            or s.reason != reason
            or s.version != version
            or s.job_id != job
            or s.next_try_at != due
        ):
            return False
    return True


def hold_line(hold: Hold) -> HoldLine:
    return HoldLine(hold.arch, hold.who, iso(hold.since), iso(hold.expires), hold.why)


def about(spec: PkgSpec) -> About:
    """Description, web link (http(s) URLs only) and APKBUILD path of a package."""
    linked = spec.url.lower().startswith(("https://", "http://"))
    return About(
        spec.description,
        spec.url if linked else "",
        "" if linked else spec.url,
        spec.path,
    )


def history_rows(site: SiteInput) -> dict[tuple[str, str], tuple[JobRow, ...]]:
    """(branch, pkgname) -> its builds, newest first."""
    rows: dict[tuple[str, str], list[JobRow]] = defaultdict(list)
    for job in sorted(site.jobs, key=lambda j: (j.submitted_at, j.key), reverse=True):
        intent = job.key.intent
        if intent.kind is JobKind.BUILD:
            found = rows[(intent.repo.branch, intent.pkgname)]
            if len(found) < HISTORY_LENGTH:
                found.append(job_row(job))
    return {key: tuple(found) for key, found in rows.items()}
