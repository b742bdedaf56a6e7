"""The generated site as files: links, reachability, feeds, status.json, monitoring.txt.

Pages are parsed with the standard library's html.parser into a small tree. Every
check runs on two sites: the sample tree converged (one package failing on
purpose), and the same with a broken APKBUILD and a package that needs it, a
held package, a paused arch and operator actions applied, refused and without
effect. A tiny clean site covers the "nothing failed" monitoring case.
"""

from __future__ import annotations

import calendar
import gzip
import json
import posixpath
import re
import shutil
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from .command_line import run_cli
from .fake_clock import FakeClock
from .fake_daemon import fake_daemon
from .memory_jobs import JobTable
from .nginx_server import (
    CONVERGE_SECONDS,
    SAMPLE_TREE,
    SITE_URL,
    GeneratedSite,
    generate_site,
    write_config,
)

ATOM = "{http://www.w3.org/2005/Atom}"
# Files for machines, not people: they need no link from a page.
MACHINE_ONLY = {"monitoring.txt", "metrics.prom"}
VOID_TAGS = {
    "area", "base", "br", "col", "embed", "hr", "img", "input",
    "link", "meta", "source", "track", "wbr",
}  # fmt: skip
LINK_ATTRS = {"a": "href", "link": "href", "area": "href", "img": "src", "script": "src"}
LINK_ATTRS |= {"iframe": "src", "source": "src", "audio": "src", "video": "src"}


# -- a minimal DOM on html.parser ----------------------------------------------


@dataclass(eq=False)
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node | str] = field(default_factory=list)

    def iter(self, tag: str | None = None) -> Iterator[Node]:
        for child in self.children:
            if isinstance(child, Node):
                if tag is None or child.tag == tag:
                    yield child
                yield from child.iter(tag)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def ancestor(self, tag: str) -> Node | None:
        node = self.parent
        while node is not None and node.tag != tag:
            node = node.parent
        return node


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.stack[-1])
        self.stack[-1].children.append(node)
        if tag not in VOID_TAGS:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}, self.stack[-1]))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(path: Path) -> Node:
    builder = TreeBuilder()
    builder.feed(path.read_text(encoding="utf-8"))
    builder.close()
    return builder.root


# -- crawling ------------------------------------------------------------------


@dataclass
class Crawl:
    pages: dict[str, Node]  # reachable HTML pages by path relative to html_out
    reached: set[str]  # every reachable file
    broken: list[str]  # "page: href -> problem"
    links: dict[str, list[str]]  # page -> resolved relative targets


