"""deploy/nginx.conf's response headers, on a real nginx over a generated site.

Every kind of response (a page, JSON, a feed, the badge, monitoring and metrics,
a static asset with and without its version, an apk of each repository, an
index, a log, a directory listing, 404s) carries the Content-Security-Policy
(frame-ancestors in it), Referrer-Policy and nosniff exactly once, and the
Cache-Control of its kind; files revalidate with a 304. The pages link each
static asset with the fingerprint of the bytes served, and a changed asset gets
a new URL on every page, which is what makes the year-long cache safe. No
location adds a header of its own (nginx's inheritance trap). The API routes'
answers: test_nginx_edge.py; the policy in a browser: test_nginx_csp.py.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from reconciler.site.writer import TEMPLATES_DIR, SiteWriter

from .nginx_server import (
    DEPLOY_CONF,
    TIMEOUT,
    GeneratedSite,
    generated_site_fixture,  # noqa: F401 (fixture)
    nginx_url_fixture,  # noqa: F401 (fixture)
    parse_conf,
    repo_index,
    url_of,
)
from .site_inputs import one_package_site

NO_CACHE = "no-cache"
NO_STORE = "no-store"
IMMUTABLE = "public, max-age=31536000, immutable"
FINAL_APK = "public, max-age=604800"
LOG = NO_CACHE  # a running job's log grows under the same URL
STATIC_LINK = re.compile(r'(?:href|src)="((?:\.\./)*)static/([^"?]+)(\?v=([^"]*))?"')
REFERRER_POLICIES = {
    "no-referrer",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
}


def static_version_of(html_out: Path, name: str) -> str:
    """The fingerprint of the static file as served: the first 12 hex of its sha256."""
    return hashlib.sha256((html_out / "static" / name).read_bytes()).hexdigest()[:12]


def static_version(site: GeneratedSite, name: str) -> str:
    return static_version_of(site.html_out, name)


def first_log(site: GeneratedSite) -> str:
    logs = sorted(p for p in (site.html_out / "logs").glob("*.log") if p.is_file())
    assert logs, "the site has no job log"
    return logs[0].relative_to(site.html_out).as_posix()


def repo_file(site: GeneratedSite, repo: str, what: str) -> str:
    root = {"final": site.final, "wip": site.wip}[repo]
    index, index_rel = repo_index(root)
    if what == "index":
        return f"repo/{repo}/{index_rel}"
    apk = sorted(index.parent.glob("*.apk"))[0]
    return f"repo/{repo}/{apk.relative_to(root).as_posix()}"


def listing(site: GeneratedSite) -> str:
    _, index_rel = repo_index(site.final)
    return f"repo/final/{index_rel.rsplit('/', 1)[0]}/"


# kind -> (URL path relative to the root, from the site; expected status; Cache-Control)
Kind = tuple[Callable[[GeneratedSite], str], int, str]
KINDS: dict[str, Kind] = {
    "front page /": (lambda s: "", 200, NO_CACHE),
    "index.html": (lambda s: "index.html", 200, NO_CACHE),
    "branch page": (lambda s: "branch/main.html", 200, NO_CACHE),
    "package page": (lambda s: "package/main/hello-x86.html", 200, NO_CACHE),
    "status.json": (lambda s: "status.json", 200, NO_CACHE),
    "branch json": (lambda s: "status/main.json", 200, NO_CACHE),
    "feed": (lambda s: "feed.atom", 200, NO_CACHE),
    "badge": (lambda s: "badge.svg", 200, NO_CACHE),
    "monitoring": (lambda s: "monitoring.txt", 200, NO_CACHE),
    "metrics": (lambda s: "metrics.prom", 200, NO_CACHE),
    "static css, versioned": (
        lambda s: f"static/style.css?v={static_version(s, 'style.css')}",
        200,
        IMMUTABLE,
    ),
    "static js, versioned": (
        lambda s: f"static/filter.js?v={static_version(s, 'filter.js')}",
        200,
        IMMUTABLE,
    ),
    "static icon, versioned": (
        lambda s: f"static/favicon.svg?v={static_version(s, 'favicon.svg')}",
        200,
        IMMUTABLE,
    ),
    "static css, no version": (lambda s: "static/style.css", 200, NO_CACHE),
    "static css, bad version": (lambda s: "static/style.css?v=../x", 200, NO_CACHE),
    "final apk": (lambda s: repo_file(s, "final", "apk"), 200, FINAL_APK),
    "final index": (lambda s: repo_file(s, "final", "index"), 200, NO_CACHE),
    "wip apk": (lambda s: repo_file(s, "wip", "apk"), 200, NO_CACHE),
    "wip index": (lambda s: repo_file(s, "wip", "index"), 200, NO_CACHE),
    "directory listing": (listing, 200, NO_CACHE),
    "job log": (first_log, 200, LOG),
    "404 page": (lambda s: "no-such-page.html", 404, NO_STORE),
    "404 versioned static": (lambda s: "static/none.css?v=0123456789ab", 404, NO_STORE),
    "404 apk": (lambda s: "repo/final/no-such-0-r0.apk", 404, NO_STORE),
    "404 dot-file": (lambda s: ".manifest.json", 404, NO_STORE),
    "404 under /api/": (lambda s: "api/no-such-route", 404, NO_STORE),
    "redirect": (lambda s: listing(s).rstrip("/"), 301, NO_STORE),
}


def csp_directives(value: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            assert words[0].lower() not in directives, f"{words[0]} twice in the CSP"
            directives[words[0].lower()] = words[1:]
    return directives


def assert_security_headers(response: requests.Response, what: str) -> None:
    """The three security headers, once each (a duplicate would mean a location adds its own)."""
    raw = response.raw.headers
    for name in ("Content-Security-Policy", "Referrer-Policy", "X-Content-Type-Options"):
        assert len(raw.getlist(name)) == 1, f"{what}: {name}: {raw.getlist(name)}"
    csp = csp_directives(response.headers["Content-Security-Policy"])
    assert csp.get("default-src") == ["'none'"], f"{what}: {csp}"
    assert csp.get("frame-ancestors") == ["'none'"], f"{what}: {csp}"
    assert csp.get("base-uri") == ["'none'"], f"{what}: {csp}"
    assert csp.get("form-action") == ["'none'"], f"{what}: {csp}"
    for directive in ("script-src", "style-src"):
        assert csp.get(directive) == ["'self'"], f"{what}: {directive} {csp.get(directive)}"
    for sources in csp.values():
        for source in sources:
            assert source.lower() not in ("'unsafe-inline'", "'unsafe-eval'", "*"), what
    assert response.headers["Referrer-Policy"] in REFERRER_POLICIES, what
    assert response.headers["X-Content-Type-Options"] == "nosniff", what


@pytest.fixture(scope="module")
def responses(
    generated_site: GeneratedSite, nginx_url: str
) -> dict[str, tuple[str, requests.Response]]:
    """Every kind fetched once (no redirects followed): kind -> (path, response)."""
    fetched = {}
    for kind, (path_of, _, _) in KINDS.items():
        path = path_of(generated_site)
        response = requests.get(nginx_url + path, timeout=TIMEOUT, allow_redirects=False)
        fetched[kind] = (path, response)
    return fetched


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_response_has_the_security_headers(
    kind: str, responses: dict[str, tuple[str, requests.Response]]
) -> None:
    path, response = responses[kind]
    assert response.status_code == KINDS[kind][1], f"{kind} /{path}: {response.status_code}"
    assert_security_headers(response, f"{kind} /{path}")


@pytest.mark.parametrize("kind", list(KINDS))
def test_cache_control_per_kind(
    kind: str, responses: dict[str, tuple[str, requests.Response]]
) -> None:
    path, response = responses[kind]
    cache = response.raw.headers.getlist("Cache-Control")
    assert cache == [KINDS[kind][2]], f"{kind} /{path}: Cache-Control {cache}"


def test_the_policy_sent_is_the_shipped_one(
    responses: dict[str, tuple[str, requests.Response]],
) -> None:
    server = parse_conf(DEPLOY_CONF.read_text(encoding="utf-8")).find("server")
    shipped = {args[0]: args[1] for args in server.values("add_header")}
    _, response = responses["index.html"]
    assert response.headers["Content-Security-Policy"] == shipped["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == shipped["Referrer-Policy"]


def test_no_location_has_an_add_header_of_its_own() -> None:
    """nginx's trap: one add_header in a location silently drops every inherited one."""
    conf = parse_conf(DEPLOY_CONF.read_text(encoding="utf-8"))
    server = conf.find("server")
    names = {args[0] for args in server.values("add_header")}
    assert {"Content-Security-Policy", "Referrer-Policy", "X-Content-Type-Options"} <= names
    assert all(args[-1] == "always" for args in server.values("add_header"))
    for block in server.walk():
        if block is not server:
            assert not block.values("add_header"), f"add_header in {' '.join(block.words)}"
            assert not block.values("more_set_headers"), " ".join(block.words)
    assert not conf.values("add_header"), "add_header in the http context"


