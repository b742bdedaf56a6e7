"""deploy/nginx.conf, run by a real nginx, for what jobs on builds.sr.ht reach: the
symlink repository (its unsigned index and its links followed, dot-files hidden,
no traversal) and the job-end routes with their body limits."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

from .nginx_server import (
    SECRET,
    TIMEOUT,
    GeneratedSite,
    generated_site_fixture,  # noqa: F401 (fixture)
    media_type,
    nginx_url_fixture,  # noqa: F401 (fixture)
    raw_get,
    repo_index,
    url_of,
)


def test_symlink_repository_is_served_with_its_links_followed(
    generated_site: GeneratedSite, nginx_url: str
) -> None:
    """Sign jobs download the unsigned index here (jobs.sourcehut.symlink_url)."""
    root = generated_site.data / "repo" / "symlink"
    index, index_rel = repo_index(root)
    headers = {"Accept-Encoding": "gzip, deflate"}
    with requests.get(
        url_of(nginx_url, f"repo/symlink/{index_rel}"),
        headers=headers,
        timeout=TIMEOUT,
        stream=True,
    ) as r:
        assert r.status_code == 200
        assert media_type(r)[0] == "application/gzip"
        assert "Content-Encoding" not in r.headers
        assert r.headers.get("Cache-Control") == "no-cache"
        assert r.raw.read(decode_content=False) == index.read_bytes()
    # The daemon links to absolute paths in WIP and final (after a publish, links to
    # pruned WIP copies dangle): a link to a final apk, as the daemon writes it.
    final_index, _ = repo_index(generated_site.final)
    target = sorted(final_index.parent.glob("*.apk"))[0].resolve()
    link = index.parent / "zz-link-probe-0-r0.apk"
    link.symlink_to(target)
    try:
        status, body = raw_get(nginx_url, f"/repo/symlink/{index_rel[:-15]}{link.name}")
    finally:
        link.unlink()
    assert status == 200
    assert body == target.read_bytes()
    probe = index.parent / ".probe"
    probe.write_text(f"{SECRET}\n", encoding="utf-8")
    try:
        status, body = raw_get(nginx_url, "/repo/symlink/" + quote(f"{index_rel[:-15]}.probe"))
        assert status == 404 and SECRET.encode() not in body
    finally:
        probe.unlink()
    for path in ("/repo/symlink/../../keys/wip.rsa", "/repo/symlink../keys/wip.rsa"):
        status, body = raw_get(nginx_url, path)
        assert status in (400, 403, 404), f"{path}: {status}"
        assert b"PRIVATE KEY" not in body


@pytest.mark.parametrize(
    ("route", "limit"), [("/api/job-callback", 4096), ("/api/look-now", 2**20)]
)
def test_job_hook_routes_have_body_limits(nginx_url: str, route: str, limit: int) -> None:
    """nginx refuses an oversized body itself (413); within the limit it proxies to the
    receiver, which is not running here (502), so a small body shows the route exists."""
    big = requests.post(
        url_of(nginx_url, route.lstrip("/")), data=b"x" * (limit + 1), timeout=TIMEOUT
    )
    assert big.status_code == 413
    small = requests.post(url_of(nginx_url, route.lstrip("/")), data=b"{}", timeout=TIMEOUT)
    assert small.status_code == 502