def resolve(page: str, href: str) -> str | None:
    """The html_out-relative file a relative href points at; None for external links."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc:
        return None
    if not parts.path:
        return page  # "#fragment" or "?query" only: this page
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(parts.path)))
    if parts.path.endswith("/"):
        target = posixpath.join(target, "index.html")
    return target


def crawl(html_out: Path) -> Crawl:
    result = Crawl({}, {"index.html"}, [], {})
    todo = ["index.html"]
    while todo:
        page = todo.pop()
        if page in result.pages:
            continue
        tree = parse_html(html_out / page)
        result.pages[page] = tree
        result.links[page] = []
        for node in tree.iter():
            attr = LINK_ATTRS.get(node.tag)
            if attr is None or attr not in node.attrs:
                continue
            href = node.attrs[attr].strip()
            scheme = urlsplit(href).scheme.lower()
            if scheme not in ("", "http", "https", "mailto"):
                result.broken.append(f"{page}: {href} (scheme {scheme!r} not allowed)")
                continue
            target = resolve(page, href)
            if target is None:
                continue
            if target == ".." or target.startswith("../") or target.startswith("/"):
                result.broken.append(f"{page}: {href} -> leaves the site")
                continue
            if not (html_out / target).is_file():
                result.broken.append(f"{page}: {href} -> {target} does not exist")
                continue
            result.links[page].append(target)
            result.reached.add(target)
            if target.endswith(".html") and target not in result.pages:
                todo.append(target)
    return result


# -- the sites -----------------------------------------------------------------

BROKEN = "badver"  # an APKBUILD whose pkgver is no apk version
NEEDS_BROKEN = "needs-badver"  # builds on it: waits for it
HELD = "postmarketos-ui-demo"
OPERATIONS = (
    ("hold", "--branch", "main", HELD, "--why", "a <b>bad</b> & 'odd' upgrade", "--who", "ana"),
    ("pause", "--branch", "main", "--arch", "armv7", "--why", "builder maintenance"),
    ("release", "--branch", "main", "hello-x86", "--why", "never held"),  # a no-op
    ("remove-branch", "--branch", "main", "--why", "still built"),  # refused
)


def add_broken_packages(pmaports: Path) -> None:
    for name, text in (
        (BROKEN, f'pkgname={BROKEN}\npkgver=1.0_foo\npkgrel=0\narch="all"\nlicense="MIT"\n'),
        (
            NEEDS_BROKEN,
            f'pkgname={NEEDS_BROKEN}\npkgver=1.0\npkgrel=0\narch="all"\nlicense="MIT"\n'
            f'makedepends="{BROKEN}"\n',
        ),
    ):
        (pmaports / "main" / name).mkdir()
        (pmaports / "main" / name / "APKBUILD").write_text(text, encoding="utf-8")


def operated_site(root: Path) -> GeneratedSite:
    """The sample tree with a broken package and its dependent, converged after the
    operations of OPERATIONS were asked for."""
    pmaports = root / "pmaports"
    shutil.copytree(SAMPLE_TREE, pmaports)
    add_broken_packages(pmaports)
    config = write_config(root, pmaports)
    for operation in OPERATIONS:
        done = run_cli(*operation, "--config", config.source)
        assert done.returncode == 0, done.stderr
    clock = FakeClock(time.time())
    started = clock()
    daemon = fake_daemon(config, clock, JobTable(root / "memory-jobs"))
    result = daemon.converge(max_seconds=CONVERGE_SECONDS)
    return GeneratedSite(root, pmaports, config, result, started, clock())


@pytest.fixture(scope="module", params=["sample", "operated"])
def generated_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> GeneratedSite:
    """The sample tree converged (main/x86_64/hello-x86 failing), then the same with
    broken, held and paused packages and operations."""
    root = tmp_path_factory.mktemp(request.param)
    return operated_site(root) if request.param == "operated" else generate_site(root)


@pytest.fixture(scope="module")
def site_crawl(generated_site: GeneratedSite) -> Crawl:
    return crawl(generated_site.html_out)


def site_files(html_out: Path) -> list[str]:
    """Every file of the site a visitor could want: no logs, dot-files or .gz twins."""
    found = []
    for path in sorted(html_out.rglob("*")):
        rel = path.relative_to(html_out).as_posix()
        if not path.is_file() or rel.startswith("logs/"):
            continue
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        if rel.endswith(".gz") and (html_out / rel.removesuffix(".gz")).is_file():
            continue
        found.append(rel)
    return found


def test_every_relative_link_resolves(site_crawl: Crawl) -> None:
    assert site_crawl.pages, "index.html was not crawled"
    assert not site_crawl.broken, "\n".join(site_crawl.broken)


def test_every_html_page_is_reachable(generated_site: GeneratedSite, site_crawl: Crawl) -> None:
    pages = [p for p in site_files(generated_site.html_out) if p.endswith(".html")]
    for required in (
        "index.html",
        "queue.html",
        "failures.html",
        "operations.html",
        "branch/main.html",
        "package/main/hello-x86.html",
    ):
        assert required in pages, f"the site has no {required}"
    unreachable = sorted(set(pages) - set(site_crawl.pages))
    assert not unreachable, f"not linked from any page reachable from index.html: {unreachable}"


def test_every_other_file_is_reachable(generated_site: GeneratedSite, site_crawl: Crawl) -> None:
    files = site_files(generated_site.html_out)
    for required in (
        "feed.atom",
        "feeds/main.atom",
        "status.json",
        "status/main.json",
        "badge.svg",
        "monitoring.txt",
        "metrics.prom",
        "static/style.css",
        "static/filter.js",
        "static/stale.js",
    ):
        assert required in files, f"the site has no {required}"
    others = {f for f in files if not f.endswith(".html")} - MACHINE_ONLY
    unreachable = sorted(others - site_crawl.reached)
    assert not unreachable, f"not linked from any reachable page: {unreachable}"


def test_every_page_links_the_stylesheet_and_has_a_footer(
    generated_site: GeneratedSite, site_crawl: Crawl
) -> None:
    earliest = int(generated_site.started) - 1
    latest = int(generated_site.finished) + 1
    for page, tree in sorted(site_crawl.pages.items()):
        sheets = [
            resolve(page, node.attrs.get("href", ""))
            for node in tree.iter("link")
            if "stylesheet" in node.attrs.get("rel", "").split()
        ]
        assert "static/style.css" in sheets, f"{page}: stylesheets {sheets}"
        for node in tree.iter("link"):
            if "stylesheet" in node.attrs.get("rel", "").split():
                assert not urlsplit(node.attrs["href"]).netloc, f"{page}: absolute stylesheet"
                assert not node.attrs["href"].startswith("/"), f"{page}: root-relative stylesheet"
        footers = list(tree.iter("footer"))
        assert len(footers) == 1, f"{page}: {len(footers)} <footer>"
        times = [t.attrs.get("datetime") or t.text() for t in footers[0].iter("time")]
        assert times, f"{page}: the footer has no <time>: {footers[0].text()!r}"
        when = parse_utc(times[0])
        assert earliest <= when <= latest, f"{page}: footer time {times[0]} is not the pass time"


def test_ids_are_unique_per_page(site_crawl: Crawl) -> None:
    for page, tree in site_crawl.pages.items():
        ids = Counter(n.attrs["id"] for n in tree.iter() if "id" in n.attrs)
        assert not [i for i, n in ids.items() if n > 1], f"{page}: duplicate ids {ids}"


def test_gz_twins_match_their_files(generated_site: GeneratedSite) -> None:
    """nginx's gzip_static serves the twin as the file: same bytes, same mtime."""
    for twin in sorted(generated_site.html_out.rglob("*.gz")):
        plain = twin.with_suffix("")
        if not plain.is_file():
            continue
        assert gzip.decompress(twin.read_bytes()) == plain.read_bytes(), f"stale {twin.name}"
        assert int(twin.stat().st_mtime) == int(plain.stat().st_mtime), twin.name


