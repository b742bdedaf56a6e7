"""The site's view model kept from pass to pass: a snapshot in, what changed out.

Pure. At Alpine's size a snapshot holds hundreds of thousands of package states,
and a pass usually changes a handful: SiteState compares each snapshot with the
one before and updates only what those changes touch, so that one changed
package costs the same whatever the size of the distribution. It keeps:

- the grid's rows (a package's statuses per arch, site.model.GridRow) and each
  branch's grid cut into pages (site.grid): a changed status makes its row
  again and marks its grid page, whose model and package document are the only
  ones built again;
- each repository's packages per state (summaries, badge, the queue page's
  counts), changed by one for each status that changes;
- the packages that are not published (the front page's list, in order, and
  status.json), in trouble (the failures page), waiting (the queue page) and
  raising the alarm (monitoring.txt, in the plan's order): those pages are built
  again only when a change touches their set;
- which package pages exist, with their split repositories, and what the
  package pages read from the specs (site.package.SpecIndex), section by section.

The snapshot's statuses are compared in slices (tuple comparison, in C, which
skips identical objects): the common start and end of the old and the new
tuple are found in a few hundred comparisons of slices, and only what lies
between is looked at one by one. A plan that makes new status objects for
unchanged packages still works, at the cost of comparing them.

Each `update` returns the pages that may have changed (every page, the first
time): the writer compares their models with those it last wrote. `build_pages`
is a fresh state's first update: every file of the site for one snapshot.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from reconciler.model.jobs import JobObservation
from reconciler.model.names import RepoKey
from reconciler.model.progress import PkgState, PkgStatus
from reconciler.site.documents import (
    PackageRows,
    package_document,
    package_document_path,
    status_documents,
)
from reconciler.site.feeds import OPERATIONS_PAGE, badge_of, feed_data, monitoring_of
from reconciler.site.grid import GRID_PAGE_ROWS, GridPart, grid_parts, label, part_of
from reconciler.site.images_status import IMAGES_PAGE, images_data
from reconciler.site.model import (
    ALARM_STATES,
    PROBLEM_STATES,
    STATE_INDEX,
    STATES,
    BranchInfo,
    BranchSummary,
    CellTable,
    JobRow,
    Links,
    LogLinks,
    SiteInput,
    grid_row,
    running_jobs,
    summaries_of,
)
from reconciler.site.package import (
    PackagePage,
    PackagePages,
    SpecIndex,
    history_rows,
    package_pages,
)
from reconciler.site.pages import (
    INDEX_UNPUBLISHED,
    WAITS,
    BranchData,
    FailureCard,
    GridPageData,
    Page,
    PartLink,
    SitePages,
    TextData,
    WaitGroup,
    failure_data,
    index_data,
    operation_row,
    publish_lines,
    queue_data,
    unpublished_key,
    unpublished_rows,
    wait_groups,
)

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

SLICE = 256  # statuses compared at once
StatusKey = tuple[str, str, str, str]  # branch, splitrepo, arch, pkgname
RowKey = tuple[str, str, str]  # branch, splitrepo, pkgname
PageKey = tuple[str, str]  # branch, pkgname
PUBLISHED = PkgState.PUBLISHED


def status_key(s: PkgStatus) -> StatusKey:
    repo = s.repo
    return (repo.branch, repo.splitrepo, repo.arch, s.pkgname)


def common_prefix(a: Sequence[T], b: Sequence[T], limit: int) -> int:
    """How many items (at most `limit`) a and b start with alike."""
    i = 0
    while i < limit:
        j = min(i + SLICE, limit)
        if a[i:j] == b[i:j]:
            i = j
            continue
        while a[i] is b[i] or a[i] == b[i]:
            i += 1
        return i
    return limit


def common_suffix(a: Sequence[T], b: Sequence[T], limit: int) -> int:
    """How many items (at most `limit`) a and b end with alike."""
    n, m, k = len(a), len(b), 0
    while k < limit:
        step = min(SLICE, limit - k)
        if a[n - k - step : n - k] == b[m - k - step : m - k]:
            k += step
            continue
        while a[n - k - 1] is b[m - k - 1] or a[n - k - 1] == b[m - k - 1]:
            k += 1
        return k
    return limit


def unequal_positions(a: Sequence[T], b: Sequence[T]) -> list[int]:
    """The positions where two sequences of the same length differ."""
    found: list[int] = []
    for start in range(0, len(a), SLICE):
        end = start + SLICE
        if a[start:end] != b[start:end]:
            found += [
                i for i in range(start, min(end, len(a))) if a[i] is not b[i] and a[i] != b[i]
            ]
    return found


def changed_keys(old: Mapping[K, V], new: Mapping[K, V]) -> set[K]:
    """The keys whose values differ between two mappings (or that only one has)."""
    if old is new:
        return set()
    if len(old) == len(new):
        old_keys, new_keys = list(old), list(new)
        if old_keys == new_keys:  # the same keys in the same order: compare in slices
            values = list(new.values())
            return {new_keys[i] for i in unequal_positions(list(old.values()), values)}
    changed = {k for k, v in new.items() if k not in old or old[k] != v}
    changed.update(k for k in old if k not in new)
    return changed


@dataclass(frozen=True, slots=True)
class StatusDiff:
    """The statuses that differ between two plans: (old, new) pairs, None where a
    package appeared or went. Outside [start, old_end) of the old tuple (which
    became [start, new_end) of the new one) every status is the same, at a position
    shifted by new_end - old_end after it."""

    changes: list[tuple[PkgStatus | None, PkgStatus | None]]
    places: list[int]  # each change's place in the new tuple, unless `moved`
    start: int
    old_end: int
    new_end: int
    moved: bool  # places within the window changed: packages appeared or went


def status_diff(old: tuple[PkgStatus, ...], new: tuple[PkgStatus, ...]) -> StatusDiff:
    if old is new:
        return StatusDiff([], [], 0, 0, 0, False)
    if not old:
        return StatusDiff([(None, s) for s in new], [], 0, 0, len(new), True)
    shorter = min(len(old), len(new))
    start = common_prefix(old, new, shorter)
    end = common_suffix(old, new, shorter - start)
    a, b = old[start : len(old) - end], new[start : len(new) - end]
    window = (start, len(old) - end, len(new) - end)
    if len(a) == len(b):
        unequal = unequal_positions(a, b)
        pairs: list[tuple[PkgStatus | None, PkgStatus | None]] = [(a[i], b[i]) for i in unequal]
        if all(x.repo == y.repo and x.pkgname == y.pkgname for x, y in pairs):  # type: ignore[union-attr]
            return StatusDiff(pairs, [start + i for i in unequal], *window, False)
    olds = {status_key(s): s for s in a}
    changes: list[tuple[PkgStatus | None, PkgStatus | None]] = []
    for s in b:
        o = olds.pop(status_key(s), None)
        if o is not s and o != s:
            changes.append((o, s))
    changes += [(o, None) for o in olds.values()]
    return StatusDiff(changes, [], *window, True)


@dataclass(slots=True)
class BranchGrid:
    """A branch's grid cut into pages (site.grid): each page's (name, splitrepo)
    in order, its rows' model and counts as last built."""

    parts: tuple[GridPart, ...]
    lowest: list[str]
    members: list[list[tuple[str, str]]]  # per page: (pkgname, splitrepo), sorted
    models: list[GridPageData | None]  # None: to build
    counts: list[tuple[int, ...]]
    problems: list[int]