REVALIDATED = [
    "index.html",
    "branch page",
    "status.json",
    "feed",
    "badge",
    "metrics",
    "static css, versioned",
    "final apk",
    "wip index",
]


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
@pytest.mark.parametrize("kind", REVALIDATED)
def test_a_conditional_request_gets_304(
    kind: str, encoding: str, generated_site: GeneratedSite, nginx_url: str
) -> None:
    path = KINDS[kind][0](generated_site)
    headers = {"Accept-Encoding": encoding}
    first = requests.get(nginx_url + path, headers=headers, timeout=TIMEOUT)
    assert first.status_code == 200
    etag = first.headers.get("ETag")
    modified = first.headers.get("Last-Modified")
    assert etag and modified, f"{kind}: ETag {etag!r}, Last-Modified {modified!r}"
    assert email.utils.parsedate_to_datetime(modified)
    for condition in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
        again = requests.get(nginx_url + path, headers=headers | condition, timeout=TIMEOUT)
        assert again.status_code == 304, f"{kind} with {condition}: {again.status_code}"
        assert again.content == b""
        assert again.headers.get("Cache-Control") == first.headers["Cache-Control"], kind
        assert_security_headers(again, f"{kind} 304")
    stale = requests.get(
        nginx_url + path, headers=headers | {"If-None-Match": '"not-it"'}, timeout=TIMEOUT
    )
    assert stale.status_code == 200 and stale.content == first.content