# -- feeds ---------------------------------------------------------------------


RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def parse_utc(text: str) -> int:
    """Seconds since the epoch of an RFC 3339 / ISO 8601 UTC time (Z)."""
    assert RFC3339.fullmatch(text), f"not an RFC 3339 time: {text!r}"
    assert text.endswith("Z"), f"not UTC: {text!r}"
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))


def required_text(element: ET.Element, name: str, where: str) -> str:
    child = element.find(ATOM + name)
    assert child is not None, f"{where}: no <{name}>"
    text = (child.text or "").strip()
    assert text, f"{where}: empty <{name}>"
    return text


def feeds(html_out: Path) -> list[Path]:
    return [html_out / "feed.atom", *sorted((html_out / "feeds").glob("*.atom"))]


def test_feeds_are_atom_1_0(generated_site: GeneratedSite) -> None:
    html_out = generated_site.html_out
    found = feeds(html_out)
    assert (html_out / "feeds" / "main.atom") in found
    for path in found:
        where = path.relative_to(html_out).as_posix()
        root = ET.parse(path).getroot()
        assert root.tag == ATOM + "feed", f"{where}: root is {root.tag}"
        feed_id = required_text(root, "id", where)
        assert urlsplit(feed_id).scheme, f"{where}: id {feed_id!r} is not an IRI"
        required_text(root, "title", where)
        updated = parse_utc(required_text(root, "updated", where))
        entries = root.findall(ATOM + "entry")
        assert entries, f"{where}: no entries after a converge"
        ids = []
        for number, entry in enumerate(entries):
            label = f"{where} entry {number}"
            ids.append(required_text(entry, "id", label))
            assert urlsplit(ids[-1]).scheme, f"{label}: id {ids[-1]!r} is not an IRI"
            required_text(entry, "title", label)
            assert parse_utc(required_text(entry, "updated", label)) <= updated + 1
            links = entry.findall(ATOM + "link")
            assert links, f"{label}: no <link>"
            for link in links:
                href = link.get("href", "")
                assert href, f"{label}: <link> without href"
                assert_site_target(html_out, href, label, base=where)
        duplicates = [i for i, n in Counter(ids).items() if n > 1]
        assert not duplicates, f"{where}: duplicate entry ids {duplicates}"


