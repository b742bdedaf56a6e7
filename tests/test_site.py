"""The status site: incremental writes, escaping, badge and monitoring rules."""

from __future__ import annotations

import re
from pathlib import Path

from reconciler.loop import Daemon
from reconciler.model import RepoKey
from reconciler.plan import Plan
from reconciler.site import SiteWriter
from reconciler.sitefeeds import badge_state, monitoring_lines
from reconciler.sitemodel import BranchInfo, SiteInput
from reconciler.status import PkgState, PkgStatus, RepoPhase, RepoStatus

from .conftest import ConfigFactory, set_field

WATCHED = (".html", ".atom", ".svg", ".json", ".txt")


def snapshot(out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every page: an atomic rewrite always changes the inode."""
    return {
        str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in out.rglob("*")
        if p.is_file() and p.suffix in WATCHED
    }


def test_unchanged_pass_writes_nothing_and_a_change_rewrites_only_its_pages(
    make_config: ConfigFactory, pmaports: Path
) -> None:
    config = make_config()
    daemon = Daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    out = config.paths.html_out
    before = snapshot(out)
    rendered = daemon.site.rendered
    daemon.run_pass()
    daemon.run_pass(full=True)
    assert snapshot(out) == before, "a pass with nothing changed rewrites no page"
    assert daemon.site.rendered == rendered, "rendering is skipped when nothing changed"

    set_field(pmaports / "main/postmarketos-ui-demo/APKBUILD", "pkgrel", "1")
    assert daemon.converge(max_seconds=120).all_published
    after = snapshot(out)
    changed = {p for p in after if before.get(p) != after[p]}
    package_pages = {p for p in changed if p.startswith("package/")}
    assert package_pages == {"package/main/postmarketos-ui-demo.html"}
    assert {"branch/main.html", "index.html", "status.json", "status/main.json"} <= changed
    assert "failures.html" not in changed  # nothing failed
    assert changed <= {
        "package/main/postmarketos-ui-demo.html",
        "branch/main.html",
        "index.html",
        "queue.html",
        "feed.atom",
        "feeds/main.atom",
        "status.json",
        "status/main.json",
        "badge.svg",  # building while the bump was built, up-to-date again now
    }


def site_input(packages: tuple[PkgStatus, ...], ignore_errors: bool = False) -> SiteInput:
    repos = tuple(RepoStatus(key, RepoPhase.BUILDING) for key in sorted({p.repo for p in packages}))
    return SiteInput(
        title="t",
        url="https://build.example.org",
        branches=(BranchInfo("main", ("x86_64",), ignore_errors, ""),),
        plan=Plan((), packages, repos),
        specs={},
        versions={},
        jobs=(),
        events=(),
        max_parallel=1,
        monitoring_max=2,
    )


X86 = RepoKey("main", "", "x86_64")


def failed(name: str, tries: int = 3) -> PkgStatus:
    return PkgStatus(X86, name, "1-r0", PkgState.FAILED, "exit code 1", tries, 3, f"job-{name}")


def test_monitoring_txt_is_bpo_format() -> None:
    ok = PkgStatus(X86, "ok", "1-r0", PkgState.PUBLISHED)
    assert monitoring_lines(site_input((ok,))) == ("OK",)
    assert monitoring_lines(site_input((failed("a"),))) == (
        "1 failure at [bpo](https://build.example.org/):",
        "* 📦 [main/x86_64/a](https://build.example.org/logs/job-a.log) (try 3/3)",
    )
    lines = monitoring_lines(site_input((failed("a"), failed("b", 1), failed("c"))))
    assert lines[0] == "3 failures at [bpo](https://build.example.org/):"
    assert lines[2] == "* 📦 [main/x86_64/b](https://build.example.org/logs/job-b.log) (try 1/3)"
    assert lines[-1] == "* ..."
    assert len(lines) == 4


def test_badge_ignores_failures_on_branches_being_brought_up() -> None:
    assert badge_state(site_input((failed("a"),))) == "failed"
    assert badge_state(site_input((failed("a"),), ignore_errors=True)) == "building"
    published = PkgStatus(X86, "ok", "1-r0", PkgState.PUBLISHED)
    assert badge_state(site_input((published,))) == "up-to-date"


def test_untrusted_text_is_escaped_everywhere(tmp_path: Path) -> None:
    evil = "<script>alert('x')</script>\" onmouseover=\"x"
    status = PkgStatus(X86, "pkg", "1-r0", PkgState.FAILED, evil, 3, 3, "job-pkg")
    writer = SiteWriter(tmp_path)
    writer.render(site_input((status,)), 0.0)
    for path in tmp_path.rglob("*"):
        if path.suffix in (".html", ".atom", ".svg"):
            text = path.read_text()
            assert "<script>alert" not in text, path
            assert 'onmouseover="x' not in text, path
    page = (tmp_path / "failures.html").read_text()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34; onmouseover=&#34;x" in page


def test_metrics_are_prometheus_text(make_config: ConfigFactory) -> None:
    config = make_config()
    daemon = Daemon(config)
    daemon.converge(max_seconds=120)
    text = (config.paths.html_out / "metrics.prom").read_text()
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"\n]*",?)+\})? [0-9.e+-]+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line), line
    assert (
        'reconciler_packages{branch="main",splitrepo="main",arch="x86_64",state="published"} 10'
        in text
    )
