"""The images tree through the shipped deploy/nginx.conf, run by a real nginx:
`location ^~ /images/` serves the images directory with `index index.html`, so
every page is reached at its directory's URL; index.json goes out as JSON in
UTF-8; image files keep their bytes and types; the pages' links to the status
site (its style sheet, the build logs) resolve on the same server; dot files
(the `.job` of each date directory, atomic-write leftovers) are hidden; the
Content-Security-Policy of the site holds for these pages too (they have no
inline style or script).

The sample tree is test_images_site's, published and written by the images
writer; the status site's files are a small html_out beside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from .nginx_server import TIMEOUT, NginxServer, media_type, raw_get, require_tool
from .test_images_site import Facts, Sample, make_sample, publish, stem


@dataclass
class Served:
    sample: Sample
    base: str  # "http://127.0.0.1:PORT/"


@pytest.fixture(scope="module", name="served")
def served_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    require_tool("nginx", "nginx-light")
    root = tmp_path_factory.mktemp("images-site")
    sample = make_sample(root)
    sample.write()
    repo = root / "data" / "repo"
    (repo / "final").mkdir(parents=True)
    (repo / "wip").mkdir()
    server = NginxServer.start(
        sample.html_out,
        repo / "final",
        repo / "wip",
        tmp_path_factory.mktemp("nginx"),
        images=sample.images,
    )
    try:
        yield Served(sample, server.base_url)
    finally:
        server.stop()


def get(served: Served, path: str) -> requests.Response:
    return requests.get(urljoin(served.base, path), timeout=TIMEOUT, allow_redirects=False)


def test_every_page_and_link_is_served(served: Served) -> None:
    """Crawl from /images/ over HTTP, following every link as a browser does."""
    todo, seen, broken = ["/images/"], {"/images/"}, []
    pages = 0
    while todo:
        url = todo.pop()
        response = get(served, url)
        assert response.status_code == 200, url
        assert media_type(response) == ("text/html", "utf-8"), url
        assert response.headers.get("Cache-Control") == "no-cache", url
        pages += 1
        parser = Facts()
        parser.feed(response.text)
        for _, href in parser.facts.links:
            target = urlsplit(urljoin(served.base.rstrip("/") + url, href))
            path = target.path + (f"?{target.query}" if target.query else "")
            if path in seen:
                continue
            seen.add(path)
            if target.path.startswith("/images/") and target.path.endswith("/"):
                todo.append(path)
                continue
            linked = get(served, path)
            if linked.status_code != 200:
                broken.append(f"{url}: {href} -> {linked.status_code}")
    assert broken == []
    on_disk = len(list(served.sample.images.rglob("index.html")))
    assert pages == on_disk
    assert any(p.startswith("/logs/") for p in seen)
    assert any(p.startswith("/static/style.css?v=") for p in seen)


def test_the_root_page_is_the_index_and_a_directory_without_slash_redirects(
    served: Served,
) -> None:
    root = get(served, "/images/")
    assert root.status_code == 200
    assert root.content == (served.sample.images / "index.html").read_bytes()
    moved = get(served, "/images/edge")
    assert moved.status_code == 301
    assert urlsplit(moved.headers["Location"]).path == "/images/edge/"


def test_index_json_is_json_in_utf8_and_revalidated(served: Served) -> None:
    response = get(served, "/images/index.json")
    assert response.status_code == 200
    assert media_type(response) == ("application/json", "utf-8")
    assert response.headers.get("Cache-Control") == "no-cache"
    document = json.loads(response.content)
    assert response.content == (served.sample.images / "index.json").read_bytes()
    # Every URL it gives is served (with the site's base instead of the public one).
    urls = [
        image["url"]
        for release in document["releases"]
        for device in release["devices"]
        for ui in device["interfaces"]
        for image in ui["images"]
    ]
    assert urls
    for url in urls:
        path = urlsplit(url).path
        assert path.startswith("/images/")
        served_file = get(served, path)
        assert served_file.status_code == 200, url
        assert media_type(served_file)[0] == "application/x-xz"
        assert served_file.headers.get("Cache-Control") == "public, max-age=86400"


@pytest.mark.parametrize(
    ("suffix", "kind"),
    [
        (".img.xz", "application/x-xz"),
        (".img.xz.sha256", "text/plain"),
        ("-packages.txt", "text/plain"),
    ],
)
def test_image_files_keep_their_bytes_and_types(served: Served, suffix: str, kind: str) -> None:
    directory = "edge/demo-phone/demo/20250627-0000"
    name = stem("edge", "demo-phone", "demo", "20250627-0000") + suffix
    response = get(served, f"/images/{directory}/{name}")
    assert response.status_code == 200
    assert media_type(response)[0] == kind
    assert "Content-Encoding" not in response.headers
    assert response.content == (served.sample.images / directory / name).read_bytes()


def test_the_site_s_headers_hold_for_the_images_pages(served: Served) -> None:
    response = get(served, "/images/edge/demo-phone/demo/")
    csp = response.headers.get("Content-Security-Policy", "")
    assert "default-src 'none'" in csp and "style-src 'self'" in csp
    assert response.headers.get("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/images/edge/demo-phone/demo/20250627-0000/.job",
        "/images/edge/demo-phone/demo/20250627-0000/%2Ejob",
        "/images/.index.json.1.2.tmp",
        "/images/../html_out/index.html",
        "/images../html_out/index.html",
    ],
)
def test_hidden_and_outside_files_are_not_served(served: Served, path: str) -> None:
    probe = served.sample.images / ".index.json.1.2.tmp"
    probe.write_text("leftover\n")
    try:
        status, body = raw_get(served.base, path)
    finally:
        probe.unlink()
    assert status in (400, 403, 404), f"{path}: {status}"
    assert b"leftover" not in body and b"image@" not in body


def test_a_page_written_later_is_served_at_once(served: Served) -> None:
    """The daemon rewrites pages in place (atomic renames): nginx serves the new
    bytes at the same URL, no reload."""
    sample = served.sample
    before = get(served, "/images/edge/demo-phone/demo/").text
    publish(sample.images, "edge", "demo-phone", "demo", "20250704-0000")
    assert sample.write() > 0
    after = get(served, "/images/edge/demo-phone/demo/")
    assert after.text != before and "20250704-0000" in after.text
    assert get(served, "/images/edge/demo-phone/demo/20250704-0000/").status_code == 200
    document = get(served, "/images/index.json").json()
    demo = document["releases"][0]["devices"][0]["interfaces"][0]
    assert demo["images"][0]["timestamp"] == "2025-07-04T00:00:00"