def assert_site_target(html_out: Path, href: str, where: str, base: str = "") -> None:
    """A link into the site (absolute under SITE_URL, or relative) names an existing file."""
    if href.startswith(SITE_URL):
        rel = unquote(urlsplit(href[len(SITE_URL) :]).path) or "index.html"
    elif urlsplit(href).scheme:
        return  # somewhere else (a job service, upstream)
    else:
        resolved = resolve(base, href)
        assert resolved is not None
        rel = resolved
    if rel.endswith("/"):
        rel += "index.html"
    assert (html_out / rel).is_file(), f"{where}: {href} -> {rel} does not exist"


# -- status.json against the index page -----------------------------------------


def load_status(html_out: Path, name: str = "status.json") -> dict[str, Any]:
    document: dict[str, Any] = json.loads((html_out / name).read_text(encoding="utf-8"))
    return document


def every_package(html_out: Path, status: dict[str, Any]) -> list[dict[str, Any]]:
    """Every package row of the branches of `status`: its branches' package documents."""
    rows: list[dict[str, Any]] = []
    for name, branch in status["branches"].items():
        for path in branch["package_documents"]:
            document = load_status(html_out, path)
            assert document["branch"] == name, path
            rows += document["packages"]
    return rows


def index_counts(tree: Node, states: list[str]) -> tuple[dict[str, dict[str, int]], list[Any]]:
    """Per-repository counts and per-table totals, as the index page's tables show them.

    A column counts the state its header cell names in `data-state` (the header
    reads the state in words). Columns whose state no package of the branch has
    are left out: a state without a column counts 0. Body rows are keyed by
    their first cell (the repository); a footer row is that table's total.
    Returns ({repo: {state: n}}, [(repos, totals)]).
    """
    rows: dict[str, dict[str, int]] = {}
    tables: list[Any] = []
    for table in tree.iter("table"):
        thead = next(table.iter("thead"), None)
        if thead is None:
            continue
        header = next(thead.iter("tr"))
        cells = [c for c in header.children if isinstance(c, Node)]
        columns = {
            i: c.attrs["data-state"] for i, c in enumerate(cells) if c.attrs.get("data-state")
        }
        if not columns:
            continue
        for i, state in columns.items():
            assert state in states, state
            assert state in cells[i].text(), f"the header of {state} does not say it in words"

        def counts(row: Node, columns: dict[int, str] = columns) -> dict[str, int]:
            cells = [c for c in row.children if isinstance(c, Node) and c.tag in ("td", "th")]
            shown = {state: int(cells[i].text().strip()) for i, state in columns.items()}
            return {state: shown.get(state, 0) for state in states}

        repos = []
        for body in table.iter("tbody"):
            for row in body.iter("tr"):
                cells = [c for c in row.children if isinstance(c, Node)]
                repo = cells[0].text().strip()
                rows[repo] = counts(row)
                repos.append(repo)
        totals = [counts(row) for foot in table.iter("tfoot") for row in foot.iter("tr")]
        tables.append((repos, totals, set(columns.values())))
    return rows, tables


def test_status_json_counts_match_the_index_page(generated_site: GeneratedSite) -> None:
    html_out = generated_site.html_out
    status = load_status(html_out)
    states: list[str] = status["states"]
    assert {"published", "failed"} <= set(states)
    shown, tables = index_counts(parse_html(html_out / "index.html"), states)
    assert shown, "the index page shows no table with per-state counts"
    in_json = {
        repo: data["counts"]
        for branch in status["branches"].values()
        for repo, data in branch["repos"].items()
    }
    assert set(shown) == set(in_json), "repositories differ between index.html and status.json"
    for repo, counts in shown.items():
        for state, number in counts.items():
            assert in_json[repo][state] == number, f"{repo} {state}: page {number}, json"
        assert set(counts) == set(states), f"{repo}: the page shows only {sorted(counts)}"
    # Branch totals: the page's footer rows, the JSON's branch counts, the package lists.
    packages = every_package(html_out, status)
    by_state = Counter(p["state"] for p in packages)
    # status.json lists the packages not published, as the package documents say them.
    assert sorted(status["packages"], key=json.dumps) == sorted(
        (p for p in packages if p["state"] != "published"), key=json.dumps
    )
    for branch_name, branch in status["branches"].items():
        for state in states:
            total = sum(in_json[repo][state] for repo in branch["repos"])
            assert branch["counts"][state] == total, f"{branch_name} {state}"
    for repos, totals, columns in tables:
        branch_names = {n for n, b in status["branches"].items() if set(repos) <= set(b["repos"])}
        assert len(branch_names) == 1, f"a table mixes branches: {repos}"
        expected = status["branches"][branch_names.pop()]["counts"]
        # A state has a column exactly when a package of the branch is in it.
        assert columns == {state for state, n in expected.items() if n}, repos
        for total in totals:
            assert total == {state: expected[state] for state in total}, f"total of {repos}"
    for state in states:
        assert by_state[state] == sum(b["counts"][state] for b in status["branches"].values())
    assert by_state["failed"] == 1, "the site was built with exactly one failing package"


