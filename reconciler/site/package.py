"""The package pages: one per package and branch, as the escaped HTML of its main block.

Pure. A site at postmarketOS scale has thousands of package pages and they
dominate a full render, so their bodies are built here with string formatting
(every untrusted value through `esc`) instead of a template loop per
page; `package.html` supplies the frame around them (head, navigation, footer).
Each body is compared with the previous pass's to find the pages that changed.
A page says who holds its package (since when, why), what is wrong with a broken
one, and when a retrying one is tried next; it links only to pages that exist.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.model.jobs import JobKind
from reconciler.model.names import RepoKey
from reconciler.model.packages import PkgSpec
from reconciler.model.progress import PkgState, PkgStatus
from reconciler.operator.intents import Hold
from reconciler.site.model import (
    BranchInfo,
    CellTable,
    Escaped,
    JobRow,
    SiteInput,
    empty_cells,
    esc,
    iso,
    job_row,
    package_href,
)

HISTORY_LENGTH = 30  # build history rows per package page
BROKEN, RETRYING = PkgState.BROKEN, PkgState.RETRYING  # looked up once per row
DASH = "&mdash;"  # pages stay ASCII: cheaper to join and encode (see sitemodel.NO_CELL)

ARCH_HEAD = (
    "<thead><tr><th>arch</th><th>state</th><th>reason</th><th>desired</th>"
    "<th>in WIP</th><th>in final</th><th>log</th></tr></thead>\n"
)
HISTORY_HEAD = (
    "<thead><tr><th>started</th><th>repository</th><th>version</th><th>try</th>"
    "<th>result</th><th>duration</th><th>job</th><th>log</th></tr></thead>\n"
)


# state -> the literal pieces of its row in a package page's arch table, up to the
# end of the state's cell
ARCH_ROW_PIECES = {
    state: (
        f'<tr class="s-{state.value}"><td>',
        f'</td><td><span class="letter">{state.letter}</span> {state.value}',
    )
    for state in PkgState
}


@dataclass(frozen=True, slots=True)
class PackagePage:
    title: str
    main: str  # the page's main block as escaped HTML


# branch -> dependency name -> (splitrepo, name) of the packages that need it (any arch)
Rdeps = dict[str, dict[str, set[tuple[str, str]]]]
# (branch, splitrepo, pkgname): one split repository's section of a package page
SectionKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class SpecIndex:
    """The specs as the package pages read them, built in one walk over all specs
    (and kept while the specs are the same): keyed by section and arch with plain
    strings, which hash in C, where a RepoKey would run its Python __hash__ for
    each of the tens of thousands of lookups a full render makes."""

    rdeps: Rdeps
    by_arch: dict[SectionKey, dict[str, PkgSpec]]  # section -> arch -> its spec


@dataclass(frozen=True, slots=True)
class PackageInputs:
    """What one pass's package pages were built from. The next pass compares its own
    inputs with these and builds only the pages whose inputs may have changed; the
    others are known to be as they were."""

    branches: tuple[BranchInfo, ...]
    specs: Mapping[tuple[RepoKey, str], PkgSpec]
    statuses: tuple[PkgStatus, ...]
    versions: Mapping[tuple[RepoKey, str], tuple[str, str]]
    history: dict[tuple[str, str], str]  # (branch, pkgname) -> its build history section
    index: SpecIndex
    pages: frozenset[tuple[str, str]]  # (branch, pkgname) of every page
    holds: tuple[Hold, ...] = ()


@dataclass(frozen=True, slots=True)
class PackagePages:
    paths: frozenset[str]  # every package page of the pass
    built: dict[str, PackagePage]  # the pages that may have changed since `previous`
    inputs: PackageInputs


def package_pages(
    site: SiteInput,
    table: CellTable,
    root: str,
    escaped: Escaped,
    previous: PackageInputs | None = None,
) -> PackagePages:
    """Every package page of every branch the plan knows; with the inputs of the
    previous pass, only those pages are built that may differ from its pages."""
    by_name: dict[tuple[str, str], set[str]] = defaultdict(set)
    for status in site.plan.packages:
        by_name[(status.repo.branch, status.pkgname)].add(status.repo.splitrepo)
    history = history_rows(site, root)
    same_specs = previous is not None and (
        previous.specs is site.specs or previous.specs == site.specs
    )
    index = previous.index if previous is not None and same_specs else spec_index(site)
    inputs = PackageInputs(
        site.branches,
        site.specs,
        site.plan.packages,
        site.versions,
        history,
        index,
        frozenset(by_name),
        site.holds,
    )
    wanted = sorted(by_name.items())
    if previous is not None and same_specs and previous.branches == site.branches:
        dirty = changed_pages(previous, inputs) | (inputs.pages - previous.pages)
        wanted = [item for item in wanted if item[0] in dirty]
    pager = PackagePager(site, table, root, escaped, index, inputs.pages)
    return PackagePages(
        frozenset(package_href(branch, name) for branch, name in inputs.pages),
        pager.pages(wanted, history),
        inputs,
    )


def spec_index(site: SiteInput) -> SpecIndex:
    rdeps: Rdeps = defaultdict(lambda: defaultdict(set))
    by_arch: dict[SectionKey, dict[str, PkgSpec]] = {}
    for (repo, name), spec in site.specs.items():
        branch, splitrepo = repo.branch, repo.splitrepo
        arches = by_arch.get((branch, splitrepo, name))
        if arches is None:
            arches = by_arch[(branch, splitrepo, name)] = {}
        arches[repo.arch] = spec
        if spec.build_deps:
            needs, entry = rdeps[branch], (splitrepo, name)
            for dep in spec.build_deps:
                needs[dep.pkgname].add(entry)
    return SpecIndex(rdeps, by_arch)


def changed_pages(old: PackageInputs, new: PackageInputs) -> set[tuple[str, str]]:
    """(branch, pkgname) of the pages whose inputs may differ, given the same branches
    and specs: a page shows its package's statuses, versions and history, and the
    grid cells (statuses) of its dependencies."""
    changed: set[tuple[str, str]] = set()
    if old.statuses is not new.statuses:
        for a, b in zip(old.statuses, new.statuses, strict=False):
            if a is not b and a != b:
                changed.add((a.repo.branch, a.pkgname))
                changed.add((b.repo.branch, b.pkgname))
        shorter = min(len(old.statuses), len(new.statuses))
        for s in old.statuses[shorter:] + new.statuses[shorter:]:
            changed.add((s.repo.branch, s.pkgname))
    dirty = set(changed)
    for branch, name in changed:  # the pages listing them as a dependency
        dirty.update(
            (branch, dependent) for _, dependent in old.index.rdeps.get(branch, {}).get(name, ())
        )
    if old.versions is not new.versions and old.versions != new.versions:
        for key in old.versions.keys() ^ new.versions.keys():
            dirty.add((key[0].branch, key[1]))
        for key, pair in new.versions.items():
            if old.versions.get(key, pair) != pair:
                dirty.add((key[0].branch, key[1]))
    if old.history != new.history:
        for page in old.history.keys() | new.history.keys():
            if old.history.get(page) != new.history.get(page):
                dirty.add(page)
    if old.holds != new.holds:
        dirty.update((h.branch, h.pkgname) for h in set(old.holds) ^ set(new.holds))
    return dirty


class PackagePager:
    """Builds the package pages of one pass, sharing what pages repeat: escaped
    strings and the row each dependency gets in the tables of its dependents."""

    def __init__(
        self,
        site: SiteInput,
        table: CellTable,
        root: str,
        escaped: Escaped,
        index: SpecIndex,
        existing: frozenset[tuple[str, str]],
    ) -> None:
        self.site = site
        self.table = table
        self.root = root
        self.e = escaped
        self.index = index
        self.existing = existing  # (branch, pkgname) of every package page
        self.holds: dict[tuple[str, str], list[Hold]] = defaultdict(list)
        for hold in site.holds:
            self.holds[(hold.branch, hold.pkgname)].append(hold)
        self.dep_rows: dict[tuple[str, str, str], str] = {}  # (branch, splitrepo, name) -> row
        self.links: dict[tuple[str, str, str], str] = {}  # (branch, splitrepo, name) -> link

    def pages(
        self,
        wanted: list[tuple[tuple[str, str], set[str]]],
        history: dict[tuple[str, str], str],
    ) -> dict[str, PackagePage]:
        """The pages of `wanted`: ((branch, pkgname), its split repos)."""
        e, root, rdeps = self.e, self.root, self.index.rdeps
        arches_of = {b.name: b.arches for b in self.site.branches}
        heads: dict[str, str] = {}  # branch -> its dependency table head
        pages: dict[str, PackagePage] = {}
        for (branch, pkgname), splitrepos in wanted:
            arches = arches_of.get(branch, ())
            head = heads.get(branch)
            if head is None:
                head = heads[branch] = "".join(f"<th>{e[a]}</th>" for a in arches)
            parts = [
                f'<p class="crumbs"><a href="{root}branch/{e[branch]}.html">{e[branch]}</a>'
                f" /</p>\n<h1>{e[pkgname]}</h1>\n"
            ]
            held = self.holds.get((branch, pkgname))
            if held:
                parts.extend(self.held(hold) for hold in held)
            for splitrepo in sorted(splitrepos):
                parts.append(self.section((branch, splitrepo, pkgname), arches, head))
            reverse = rdeps[branch].get(pkgname) if branch in rdeps else None
            parts.append(self.needed_by(branch, sorted(reverse) if reverse else ()))
            parts.append(history.get((branch, pkgname), NO_HISTORY))
            pages[package_href(branch, pkgname)] = PackagePage(
                f"{pkgname} ({branch})", "".join(parts)
            )
        return pages

    def section(self, key: SectionKey, arches: tuple[str, ...], head: str) -> str:
        """One split repository's part of a package page: state per arch and dependencies."""
        branch, splitrepo, _ = key
        specs = self.index.by_arch.get(key, {})
        own = self.table.get(key)
        spec: PkgSpec | None = None
        deps: dict[tuple[str, str], None] = {}
        rows = []
        broken: dict[str, None] | None = None  # what is wrong, once however many arches say
        for status in own.statuses if own is not None else ():
            if status is None:
                continue
            rows.append(self.arch_row(status))
            if status.state is BROKEN:
                broken = broken or {}
                broken[status.reason] = None
            found = specs.get(status.repo.arch)
            if found is not None:
                spec = found
                for dep in found.build_deps:
                    deps[(dep.repo.splitrepo, dep.pkgname)] = None
        label = f"extra-repos/{splitrepo}" if splitrepo else "main"
        alerts = (
            "".join([f'<p class="alert">Its APKBUILD is broken: {self.e[w]}</p>\n' for w in broken])
            if broken
            else ""
        )
        parts = [
            f"<section>\n<h2>{self.e[label]}</h2>\n<p>{self.about(spec)}</p>\n{alerts}"
            f'<table class="arches">\n{ARCH_HEAD}<tbody>\n{"".join(rows)}\n</tbody>\n</table>\n'
            "<h3>Build dependencies</h3>\n"
        ]
        if deps:
            parts.append(
                f'<table class="grid deps">\n<thead><tr><th>package</th>{head}</tr></thead>\n'
                "<tbody>\n"
            )
            for sr, name in sorted(deps):
                row = self.dep_rows.get((branch, sr, name))
                if row is None:
                    row = self.dep_rows[(branch, sr, name)] = self.dep_row(branch, sr, name, arches)
                parts.append(row)
            parts.append("</tbody>\n</table>\n")
        else:
            parts.append("<p>None inside pmaports.</p>\n")
        parts.append("</section>\n")
        return "".join(parts)

    def dep_row(self, branch: str, splitrepo: str, name: str, arches: tuple[str, ...]) -> str:
        """A dependency in the table of its dependents: link and grid cells."""
        found = self.table.get((branch, splitrepo, name))
        cells = found.cells if found is not None else empty_cells(len(arches))
        label = esc(name + (f" ({splitrepo})" if splitrepo else ""))
        if (branch, name) not in self.existing:  # outside pmaports: no page to link
            return f"<tr><th>{label}</th>{cells}</tr>\n"
        href = self.root + esc(package_href(branch, name))
        return f'<tr><th><a href="{href}">{label}</a></th>{cells}</tr>\n'

    def held(self, hold: Hold) -> str:
        """Who holds the package, where, since when, until when and why."""
        e = self.e
        where = f" on {e[hold.arch]}" if hold.arch else ""
        since = iso(hold.since)
        until = iso(hold.expires)
        end = f', until <time datetime="{until}">{until}</time>' if until else ""
        return (
            f'<p class="held"><span class="letter">{PkgState.HELD.letter}</span> '
            f'Held{where} by {e[hold.who]} since <time datetime="{since}">{since}</time>'
            f"{end}: {e[hold.why]}</p>\n"
        )

    def arch_row(self, status: PkgStatus) -> str:
        """State (a retrying one with its next try), reason, desired/WIP/final
        versions and log of one arch."""
        e = self.e
        wip, final = self.site.versions.get((status.repo, status.pkgname), ("", ""))
        log = f'<a href="../../logs/{e[status.job_id]}.log">log</a>' if status.job_id else ""
        start, middle = ARCH_ROW_PIECES[status.state]
        if status.next_try_at and status.state is RETRYING:
            when = iso(status.next_try_at)
            middle += f'<br>next try at <time datetime="{when}">{when}</time>'
        return (
            f"{start}{e[status.repo.arch]}{middle}</td>"
            f"<td>{e[status.reason]}</td><td>{e[status.version] or DASH}</td>"
            f"<td>{e[wip] or DASH}</td><td>{e[final] or DASH}</td>"
            f"<td>{log}</td></tr>\n"
        )

    def about(self, spec: PkgSpec | None) -> str:
        """Description, web link (http(s) URLs only: never javascript: etc.), APKBUILD
        path. The description escaped once per pass (every branch repeats it)."""
        if spec is None:
            return ""
        text = self.e[spec.description]
        if spec.url.lower().startswith(("https://", "http://")):
            url = esc(spec.url)
            text += f' {DASH} <a href="{url}" rel="nofollow noopener">{url}</a>'
        elif spec.url:
            text += f" {DASH} {esc(spec.url)}"
        if spec.path:
            text += f" {DASH} <code>{esc(spec.path)}/APKBUILD</code>"
        return text

    def needed_by(self, branch: str, reverse: Iterable[tuple[str, str]]) -> str:
        """Reverse dependencies, without their states: a package's state change must
        not rewrite the pages of everything it depends on."""
        links = []
        for sr, name in reverse:
            link = self.links.get((branch, sr, name))
            if link is None:
                label = name + (f" ({sr})" if sr else "")
                link = self.links[(branch, sr, name)] = (
                    f'<a href="{self.root}{esc(package_href(branch, name))}">{esc(label)}</a>'
                )
            links.append(link)
        if not links:
            return "<section>\n<h2>Needed by</h2>\n<p>Nothing inside pmaports.</p>\n</section>\n"
        return (
            f'<section>\n<h2>Needed by</h2>\n<p class="rdeps">{", ".join(links)}'
            " (their states are on their pages)</p>\n</section>\n"
        )