def page_path(branch: str, part: GridPart) -> str:
    """A grid page's file ("" key: the branch page itself)."""
    return f"branch/{branch}/{part.key}.html" if part.key else f"branch/{branch}.html"


def pkg_page_path(page: PageKey) -> str:
    return f"package/{page[0]}/{page[1]}.html"


class SiteState:
    """The view model of the last snapshot, and what the next one changes (see the
    module's docstring)."""

    def __init__(self, grid_rows: int = GRID_PAGE_ROWS) -> None:
        self.grid_rows = grid_rows
        self.paths: set[str] = set()  # every page and document of the site
        self._site: SiteInput | None = None

    def _reset(self, site: SiteInput) -> None:
        self._layout_of = layout_of(site.branches)
        self._branches = site.branches
        self._arch_index = {b.name: {a: i for i, a in enumerate(b.arches)} for b in site.branches}
        self._arches = {b.name: b.arches for b in site.branches}
        self._counts: dict[RepoKey, list[int]] = {}
        self._sections: dict[PageKey, dict[str, int]] = {}  # package pages: split repos
        self._cells: dict[RowKey, list[PkgStatus | None]] = {}
        self.rows: CellTable = {}
        self._names: dict[str, dict[str, int]] = {b.name: {} for b in site.branches}
        self._grids: dict[str, BranchGrid] = {}
        self._branch_parts: dict[str, tuple[PartLink, ...]] = {}
        self._open: dict[StatusKey, PkgStatus] = {}
        self._open_order: list[tuple[bool, bool, str, str, str, str]] = []
        # per branch: the rows of status.json of its packages that are not published
        self._open_rows = {b.name: OrderedRows() for b in site.branches}
        self._document_inputs: dict[str, tuple[object, ...]] = {}  # status/<branch>.json's
        self._json = PackageRows()
        self._bulk = True  # the first update: sort once at the end instead of inserting in order
        self._problems: dict[StatusKey, PkgStatus] = {}
        self._waiting: dict[StatusKey, PkgStatus] = {}
        self._alarms: dict[StatusKey, tuple[int, PkgStatus]] = {}  # with its place in the plan
        self._failing: list[PkgStatus] | None = None
        self._failures: tuple[FailureCard, ...] | None = None
        self._groups: tuple[WaitGroup, ...] | None = None
        self._index = SpecIndex({}, {})
        self._history: dict[PageKey, tuple[JobRow, ...]] = {}
        self._logs = LogLinks(())
        self.paths = set()
        self._site = None

    # --- a snapshot in ----------------------------------------------------------------
    def update(self, site: SiteInput) -> SitePages:
        """Take the next snapshot; the pages it may have changed."""
        old = self._site
        if old is None or layout_of(site.branches) != self._layout_of:
            self._reset(site)  # other branches or arches: every page again
            old = None
        elif site.branches != self._branches:  # a new commit, say: it shows in summaries
            for was, now in zip(self._branches, site.branches, strict=True):
                if was.ignore_errors != now.ignore_errors:  # its grid pages show it
                    grid = self._grids.get(now.name)
                    if grid is not None:
                        grid.models = [None] * len(grid.parts)
            self._branches = site.branches
        self._gone: set[str] = set()
        dirty_pages: set[PageKey] = set()
        dirty_rows: set[RowKey] = set()
        self._removed_pages: set[PageKey] = set()
        diff = status_diff(old.plan.packages if old is not None else (), site.plan.packages)
        if old is None:
            self._load(site.plan.packages)
            dirty_pages.update(self._sections)
            dirty_rows.update(self._cells)
        else:
            self._apply(diff, dirty_pages, dirty_rows)
        if self._bulk:
            self._open_order.sort()
            for rows in self._open_rows.values():
                rows.sort()
            self._bulk = False
        self._place_alarms(diff, site.plan.packages)
        if old is None or not same(old.jobs, site.jobs):
            self._logs = LogLinks(site.jobs)
            history = history_rows(site)
            dirty_pages.update(changed_keys(self._history, history))
            self._history = history
            self._failures = None
        if old is None or old.specs is not site.specs:
            self._read_specs(old, site, dirty_pages)
        if old is not None and old.versions is not site.versions:
            dirty_pages.update(
                (repo.branch, name) for repo, name in changed_keys(old.versions, site.versions)
            )
        if old is not None and old.holds != site.holds:
            before, after = Counter(old.holds), Counter(site.holds)  # a hold may be listed twice
            dirty_pages.update(
                (h.branch, h.pkgname) for h in before.keys() | after if before[h] != after[h]
            )
        if old is not None and old.plan.queue != site.plan.queue:
            self._groups = None
        self._site = site
        pages: dict[str, Page] = {}
        documents: dict[str, bytes] = {}
        self._grid_pages(site, dirty_rows, pages, documents)
        built = self._package_pages(site, dirty_pages, dirty_rows)
        self._fixed_pages(site, pages, documents)
        gone = frozenset(p for p in self._gone if p not in pages and p not in documents)
        added = {path for path in (*pages, *documents, *built) if path not in self.paths}
        self.paths |= added
        self.paths -= gone
        return SitePages(pages, PackagePages(built, gone), documents, gone, frozenset(added))

    def _apply(self, diff: StatusDiff, dirty_pages: set[PageKey], dirty_rows: set[RowKey]) -> None:
        """Count the changed statuses out and in, and note the rows and pages they touch.

        Long because it is the one loop over the changes (every status, the first
        time): each structure is updated inline."""
        counts, sections, cells = self._counts, self._sections, self._cells
        arch_index = self._arch_index
        state_index = STATE_INDEX
        problem, alarm = PROBLEM_STATES, ALARM_STATES
        repo: RepoKey | None = None
        repo_counts: list[int] = []
        positions: dict[str, int] | None = None
        for o, n in diff.changes:
            for s, step in ((o, -1), (n, 1)):
                if s is None:
                    continue
                if s.repo is not repo:  # statuses come grouped by repository
                    repo = s.repo
                    repo_counts = counts.get(repo) or counts.setdefault(repo, [0] * len(STATES))
                    positions = arch_index.get(repo.branch)
                branch, splitrepo, name = repo.branch, repo.splitrepo, s.pkgname
                state = s.state
                repo_counts[state_index[state]] += step
                page = (branch, name)
                dirty_pages.add(page)
                splits = sections.get(page)
                if splits is None:
                    splits = sections[page] = {}
                    self._removed_pages.discard(page)
                splits[splitrepo] = splits.get(splitrepo, 0) + step
                if not splits[splitrepo]:
                    del splits[splitrepo]
                    if not splits:
                        del sections[page]
                        self._removed_pages.add(page)
                if positions is not None:
                    index = positions.get(repo.arch)
                    if index is not None:
                        row = (branch, splitrepo, name)
                        found = cells.get(row)
                        if found is None:
                            found = cells[row] = [None] * len(positions)
                        # its cell, whatever object of equal value the last pass put there
                        found[index] = s if step > 0 else None
                        dirty_rows.add(row)
                if state is not PUBLISHED:
                    self._count_open(s, step, state in problem, state in alarm)

    def _load(self, statuses: tuple[PkgStatus, ...]) -> None:
        """_apply for the first snapshot: every status counted in, nothing out."""
        counts, sections, cells = self._counts, self._sections, self._cells
        arch_index = self._arch_index
        state_index = STATE_INDEX
        problem, alarm = PROBLEM_STATES, ALARM_STATES
        count_open = self._count_open
        repo: RepoKey | None = None
        repo_counts: list[int] = []
        positions: dict[str, int] | None = None
        index: int | None = None
        branch = splitrepo = ""
        width = 0
        for s in statuses:
            if s.repo is not repo:  # statuses come grouped by repository
                repo = s.repo
                repo_counts = counts.get(repo) or counts.setdefault(repo, [0] * len(STATES))
                positions = arch_index.get(repo.branch)
                index = positions.get(repo.arch) if positions is not None else None
                width = len(positions) if positions is not None else 0
                branch, splitrepo = repo.branch, repo.splitrepo
            name, state = s.pkgname, s.state
            repo_counts[state_index[state]] += 1
            page = (branch, name)
            splits = sections.get(page)
            if splits is None:
                sections[page] = {splitrepo: 1}
            else:
                splits[splitrepo] = splits.get(splitrepo, 0) + 1
            if index is not None:
                row = (branch, splitrepo, name)
                found = cells.get(row)
                if found is None:
                    found = cells[row] = [None] * width
                found[index] = s
            if state is not PUBLISHED:
                count_open(s, 1, state in problem, state in alarm)

    def _count_open(self, s: PkgStatus, step: int, problem: bool, alarm: bool) -> None:
        """A status that is not published, in or out of the sets of such statuses."""
        key = status_key(s)
        order = unpublished_key(s)
        rows = self._open_rows.get(key[0])
        if step > 0:
            self._open[key] = s
            if self._bulk:
                self._open_order.append(order)
            else:
                insort(self._open_order, order)
            if rows is not None:
                rows.add(key[1:], self._json.row(s), self._bulk)
        else:
            self._open.pop(key, None)
            remove_sorted(self._open_order, order)
            if rows is not None:
                rows.remove(key[1:])
        if problem:
            self._failures = None
            if step > 0:
                self._problems[key] = s
            else:
                self._problems.pop(key, None)
        if s.state in WAITS:
            self._groups = None
            if step > 0:
                self._waiting[key] = s
            else:
                self._waiting.pop(key, None)
        if alarm:
            self._failing = None  # placed by _place_alarms

    def _place_alarms(self, diff: StatusDiff, statuses: tuple[PkgStatus, ...]) -> None:
        """Keep the failed and broken statuses with their places in the plan
        (monitoring.txt lists them in its order)."""
        alarms, states = self._alarms, ALARM_STATES
        if diff.moved:  # shift those after the window, read those in it again
            start, old_end, new_end = diff.start, diff.old_end, diff.new_end
            shift = new_end - old_end
            kept = {}
            for key, (place, s) in alarms.items():
                if place >= old_end:
                    kept[key] = (place + shift, s)
                elif place < start:
                    kept[key] = (place, s)
            for place in range(start, new_end):
                s = statuses[place]
                if s.state in states:
                    kept[status_key(s)] = (place, s)
            if kept != alarms:
                self._alarms, self._failing = kept, None
            return
        for (o, n), place in zip(diff.changes, diff.places, strict=True):
            if o is not None and o.state in states:
                alarms.pop(status_key(o), None)
                self._failing = None
            if n is not None and n.state in states:
                alarms[status_key(n)] = (place, n)
                self._failing = None

    # --- specs ------------------------------------------------------------------------
    def _read_specs(self, old: SiteInput | None, site: SiteInput, dirty: set[PageKey]) -> None:
        """What the package pages read from the specs: all of it the first time,
        then the sections whose specs changed."""
        if old is None:
            self._index = SpecIndex.of(site.specs, site.branches)
            return
        sections = {
            (repo.branch, repo.splitrepo, name)
            for repo, name in changed_keys(old.specs, site.specs)
        }
        for key in sections:
            arches = self._arches.get(key[0])
            if arches is None:
                continue
            dirty.add((key[0], key[2]))
            dirty.update((key[0], name) for name in self._index.update(key, site.specs, arches))

    # --- the grid ---------------------------------------------------------------------
    def _grid_pages(
        self,
        site: SiteInput,
        dirty_rows: set[RowKey],
        pages: dict[str, Page],
        documents: dict[str, bytes],
    ) -> None:
        """Make the changed rows again, cut a branch whose names changed into pages
        again, and build the models and package documents of the grid pages whose
        rows changed; every branch page."""
        cells, rows, names = self._cells, self.rows, self._names
        relayout: set[str] = set()
        changed: dict[str, set[str]] = {}  # branch -> names whose rows changed
        for key in dirty_rows:
            found = cells[key]
            counted = names[key[0]]
            name = key[2]
            if any(s is not None for s in found):
                if key not in rows:
                    counted[name] = counted.get(name, 0) + 1
                    relayout.add(key[0])
                rows[key] = grid_row(key, found)
            else:
                del cells[key]
                if rows.pop(key, None) is not None:
                    counted[name] -= 1
                    if not counted[name]:
                        del counted[name]
                    relayout.add(key[0])
            changed.setdefault(key[0], set()).add(name)
        for branch in site.branches:
            name = branch.name
            grid = self._grids.get(name)
            if grid is None or name in relayout:
                grid = self._layout(name, grid)
            elif name in changed:
                for pkgname in changed[name]:
                    grid.models[part_of(grid.lowest, pkgname)] = None
            self._grid_models(site, branch, grid, pages, documents)

    def _layout(self, branch: str, old: BranchGrid | None) -> BranchGrid:
        """Cut the branch's grid into pages again (its names changed)."""
        counted = self._names[branch]
        parts = grid_parts(sorted(counted.items()), self.grid_rows)
        lowest = [p.lowest for p in parts]
        members: list[list[tuple[str, str]]] = [[] for _ in parts]
        rows, sections = self.rows, self._sections
        for name in sorted(counted):
            found = members[part_of(lowest, name)]
            for splitrepo in sorted(sections.get((branch, name), ())):
                if (branch, splitrepo, name) in rows:
                    found.append((name, splitrepo))
        grid = BranchGrid(
            parts, lowest, members, [None] * len(parts), [()] * len(parts), [0] * len(parts)
        )
        if old is not None:  # its pages and documents that the new cut does not have
            self._gone.update(page_path(branch, p) for p in old.parts if p.key)
            self._gone.update(package_document_path(branch, p.key) for p in old.parts)
        self._grids[branch] = grid
        self._branch_parts.pop(branch, None)
        return grid

    def _grid_models(
        self,
        site: SiteInput,
        branch: BranchInfo,
        grid: BranchGrid,
        pages: dict[str, Page],
        documents: dict[str, bytes],
    ) -> None:
        """The grid pages to build again (and their package documents)."""
        rows, name, parts = self.rows, branch.name, grid.parts
        split = len(parts) > 1 or parts[0].key != ""
        for i, part in enumerate(parts):
            if grid.models[i] is not None:
                continue
            found = tuple(
                rows[(name, splitrepo, pkgname)] for pkgname, splitrepo in grid.members[i]
            )
            numbers = [0] * len(STATES)
            problems = 0
            for row in found:
                for s in row.statuses:
                    if s is not None:
                        numbers[STATE_INDEX[s.state]] += 1
                problems += 1 if row.reasons else 0
            counts = tuple(numbers)
            document = package_document_path(name, part.key)
            previous = parts[i - 1] if i > 0 else None
            following = parts[i + 1] if i + 1 < len(parts) else None
            grid.models[i] = GridPageData(
                name,
                branch.ignore_errors,
                branch.arches,
                label(part),
                found,
                counts,
                tuple(j for j, n in enumerate(counts) if n),
                (page_path(name, previous), label(previous)) if previous else ("", ""),
                (page_path(name, following), label(following)) if following else ("", ""),
                document,
            )
            grid.counts[i], grid.problems[i] = counts, problems
            self._branch_parts.pop(name, None)
            if split:
                pages[page_path(name, part)] = Page(
                    "grid.html",
                    "../../",
                    f"{site.title}: branch {name}, {label(part)}",
                    grid.models[i],
                )
            documents[document] = package_document(
                name, self._json.rows([s for row in found for s in row.statuses])
            )
        if split and name not in self._branch_parts:
            self._branch_parts[name] = tuple(
                PartLink(
                    page_path(name, part), label(part), part.lowest, part.highest, part.rows, c, p
                )
                for part, c, p in zip(parts, grid.counts, grid.problems, strict=True)
            )

    # --- package pages ----------------------------------------------------------------
    def _package_pages(
        self, site: SiteInput, dirty: set[PageKey], dirty_rows: set[RowKey]
    ) -> dict[str, PackagePage]:
        """The package pages that may have changed: those of changed statuses and
        the pages that list them as a dependency."""
        rdeps = self._index.rdeps
        for branch, _splitrepo, name in dirty_rows:  # their rows are on their dependents' pages
            users = rdeps.get(branch, {}).get(name)
            if users:
                dirty.update((branch, user) for _, user in users)
        self._gone.update(pkg_page_path(page) for page in self._removed_pages)
        sections = self._sections
        wanted = sorted(page for page in dirty if page in sections)
        return package_pages(
            site, self.rows, self._logs, self._index, sections, wanted, self._history
        )

    # --- the other pages --------------------------------------------------------------
    def _fixed_pages(
        self, site: SiteInput, pages: dict[str, Page], documents: dict[str, bytes]
    ) -> None:
        """The pages every pass builds (their inputs are kept counted): front page,
        queue, failures, images, operations, feeds, badge, monitoring.txt, each
        branch's page, and the status documents that changed."""
        counts, logs, order = self._counts, self._logs, self._open_order
        summaries = summaries_of(site, counts)
        links = Links(self._sections, frozenset(b.name for b in site.branches))
        badge = badge_of(site, counts)
        running = running_jobs(site)
        images = images_data(site, logs)
        first = [self._open[key[2:]] for key in order[:INDEX_UNPUBLISHED]]
        unpublished = unpublished_rows(first, len(order), logs)
        if self._failures is None:
            self._failures = failure_data(self._problems.values(), site.jobs, logs)
        if self._groups is None:
            self._groups = wait_groups(self._waiting.values(), site.plan.queue)
        if self._failing is None:
            self._failing = [s for _, s in sorted(self._alarms.values(), key=lambda a: a[0])]
        title = site.title
        pages.update(
            {
                "index.html": Page(
                    "index.html",
                    "",
                    title,
                    index_data(site, summaries, links, logs, badge, running, images, unpublished),
                ),
                IMAGES_PAGE: Page(IMAGES_PAGE, "", f"{title}: images", images),
                "queue.html": Page(
                    "queue.html",
                    "",
                    f"{title}: queue",
                    queue_data(site, running, self._groups, publish_lines(site.plan, counts)),
                ),
                "failures.html": Page("failures.html", "", f"{title}: failures", self._failures),
                OPERATIONS_PAGE: Page(
                    OPERATIONS_PAGE,
                    "",
                    f"{title}: operations",
                    tuple(operation_row(r, links) for r in site.operations),
                ),
                "badge.svg": Page("badge.svg", "", "", TextData((badge,))),
                "monitoring.txt": Page(
                    "monitoring.txt", "", "", TextData(monitoring_of(site, self._failing))
                ),
                "feed.atom": Page("feed.atom", "", "", feed_data(site, None, links)),
            }
        )
        self._branch_pages(site, summaries, links, pages)
        self._status_documents(site, summaries, badge, documents)

    def _branch_pages(
        self,
        site: SiteInput,
        summaries: tuple[BranchSummary, ...],
        links: Links,
        pages: dict[str, Page],
    ) -> None:
        """Each branch's page (its grid, or the list of its grid's pages) and feed."""
        for branch, summary in zip(site.branches, summaries, strict=True):
            name = branch.name
            grid = self._grids[name]
            parts = self._branch_parts.get(name, ())
            model = grid.models[0]
            pages[f"branch/{name}.html"] = Page(
                "branch.html",
                "../",
                f"{site.title}: branch {name}",
                BranchData(
                    summary,
                    branch.arches,
                    () if parts or model is None else model.rows,
                    parts,
                    package_document_path(name, grid.parts[0].key),
                ),
            )
            pages[f"feeds/{name}.atom"] = Page("feed.atom", "", "", feed_data(site, branch, links))

    def _status_documents(
        self,
        site: SiteInput,
        summaries: tuple[BranchSummary, ...],
        badge: str,
        documents: dict[str, bytes],
    ) -> None:
        """status.json, and status/<branch>.json of the branches whose part changed."""
        shards = {
            name: tuple(package_document_path(name, part.key) for part in grid.parts)
            for name, grid in self._grids.items()
        }
        open_rows = {b.name: self._open_rows[b.name].joined() for b in site.branches}
        changed = set()
        for branch, summary in zip(site.branches, summaries, strict=True):
            name = branch.name
            inputs = (
                summary,
                open_rows[name],
                shards[name],
                tuple(h for h in site.holds if h.branch == name),
                tuple(p for p in site.pauses if p.branch == name),
                tuple(i for i in site.plan.images if i.target.branch == name),
                badge,
                site.last_pass_at,
                site.stale_after_seconds,
                site.title,
            )
            if self._document_inputs.get(name) != inputs:
                self._document_inputs[name] = inputs
                changed.add(name)
        documents.update(status_documents(site, summaries, badge, open_rows, shards, changed))