def test_branch_status_json_is_the_branch_part(generated_site: GeneratedSite) -> None:
    html_out = generated_site.html_out
    everything = load_status(html_out)
    branch = load_status(html_out, "status/main.json")
    assert set(branch["branches"]) == {"main"}
    assert branch["branches"]["main"] == everything["branches"]["main"]
    assert branch["packages"] == [p for p in everything["packages"] if p["branch"] == "main"]
    assert branch["packages"], "the sample has packages that are not published"
    assert every_package(html_out, branch) == [
        p for p in every_package(html_out, everything) if p["branch"] == "main"
    ]


# -- monitoring.txt ------------------------------------------------------------


HEADLINE = re.compile(
    r"(?P<count>\d+) failure\(s\) at \[(?P<title>[^\]]+)\]\((?P<url>https?://[^)\s]+)\):"
)
BULLET = re.compile(
    r"\* 📦 \[(?P<branch>[^/:\]\s]+)(?::(?P<split>[^/\]\s]+))?/(?P<arch>[^/\]\s]+)"
    r"/(?P<pkg>[^/\]\s]+)\]\((?P<link>https?://[^)\s]+)\) "
    r"\((?:try (?P<n>\d+)/(?P<max>\d+)|(?P<broken>APKBUILD broken))\)"
)


def test_monitoring_lists_the_failure(generated_site: GeneratedSite) -> None:
    html_out = generated_site.html_out
    text = (html_out / "monitoring.txt").read_text(encoding="utf-8")
    assert text.endswith("\n") and not text.endswith("\n\n"), repr(text)
    lines = text.splitlines()
    head = HEADLINE.fullmatch(lines[0])
    assert head, f"first line {lines[0]!r}"
    packages = load_status(html_out)["packages"]
    failing = [p for p in packages if p["state"] in ("failed", "broken")]
    assert [p for p in packages if p["state"] == "failed"], "hello-x86 fails on purpose"
    count = int(head["count"])
    assert count == len(failing)
    assert head["title"] == generated_site.config.site.title
    assert head["url"] == SITE_URL
    max_lines = generated_site.config.site.monitoring_max_failures
    bullets = lines[1:]
    if count > max_lines:
        assert bullets[max_lines] == "* ...", bullets
        bullets = bullets[:max_lines]
    assert len(bullets) == min(count, max_lines), f"expected one line per failure: {lines}"
    by_key = {(p["branch"], p["splitrepo"] or "", p["arch"], p["pkgname"]): p for p in failing}
    for line in bullets:
        match = BULLET.fullmatch(line)
        assert match, f"not a bpo failure line: {line!r}"
        key = (match["branch"], match["split"] or "", match["arch"], match["pkg"])
        package = by_key.get(key)
        assert package is not None, f"{line!r} is not a failed package in status.json"
        if package["state"] == "broken":
            assert match["broken"], line
        else:
            assert (int(match["n"]), int(match["max"])) == (package["tries"], package["max_tries"])
        assert match["link"].startswith(SITE_URL), match["link"]
        assert_site_target(html_out, match["link"], "monitoring.txt")
    log = next(p["log"] for p in failing if p["pkgname"] == "hello-x86")
    assert log, "the failed package has no log in status.json"
    assert f"* 📦 [main/x86_64/hello-x86]({SITE_URL}{log}) (try 1/1)" in lines


