"""Screenshots of the status site in a failing state, so that anyone can look at it.

Writes PNGs of the front page, a branch grid, a package page, the queue and the
failures page, each on a desktop (1400 px wide) and a phone (390 px), in the
light and the dark colour scheme, into a directory (default
/tmp/reconciler-screenshots):

    .venv/bin/python bench/screenshots.py [--out DIR] [--site sample|rich|both]
        [--page front|branch|package|queue|failures ...] [--width desktop|phone ...]
        [--scheme light|dark ...] [--tile PX]

Two sites are shot. "sample" is the sample pmaports tree of examples/ built by
the real daemon (fake clock, in-memory jobs, as tests/nginx_server.py's
generate_site does), stopped mid-way: hello-x86 has failed for good, builds run,
packages wait for them and the plan's queue is not empty. "rich" is a
hand-made snapshot with a package in each of the nine states, a failed build's
log excerpt, running local and remote jobs and long names
(tests/site_inputs.py rich_site). Both are served by a real nginx with the
shipped deploy/nginx.conf (so the content security policy applies as in
production) and shot by Debian's headless Chromium, whole pages
(`captureBeyondViewport`), the colour scheme and width set through the DevTools
protocol as the browser tests do.

It lives in bench/ rather than examples/: like bench/burst.py it drives the
real site through nginx with the test helpers (tests.nginx_server) and makes
something to look at rather than something to run, and bench/ is linted with
the package (ruff) while examples/ holds the sample pmaports tree only.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selenium import webdriver  # noqa: E402
from selenium.webdriver import Chrome  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

from reconciler.config.settings import load_config  # noqa: E402
from reconciler.site.writer import SiteWriter  # noqa: E402
from tests.fake_clock import FakeClock  # noqa: E402
from tests.fake_daemon import fake_daemon  # noqa: E402
from tests.memory_jobs import JobTable  # noqa: E402
from tests.nginx_server import SAMPLE_TREE, NginxServer  # noqa: E402
from tests.site_inputs import rich_site  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTHS = {"desktop": 1400, "phone": 390}
SCHEMES = ("light", "dark")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--hide-scrollbars",
)
MAX_HEIGHT = 8000  # px of a page shot at most (the branch grid of a big tree is long)


def sample_site(root: Path) -> tuple[Path, Path, Path, dict[str, str]]:
    """The sample tree, built until hello-x86 failed for good while other builds
    run and wait: (html_out, final, wip, the pages to shoot)."""
    pmaports = root / "pmaports"
    shutil.copytree(SAMPLE_TREE, pmaports)
    config_file = root / "config.yaml"
    config_file.write_text(
        textwrap.dedent(
            f"""\
            paths:
              data: {root}/data
              html_out: {root}/html
            jobs:
              max_parallel: 2
            builder: {{duration_seconds: 20, fail: ["main/x86_64/hello-x86"]}}
            retries: {{max_tries: 1, backoff_seconds: 60, backoff_max_seconds: 60}}
            loop: {{poll_interval_seconds: 5, settle_seconds: 0, resync_interval_seconds: 3600}}
            site:
              url: "https://build.example.org/"
            branches:
              - name: main
                pmaports: {pmaports}
                arches: [x86_64, aarch64, armv7]
            """
        ),
        encoding="utf-8",
    )
    config = load_config(config_file)
    steps, step = 200, 7.0
    clock = FakeClock(time.time() - steps * step)  # never ahead of the browser's clock
    daemon = fake_daemon(config, clock, JobTable(root / "memory-jobs"))
    daemon.run_pass(full=True)
    for _ in range(steps):  # until hello-x86 failed, with builds still running
        clock.advance(step)
        result = daemon.run_pass()
        states = {(str(p.repo), p.pkgname): p.state for p in result.plan.packages}
        if states.get(("main/x86_64", "hello-x86")) == "failed" and result.live_jobs:
            break
    daemon.run_pass(full=True)  # "daemon last seen", within the hour the config allows
    pages = {
        "front": "index.html",
        "branch": "branch/main.html",
        "package": "package/main/hello-x86.html",
        "queue": "queue.html",
        "failures": "failures.html",
    }
    return config.paths.html_out, config.paths.final_repo, config.paths.wip_repo, pages


def rich(root: Path) -> tuple[Path, Path, Path, dict[str, str]]:
    now = time.time()
    html = root / "html"
    for name in ("final", "wip"):
        (root / name).mkdir(parents=True)
    writer = SiteWriter(html)
    writer.render(rich_site(now), now)
    writer.write_metrics(f"reconciler_last_pass_timestamp_seconds {now}\n")
    pages = {
        "front": "index.html",
        "branch": "branch/main.html",
        "package": "package/main/foo-utils.html",
        "queue": "queue.html",
        "failures": "failures.html",
    }
    return html, root / "final", root / "wip", pages


@contextmanager
def chromium(profile: Path) -> Iterator[Chrome]:
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def shoot(
    driver: Chrome, url: str, width: int, scheme: str, target: Path, tile: int = 0
) -> list[Path]:
    """A whole page at `width` CSS px in the colour scheme, as a PNG; with `tile`,
    cut into PNGs of at most that many px high (name-1.png, name-2.png, ...),
    which image viewers show at full size."""
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )
    metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    driver.get(url)
    time.sleep(0.3)  # the deferred scripts (filter, elapsed, stale) run after load
    height = min(
        int(driver.execute_script("return document.documentElement.scrollHeight")), MAX_HEIGHT
    )
    step = tile or height
    written = []
    for number, top in enumerate(range(0, height, step), start=1):
        clip = {"x": 0, "y": top, "width": width, "height": min(step, height - top), "scale": 1}
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        path = target.with_name(f"{target.stem}-{number}.png") if tile else target
        path.write_bytes(base64.b64decode(shot["data"]))
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/reconciler-screenshots"))
    parser.add_argument("--site", choices=("sample", "rich", "both"), default="both")
    parser.add_argument("--page", action="append", help="only these pages (front, branch, ...)")
    parser.add_argument("--width", action="append", choices=list(WIDTHS), help="only these")
    parser.add_argument("--scheme", action="append", choices=SCHEMES, help="only these")
    parser.add_argument("--tile", type=int, default=0, help="cut pages into PNGs this high")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sites = {"sample": sample_site, "rich": rich}
    chosen = list(sites) if args.site == "both" else [args.site]
    with tempfile.TemporaryDirectory(prefix="screenshots-") as scratch:
        work = Path(scratch)
        with chromium(work / "profile") as driver:
            for name in chosen:
                html, final, wip, pages = sites[name](work / name)
                server = NginxServer.start(html, final, wip, work / f"nginx-{name}")
                try:
                    for page, path in pages.items():
                        if args.page and page not in args.page:
                            continue
                        for device, width in WIDTHS.items():
                            if args.width and device not in args.width:
                                continue
                            for scheme in args.scheme or SCHEMES:
                                target = args.out / f"{name}-{page}-{device}-{scheme}.png"
                                url = server.base_url + path
                                for shot in shoot(driver, url, width, scheme, target, args.tile):
                                    print(shot)
                finally:
                    server.stop()


if __name__ == "__main__":
    main()
