"""deploy/nginx.conf, run by a real nginx on 127.0.0.1 over a generated site.

Every kind of page the site writes is fetched with its Content-Type; the final
and WIP repositories come back byte for byte with no Content-Encoding; `.gz`
twins are served precompressed; traversal, dot-files, keys and state are never
served (the symlink repository and the job routes: test_nginx_jobs.py). On CI
(CI=true) a missing nginx fails the run.
"""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from .nginx_server import (
    DEPLOY_CONF,
    SECRET,
    TIMEOUT,
    GeneratedSite,
    free_port,
    generated_site_fixture,  # noqa: F401 (fixture)
    main_config,
    media_type,
    nginx_url_fixture,  # noqa: F401 (fixture)
    raw_get,
    render_server_block,
    repo_index,
    require_tool,
    url_of,
)

# page kind -> (function giving the path under html_out, expected media type)
PageSpec = tuple[Callable[[GeneratedSite], str], str]


def first(site: GeneratedSite, pattern: str) -> str:
    """The first (sorted) file under html_out matching `pattern`, as a relative path."""
    found = sorted(p for p in site.html_out.glob(pattern) if p.is_file())
    assert found, f"no {pattern} under html_out: {sorted(listing(site.html_out))}"
    return found[0].relative_to(site.html_out).as_posix()


def listing(root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]


PAGES: dict[str, PageSpec] = {
    "index.html": (lambda s: "index.html", "text/html"),
    "queue.html": (lambda s: "queue.html", "text/html"),
    "failures.html": (lambda s: "failures.html", "text/html"),
    "branch page": (lambda s: "branch/main.html", "text/html"),
    "package page": (lambda s: "package/main/hello-x86.html", "text/html"),
    "feed.atom": (lambda s: "feed.atom", "application/atom+xml"),
    "branch feed": (lambda s: "feeds/main.atom", "application/atom+xml"),
    "status.json": (lambda s: "status.json", "application/json"),
    "branch status": (lambda s: "status/main.json", "application/json"),
    "badge.svg": (lambda s: "badge.svg", "image/svg+xml"),
    "monitoring.txt": (lambda s: "monitoring.txt", "text/plain"),
    "metrics.prom": (lambda s: "metrics.prom", "text/plain"),
    "style.css": (lambda s: "static/style.css", "text/css"),
    "filter.js": (lambda s: "static/filter.js", "application/javascript"),
    "job log": (lambda s: first(s, "logs/*@hello-x86@*.log"), "text/plain"),
}
# Text formats whose Content-Type must say charset=utf-8.
UTF8_TYPES = {"text/html", "text/plain", "text/css"}


@pytest.fixture(scope="module")
def probes(generated_site: GeneratedSite) -> dict[str, Path]:
    """Files the server must hide (dot-files) or serve precompressed, planted once."""
    site = generated_site
    final_dir = repo_index(site.final)[0].parent
    wip_dir = repo_index(site.wip)[0].parent
    planted = {
        "site dot-file": site.html_out / ".secret-probe",
        "site temp file": site.html_out / ".index.html.abc123.tmp",
        "dot-dir file": site.html_out / ".hidden" / "probe.txt",
        "log dot-file": site.html_out / "logs" / ".probe.log",
        "final dot-file": final_dir / ".probe",
        "wip dot-file": wip_dir / ".probe",
    }
    for path in planted.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{SECRET}\n", encoding="utf-8")
    # A precompressed twin with *different* content, so we can tell which one was sent.
    plain = site.html_out / "gzip-probe.txt"
    plain.write_text("plain twin\n", encoding="utf-8")
    twin = site.html_out / "gzip-probe.txt.gz"
    twin.write_bytes(gzip.compress(b"gzip twin\n", mtime=0))
    # A log stored only compressed (what style.md B4 recommends for big logs).
    only_gz = site.html_out / "logs" / "gz-only-probe.log.gz"
    only_gz.write_bytes(gzip.compress(b"compressed log line\n" * 100, mtime=0))
    return {**planted, "gzip plain": plain, "gzip twin": twin, "gz-only log": only_gz}