def test_pages_link_static_files_by_the_fingerprint_of_their_bytes(
    generated_site: GeneratedSite,
) -> None:
    """The year-long cache is safe only because the URL changes with the bytes."""
    html_out = generated_site.html_out
    pages = sorted(html_out.rglob("*.html"))
    assert len(pages) > 5
    seen = set()
    for page in pages:
        text = page.read_text(encoding="utf-8")
        links = STATIC_LINK.findall(text)
        assert links, f"{page}: no link to a static file"
        assert text.count("static/") == len(links), f"{page}: a static link of another form"
        for _, name, query, version in links:
            assert query, f"{page}: static/{name} without ?v="
            served = (html_out / "static" / name).read_bytes()
            assert version == hashlib.sha256(served).hexdigest()[:12], f"{page}: {name}"
            seen.add(name)
    shipped = Path(__file__).resolve().parents[1] / "site_templates" / "static"
    assert {"style.css", "favicon.svg", "filter.js", "stale.js", "elapsed.js"} <= seen
    for name in seen:
        assert (shipped / name).read_bytes() == (html_out / "static" / name).read_bytes()


def test_the_linked_version_is_served_long_cached(
    generated_site: GeneratedSite, nginx_url: str
) -> None:
    text = (generated_site.html_out / "package" / "main" / "hello-x86.html").read_text()
    link = STATIC_LINK.search(text)
    assert link and link.group(1) == "../../"
    response = requests.get(
        url_of(nginx_url, f"static/{link.group(2)}") + link.group(3), timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == IMMUTABLE


def linked_versions(html_out: Path) -> dict[str, set[str]]:
    """Static file name -> the versions the pages link it with."""
    found: dict[str, set[str]] = {}
    for page in html_out.rglob("*.html"):
        for _, name, _, version in STATIC_LINK.findall(page.read_text(encoding="utf-8")):
            found.setdefault(name, set()).add(version)
    return found


def test_a_changed_static_file_gets_a_new_url_on_every_page(tmp_path: Path) -> None:
    """New bytes in site_templates/static/ (a deploy) -> every page links the new
    version, at the next render and after a restart of the writer."""
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates)
    out = tmp_path / "html"
    SiteWriter(out, templates).render(one_package_site(1000.0), 1000.0)
    old = static_version_of(out, "style.css")
    assert linked_versions(out)["style.css"] == {old}
    with (templates / "static" / "style.css").open("a", encoding="utf-8") as css:
        css.write("/* changed */\n")
    writer = SiteWriter(out, templates)  # a restarted daemon after the deploy
    writer.render(one_package_site(1000.0), 1000.0)
    new = static_version_of(out, "style.css")
    assert new != old
    assert linked_versions(out)["style.css"] == {new}
    with (templates / "static" / "style.css").open("a", encoding="utf-8") as css:
        css.write("/* changed again */\n")
    writer.render(one_package_site(2000.0), 2000.0)  # the same writer, the next change
    newer = static_version_of(out, "style.css")
    assert newer not in (old, new)
    assert linked_versions(out)["style.css"] == {newer}
    package_pages = list((out / "package").rglob("*.html"))
    assert package_pages and all(newer in p.read_text() for p in package_pages)