class OrderedRows:
    """Rows of a JSON array kept in the order of their keys, joined once per change."""

    def __init__(self) -> None:
        self._keys: list[tuple[str, str, str]] = []
        self._texts: list[str] = []
        self._joined: str | None = ""

    def add(self, key: tuple[str, str, str], text: str, last: bool = False) -> None:
        """Add a row (`last`: at the end, for `sort` to put in place)."""
        at = len(self._keys) if last else bisect_left(self._keys, key)
        self._keys.insert(at, key)
        self._texts.insert(at, text)
        self._joined = None

    def remove(self, key: tuple[str, str, str]) -> None:
        at = bisect_left(self._keys, key)
        if at < len(self._keys) and self._keys[at] == key:
            del self._keys[at], self._texts[at]
            self._joined = None

    def sort(self) -> None:
        pairs = sorted(zip(self._keys, self._texts, strict=True))
        self._keys = [k for k, _ in pairs]
        self._texts = [t for _, t in pairs]
        self._joined = None

    def joined(self) -> str:
        """The rows, comma-separated: the inside of the array."""
        if self._joined is None:
            self._joined = ",".join(self._texts)
        return self._joined


Sortable = TypeVar("Sortable", tuple[bool, bool, str, str, str, str], tuple[str, str, str])


def layout_of(branches: tuple[BranchInfo, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """What of the branches shapes the model: their names and arches."""
    return tuple((b.name, b.arches) for b in branches)


def remove_sorted(items: list[Sortable], item: Sortable) -> None:
    """Take `item` out of the sorted list `items`, if it is there."""
    at = bisect_left(items, item)
    if at < len(items) and items[at] == item:
        del items[at]


def same(a: tuple[JobObservation, ...], b: tuple[JobObservation, ...]) -> bool:
    return a is b or a == b


def merged(earlier: SitePages, later: SitePages) -> SitePages:
    """What two updates in a row change, as one: `later`'s models where both have
    one (they are newer), a file removed by one and added back by the other as the
    later says."""
    removed = (earlier.removed - later.added) | later.removed
    added = (earlier.added - later.removed) | later.added
    pages = {p: m for p, m in earlier.pages.items() if p not in removed} | later.pages
    built = {
        p: m for p, m in earlier.packages.built.items() if p not in removed
    } | later.packages.built
    documents = {p: d for p, d in earlier.documents.items() if p not in removed} | later.documents
    return SitePages(pages, PackagePages(built, removed), documents, removed, added)


def build_pages(site: SiteInput, grid_rows: int = GRID_PAGE_ROWS) -> SitePages:
    """Every file of the site for one snapshot."""
    return SiteState(grid_rows).update(site)
