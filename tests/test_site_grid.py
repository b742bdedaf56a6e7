"""A branch's grid cut into pages by name (site.grid): pages of bounded size whose
boundaries depend on the names only, every row reachable from its branch page,
every link of the cut site resolving, the state counts of the branch page leading
to grid pages filtered by state, and a package document per page holding every
package once."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model.names import RepoKey
from reconciler.model.progress import PkgState
from reconciler.site.grid import SAFE, grid_parts, label
from reconciler.site.model import SiteInput
from reconciler.site.writer import SiteWriter

from .test_site_incremental import NOW, generated
from .test_site_links import crawl, parse_html, site_files

ROWS = 8
NAME = st.text(alphabet="abcpy3-_.+XZ019", min_size=1, max_size=7).filter(
    lambda n: n[0] not in ".-"
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(NAME, st.integers(1, 3), max_size=80), st.integers(1, 12))
def test_pages_are_bounded_in_order_and_hold_every_name_once(
    counted: dict[str, int], rows: int
) -> None:
    names = sorted(counted.items())
    parts = grid_parts(names, rows)
    if sum(counted.values()) <= rows:
        assert [p.key for p in parts] == [""], "what fits is one page: the branch page"
        return
    assert len({p.key for p in parts}) == len(parts), "a page's file is its own"
    held: list[str] = []
    for part in parts:
        on_page = [n for n, _ in names if part.lowest <= n <= part.highest]
        assert on_page and on_page[0] == part.lowest and on_page[-1] == part.highest
        assert part.rows == sum(counted[n] for n in on_page)
        assert part.rows <= rows or len(on_page) == 1, "bounded, unless one name has more"
        assert on_page[0].startswith(part.first) and on_page[-1].startswith(part.last or part.first)
        assert set(part.key) <= SAFE | set("_0123456789abcdef"), part.key
        assert not part.key.startswith("."), part.key
        held += on_page
    assert held == [n for n, _ in names], "every name on one page, the pages in order"


def test_the_cut_depends_on_names_alone_and_stays_local() -> None:
    """Names only decide the pages; a new name moves only pages of its first letter."""
    rng = random.Random(4)
    letters = "abcdefghij"
    names = sorted({rng.choice(letters) + rng.choice(letters) + str(i) for i in range(400)})
    parts = grid_parts([(n, 1) for n in names], 20)
    assert parts == grid_parts([(n, 1) for n in names], 20)
    grown = sorted([*names, "cc-new"])
    after = grid_parts([(n, 1) for n in grown], 20)
    assert [p for p in parts if p.first[0] != "c"] == [p for p in after if p.first[0] != "c"]


def test_labels_name_the_range() -> None:
    parts = grid_parts([(f"{c}x", 1) for c in "abcdefgh"], 3)
    assert [label(p) for p in parts] == ["a–c", "d–f", "g–h"]


# -- a site whose branches are cut into pages ---------------------------------------


def cut_site(tmp_path: Path, packages: int = 60) -> tuple[Path, SiteWriter, SiteInput]:
    site = generated(packages)
    out = tmp_path / "site"
    writer = SiteWriter(out, grid_rows=ROWS)
    writer.render(site, NOW)
    return out, writer, site


def grid_pages(out: Path, branch: str) -> dict[str, list[str]]:
    """The grid pages the branch page lists, in its order, with their rows' names."""
    index = parse_html(out / f"branch/{branch}.html")
    table = next(t for t in index.iter("table") if t.attrs.get("id") == "grid-index")
    pages: dict[str, list[str]] = {}
    for row in next(table.iter("tbody")).iter("tr"):
        link = next(row.iter("a"))
        page = link.attrs["href"].removeprefix("../")
        names = [
            r.attrs["data-name"]
            for r in parse_html(out / page).iter("tr")
            if "pkg" in r.classes() and r.ancestor("table") is not None
        ]
        assert names, f"{page} has no rows"
        assert (row.attrs["data-lowest"], row.attrs["data-highest"]) == (names[0], names[-1])
        assert int(next(c for c in row.iter("td")).text()) == len(names)
        pages[page] = names
    return pages