# -- what the operated site shows ---------------------------------------------------


@pytest.fixture(scope="module")
def operated(tmp_path_factory: pytest.TempPathFactory) -> GeneratedSite:
    return operated_site(tmp_path_factory.mktemp("operated-only"))


def test_the_broken_package_has_a_state_a_page_and_a_reason(operated: GeneratedSite) -> None:
    html_out = operated.html_out
    status = load_status(html_out)
    rows = [p for p in status["packages"] if p["pkgname"] == BROKEN]
    arches = operated.config.branches[0].arches
    assert sorted(p["arch"] for p in rows) == sorted(arches), "broken in every repository"
    assert all(p["state"] == "broken" and f"main/{BROKEN}/APKBUILD" in p["reason"] for p in rows)
    assert status["branches"]["main"]["counts"]["broken"] >= len(arches)
    assert status["badge"] == "failed"
    page = parse_html(html_out / f"package/main/{BROKEN}.html")
    assert f"main/{BROKEN}/APKBUILD" in page.text()
    failures = parse_html(html_out / "failures.html").text()
    assert BROKEN in failures and f"main/{BROKEN}/APKBUILD" in failures
    # Its dependent's page links to it (the crawl checks that the link resolves).
    dependent = parse_html(html_out / f"package/main/{NEEDS_BROKEN}.html")
    hrefs = {a.attrs.get("href", "") for a in dependent.iter("a")}
    assert f"../../package/main/{BROKEN}.html" in hrefs
    feed = ET.parse(html_out / "feed.atom").getroot()
    titles = [e.findtext(ATOM + "title") or "" for e in feed.iter(ATOM + "entry")]
    assert any(BROKEN in t and "broken" in t for t in titles), titles


def test_holds_pauses_and_operations_show(operated: GeneratedSite) -> None:
    html_out = operated.html_out
    status = load_status(html_out)
    held = {p["arch"]: p["state"] for p in status["packages"] if p["pkgname"] == HELD}
    assert held and set(held.values()) == {"held"}, held
    assert status["branches"]["main"]["counts"]["held"] >= len(held)
    assert [h["pkgname"] for h in status["holds"]] == [HELD]
    assert [(p["branch"], p["arch"]) for p in status["pauses"]] == [("main", "armv7")]
    index = parse_html(html_out / "index.html")
    text = index.text()
    assert "a <b>bad</b> & 'odd' upgrade" in text, "the hold's why, as text"
    assert "builder maintenance" in text
    page = parse_html(html_out / f"package/main/{HELD}.html").text()
    assert "Held by ana since" in page and "a <b>bad</b> & 'odd' upgrade" in page
    table = next(t for t in parse_html(html_out / "operations.html").iter("table"))
    outcomes = {
        tuple(c.text().strip() for c in row.iter("td"))[1]: tuple(
            c.text().strip() for c in row.iter("td")
        )[5]
        for body in table.iter("tbody")
        for row in body.iter("tr")
    }
    assert outcomes == {
        "hold": "applied",
        "pause": "applied",
        "release": "no-op",
        "remove-branch": "refused",
    }
    feed = ET.parse(html_out / "feed.atom").getroot()
    titles = [e.findtext(ATOM + "title") or "" for e in feed.iter(ATOM + "entry")]
    for operation, *_ in OPERATIONS:
        assert any(t.startswith(f"{operation} ") for t in titles), (operation, titles)
    branch_feed = ET.parse(html_out / "feeds/main.atom").getroot()
    branch_titles = [e.findtext(ATOM + "title") or "" for e in branch_feed.iter(ATOM + "entry")]
    assert any(t.startswith("hold main ") for t in branch_titles), branch_titles


@pytest.fixture(scope="module")
def clean_site(tmp_path_factory: pytest.TempPathFactory) -> GeneratedSite:
    """A tiny site (x86_64 only) where nothing fails."""
    return generate_site(tmp_path_factory.mktemp("clean"), arches=("x86_64",), fail=())


def test_monitoring_says_ok_when_nothing_failed(clean_site: GeneratedSite) -> None:
    assert clean_site.result.all_published
    assert (clean_site.html_out / "monitoring.txt").read_bytes() == b"OK\n"
    assert load_status(clean_site.html_out)["badge"] != "failed"