NO_HISTORY = (
    f'<section>\n<h2>Build history</h2>\n<table class="history">\n{HISTORY_HEAD}<tbody>\n'
    '<tr><td colspan="8">No builds yet.</td></tr>\n</tbody>\n</table>\n</section>\n'
)


def history_rows(site: SiteInput, root: str) -> dict[tuple[str, str], str]:
    """(branch, pkgname) -> its build history section, newest first."""
    rows: dict[tuple[str, str], list[JobRow]] = defaultdict(list)
    for job in sorted(site.jobs, key=lambda j: (j.submitted_at, j.key), reverse=True):
        intent = job.key.intent
        if intent.kind is JobKind.BUILD:
            found = rows[(intent.repo.branch, intent.pkgname)]
            if len(found) < HISTORY_LENGTH:
                found.append(job_row(job))
    return {
        key: f'<section>\n<h2>Build history</h2>\n<table class="history">\n{HISTORY_HEAD}<tbody>\n'
        + "".join(history_row(j, root) for j in found)
        + "</tbody>\n</table>\n</section>\n"
        for key, found in rows.items()
    }


def history_row(j: JobRow, root: str) -> str:
    job = (
        f'<a href="{esc(j.url)}">{esc(j.job_id)}</a>' if j.url else f"<code>{esc(j.job_id)}</code>"
    )
    log = f'<a href="{root}{esc(j.log)}">log</a>' if j.log else ""
    return (
        f'<tr class="r-{esc(j.status)}"><td><time datetime="{esc(j.started)}">{esc(j.started)}'
        f"</time></td><td>{esc(j.repo)}</td><td>{esc(j.version)}</td><td>{j.attempt}</td>\n"
        f"<td>{esc(j.status)}</td><td>{esc(j.duration)}</td><td>{job}</td>\n"
        f"<td>{log}</td></tr>\n"
    )