def test_shipped_config_passes_nginx_t_without_warnings(tmp_path: Path) -> None:
    nginx = require_tool("nginx", "nginx-light")
    for name in ("html", "final", "wip"):
        (tmp_path / name).mkdir()
    block = tmp_path / "reconciler.conf"
    block.write_text(
        render_server_block(tmp_path / "html", tmp_path / "final", tmp_path / "wip", free_port()),
        encoding="utf-8",
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(main_config(tmp_path, block, nginx), encoding="utf-8")
    error_log = tmp_path / "error.log"
    check = subprocess.run(
        [nginx, "-t", "-e", str(error_log), "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = check.stderr + error_log.read_text(encoding="utf-8", errors="replace")
    assert check.returncode == 0, output
    assert "[warn]" not in output and "[emerg]" not in output, output
    code = [line.split("#", 1)[0] for line in DEPLOY_CONF.read_text(encoding="utf-8").splitlines()]
    assert sum(line.strip() == "server {" for line in code) == 1, "one server block"


@pytest.mark.parametrize("kind", list(PAGES))
def test_page_is_served_with_its_type(
    kind: str, generated_site: GeneratedSite, nginx_url: str
) -> None:
    path_of, expected = PAGES[kind]
    relpath = path_of(generated_site)
    on_disk = generated_site.html_out / relpath
    assert on_disk.is_file(), f"{kind}: the site has no {relpath}"
    response = requests.get(url_of(nginx_url, relpath), timeout=TIMEOUT)
    assert response.status_code == 200, f"{relpath}: {response.status_code}"
    kind_seen, charset = media_type(response)
    if expected == "application/javascript":
        assert kind_seen in ("application/javascript", "text/javascript"), kind_seen
    else:
        assert kind_seen == expected, f"{relpath}: Content-Type {kind_seen}"
    if expected in UTF8_TYPES:
        assert charset == "utf-8", f"{relpath}: {response.headers['Content-Type']}"
    assert response.content == on_disk.read_bytes()
    assert response.headers.get("X-Content-Type-Options") == "nosniff"


def test_root_serves_the_index(generated_site: GeneratedSite, nginx_url: str) -> None:
    response = requests.get(nginx_url, timeout=TIMEOUT)
    assert response.status_code == 200
    assert media_type(response) == ("text/html", "utf-8")
    assert response.content == (generated_site.html_out / "index.html").read_bytes()


@pytest.mark.parametrize(
    "relpath", ["", "index.html", "status.json", "feed.atom", "badge.svg", "monitoring.txt"]
)
def test_status_files_have_a_short_cache(nginx_url: str, relpath: str) -> None:
    response = requests.get(url_of(nginx_url, relpath), timeout=TIMEOUT)
    assert response.status_code == 200, relpath
    cache = response.headers.get("Cache-Control", "")
    assert cache == "no-cache" or "max-age=" in cache, f"{relpath}: Cache-Control {cache!r}"
    if "max-age=" in cache:
        max_age = int(cache.split("max-age=", 1)[1].split(",", 1)[0])
        assert max_age <= 300, f"{relpath}: Cache-Control {cache!r}"
    assert response.headers.get("ETag") or response.headers.get("Last-Modified")


def test_gz_twin_is_served_precompressed(nginx_url: str, probes: dict[str, Path]) -> None:
    url = url_of(nginx_url, "gzip-probe.txt")
    with requests.get(url, headers={"Accept-Encoding": "gzip"}, timeout=TIMEOUT, stream=True) as r:
        assert r.status_code == 200
        assert r.headers.get("Content-Encoding") == "gzip"
        assert media_type(r) == ("text/plain", "utf-8")
        assert r.raw.read(decode_content=False) == probes["gzip twin"].read_bytes()
    identity = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=TIMEOUT)
    assert identity.status_code == 200
    assert "Content-Encoding" not in identity.headers
    assert identity.content == b"plain twin\n"


def test_site_gz_twins_are_served_precompressed(
    generated_site: GeneratedSite, nginx_url: str
) -> None:
    """Whatever `.gz` twins the generator wrote (large logs, pages) go out as they are."""
    twins = sorted(
        p
        for p in generated_site.html_out.rglob("*.gz")
        if p.with_suffix("").is_file() and "probe" not in p.name
    )
    if not twins:
        pytest.skip("the generated site has no .gz twin (no log above the inline limit)")
    for twin in twins:
        relpath = twin.with_suffix("").relative_to(generated_site.html_out).as_posix()
        headers = {"Accept-Encoding": "gzip"}
        with requests.get(
            url_of(nginx_url, relpath), headers=headers, timeout=TIMEOUT, stream=True
        ) as r:
            assert r.status_code == 200, relpath
            assert r.headers.get("Content-Encoding") == "gzip", relpath
            assert r.raw.read(decode_content=False) == twin.read_bytes(), relpath


def test_log_stored_only_compressed(nginx_url: str, probes: dict[str, Path]) -> None:
    url = url_of(nginx_url, "logs/gz-only-probe.log")
    expected = gzip.decompress(probes["gz-only log"].read_bytes())
    with requests.get(url, headers={"Accept-Encoding": "gzip"}, timeout=TIMEOUT, stream=True) as r:
        assert r.status_code == 200
        assert r.headers.get("Content-Encoding") == "gzip"
        assert media_type(r) == ("text/plain", "utf-8")
        assert r.raw.read(decode_content=False) == probes["gz-only log"].read_bytes()
    # A client without gzip support gets the text, decompressed by nginx.
    status, body = raw_get(nginx_url, "/logs/gz-only-probe.log")
    assert status == 200
    assert body == expected


@pytest.mark.parametrize("repo", ["final", "wip"])
def test_repository_files_are_byte_identical(
    repo: str, generated_site: GeneratedSite, nginx_url: str
) -> None:
    root = generated_site.final if repo == "final" else generated_site.wip
    index, index_rel = repo_index(root)
    headers = {"Accept-Encoding": "gzip, deflate"}
    url = url_of(nginx_url, f"repo/{repo}/{index_rel}")
    with requests.get(url, headers=headers, timeout=TIMEOUT, stream=True) as r:
        assert r.status_code == 200, url
        assert media_type(r)[0] == "application/gzip"
        assert "Content-Encoding" not in r.headers, "apk would see a double-compressed index"
        assert r.raw.read(decode_content=False) == index.read_bytes()
        assert r.headers.get("Cache-Control") == "no-cache"
    apks = sorted(index.parent.glob("*.apk"))
    assert apks, f"no apk next to {index}"
    apk_rel = apks[0].relative_to(root).as_posix()
    with requests.get(
        url_of(nginx_url, f"repo/{repo}/{apk_rel}"), headers=headers, timeout=TIMEOUT, stream=True
    ) as r:
        assert r.status_code == 200
        assert media_type(r)[0] == "application/octet-stream"
        assert "Content-Encoding" not in r.headers
        assert r.raw.read(decode_content=False) == apks[0].read_bytes()


@pytest.mark.parametrize("repo", ["final", "wip"])
def test_repository_directories_are_listed(
    repo: str, generated_site: GeneratedSite, nginx_url: str
) -> None:
    root = generated_site.final if repo == "final" else generated_site.wip
    index, index_rel = repo_index(root)
    directory = index_rel.rsplit("/", 1)[0] + "/"
    response = requests.get(url_of(nginx_url, f"repo/{repo}/{directory}"), timeout=TIMEOUT)
    assert response.status_code == 200
    assert media_type(response)[0] == "text/html"
    assert 'href="APKINDEX.tar.gz"' in response.text
    for apk in sorted(index.parent.glob("*.apk")):
        assert f'href="{quote(apk.name)}"' in response.text or apk.name in response.text
    assert ".probe" not in response.text  # autoindex hides dot-files
    top = requests.get(url_of(nginx_url, f"repo/{repo}/"), timeout=TIMEOUT)
    assert top.status_code == 200


TRAVERSALS = [
    "/../etc/passwd",
    "/../../../../etc/passwd",
    "/%2e%2e/",
    "/%2e%2e/etc/passwd",
    "/%2e%2e%2f%2e%2e%2fetc/passwd",
    "/static/../../etc/passwd",
    "/repo/final/../../keys/wip.rsa",
    "/repo/final/%2e%2e/%2e%2e/keys/wip.rsa",
    "/repo/final/..%2f..%2fkeys/wip.rsa",
    "/repo/final../keys/wip.rsa",
    "/repo/final../../keys/wip.rsa",
    "/repo/wip/../../keys/wip.rsa",
    "/repo/wip../keys/wip.rsa",
    "/repo/wip/%2e%2e/%2e%2e/keys/wip.rsa",
    "/logs/../../data/keys/wip.rsa",
    "/logs../data/keys/wip.rsa",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_directory_traversal(path: str, nginx_url: str) -> None:
    status, body = raw_get(nginx_url, path)
    assert status in (400, 403, 404), f"{path}: {status}"
    for leak in (b"root:", b"PRIVATE KEY", SECRET.encode()):
        assert leak not in body, f"{path} leaked {leak!r}"


DOT_PATHS = {
    "site dot-file": "/.secret-probe",
    "encoded dot-file": "/%2esecret-probe",
    "site temp file": "/.index.html.abc123.tmp",
    "dot-dir file": "/.hidden/probe.txt",
    "log dot-file": "/logs/.probe.log",
    "manifest": "/.manifest.json",
    "git dir": "/.git/config",
}


@pytest.mark.parametrize("name", [*DOT_PATHS, "final dot-file", "wip dot-file"])
def test_dot_files_are_not_served(
    name: str, generated_site: GeneratedSite, nginx_url: str, probes: dict[str, Path]
) -> None:
    if name in DOT_PATHS:
        path = DOT_PATHS[name]
    else:
        repo = "final" if name.startswith("final") else "wip"
        root = generated_site.final if repo == "final" else generated_site.wip
        path = f"/repo/{repo}/" + quote(probes[name].relative_to(root).as_posix())
    status, body = raw_get(nginx_url, path)
    assert status in (403, 404), f"{path}: {status}"
    assert SECRET.encode() not in body


def test_keys_and_state_are_unreachable(generated_site: GeneratedSite, nginx_url: str) -> None:
    data = generated_site.data
    private = sorted((data / "keys").iterdir())
    assert private, "the daemon wrote no keys"
    hidden = [*private, *sorted((data / "state").rglob("*"))]
    for path in hidden:
        if not path.is_file():
            continue
        content = path.read_bytes()
        rel = quote(path.relative_to(data).as_posix())
        candidates = [
            f"/{rel}",
            f"/data/{rel}",
            f"/repo/{rel}",
            f"/repo/final/../../{rel}",
            f"/repo/wip/../../{rel}",
            f"/repo/final/../{rel}",
            f"/html_out/../data/{rel}",
        ]
        for candidate in candidates:
            status, body = raw_get(nginx_url, candidate)
            assert status in (400, 403, 404), f"{candidate}: {status}"
            if content.strip():
                assert content not in body, f"{candidate} served {path}"