def test_every_row_is_reachable_from_its_branch_page_once(tmp_path: Path) -> None:
    out, _, site = cut_site(tmp_path)
    for branch in site.branches:
        pages = grid_pages(out, branch.name)
        assert len(pages) > 1
        listed = [n for names in pages.values() for n in names]
        expected = sorted({s.pkgname for s in site.plan.packages if s.repo.branch == branch.name})
        assert listed == expected, "every package, once, in order"
        on_disk = {p.as_posix() for p in (out / "branch" / branch.name).glob("*.html")}
        assert {f"{out.as_posix()}/{p}" for p in pages} == on_disk, "no page the branch misses"


def test_rows_keep_their_pages_when_only_states_change(tmp_path: Path) -> None:
    out, writer, site = cut_site(tmp_path)
    before = grid_pages(out, "main")
    rng = random.Random(2)
    statuses = list(site.plan.packages)
    for _ in range(5):  # one pass after another, each changing a few states
        for i in rng.sample(range(len(statuses)), 25):
            state = rng.choice(list(PkgState))
            statuses[i] = replace(statuses[i], state=state, reason=f"now {state}")
        site = replace(site, plan=replace(site.plan, packages=tuple(statuses)))
        writer.render(site, NOW + 60)
        assert grid_pages(out, "main") == before


def test_a_new_package_finds_its_page_and_a_gone_one_leaves_none(tmp_path: Path) -> None:
    out, writer, _ = cut_site(tmp_path, 40)
    grown = generated(41)  # pkg-00040 more
    writer.render(grown, NOW + 60)
    assert "pkg-00040" in [n for names in grid_pages(out, "main").values() for n in names]
    shrunk = generated(20)
    writer.render(shrunk, NOW + 120)
    pages = grid_pages(out, "main")
    assert [n for names in pages.values() for n in names] == [f"pkg-{i:05d}" for i in range(20)]
    left = {f"branch/main/{p.name}" for p in (out / "branch/main").glob("*.html")}
    assert left == set(pages), "the pages of the old cut are gone"
    documents = {f"status/main/{p.name}" for p in (out / "status/main").glob("*.json")}
    listed = json.loads((out / "status.json").read_text())["branches"]["main"]
    assert documents == set(listed["package_documents"])
    fresh = tmp_path / "fresh"
    SiteWriter(fresh, grid_rows=ROWS).render(shrunk, NOW + 120)
    assert sorted(site_files(out)) == sorted(site_files(fresh))


def test_every_link_of_a_cut_site_resolves_and_every_file_is_reached(tmp_path: Path) -> None:
    out, _, _ = cut_site(tmp_path)
    found = crawl(out)
    assert not found.broken, "\n".join(found.broken)
    files = set(site_files(out)) - {"monitoring.txt", "metrics.prom"}
    assert not files - found.reached - set(found.pages), sorted(files - found.reached)


def test_state_counts_of_the_branch_page_lead_to_that_state_on_a_grid_page(
    tmp_path: Path,
) -> None:
    out, writer, site = cut_site(tmp_path)
    failed = {"pkg-00003", "pkg-00041"}
    statuses = tuple(
        replace(s, state=PkgState.FAILED, reason="exit code 1")
        if s.pkgname in failed and s.repo == RepoKey("main", "", "armv7")
        else s
        for s in site.plan.packages
    )
    writer.render(replace(site, plan=replace(site.plan, packages=statuses)), NOW + 60)
    index = (out / "branch/main.html").read_text()
    links = re.findall(r'href="\.\./(branch/main/[^"#]+)#state=failed">(\d+)<', index)
    assert len(links) == 2 and all(n == "1" for _, n in links)
    for page, _ in links:
        html = (out / page).read_text()
        assert html.count('class="cell s-failed"') == 1, page
        assert 'id="filter-state"' in html and 'value="failed"' in html


def test_package_documents_hold_every_package_once(tmp_path: Path) -> None:
    out, _, site = cut_site(tmp_path)
    status = json.loads((out / "status.json").read_text())
    rows = []
    for name, branch in status["branches"].items():
        for path in branch["package_documents"]:
            document = json.loads((out / path).read_text())
            assert document["branch"] == name
            rows += document["packages"]
    seen = Counter((r["repo"], r["pkgname"]) for r in rows)
    assert seen == Counter((str(s.repo), s.pkgname) for s in site.plan.packages)
    assert status["packages"] == [], "every package is published: status.json lists none"
