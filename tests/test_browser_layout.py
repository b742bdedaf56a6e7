"""Any screen, any theme, in the real headless Chromium through the real nginx.

At 390 px (a phone) and 1400 px, in the light and the dark colour scheme (set
through the DevTools protocol), on the front page, a branch grid, a package
page, the queue and the failures page of two sites (the sample tree converged
with hello-x86 failing, and a hand-made snapshot with every state, log excerpts,
running jobs and long names): no element of the main column reaches out of it or
clips its content, except inside a container that scrolls on purpose; every
visible text reaches WCAG AA contrast on the background it is drawn on (4.5:1,
3:1 for large text); the nine states have nine colours; and the reason of a
failed package is shown on the page, not only in a tooltip. The branch grid's
filters match cells: a state and an arch together select the packages in that
state in that arch. Screenshots go to tests/_artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from reconciler.model.progress import PkgState
from reconciler.site.writer import SiteWriter

from .nginx_server import (
    GeneratedSite,
    NginxServer,
    generated_site_fixture,  # noqa: F401 (fixture)
    nginx_url_fixture,  # noqa: F401 (fixture)
    require_tool,
)
from .site_inputs import rich_site
from .test_browser import ARTIFACTS, load, make_driver, wait_for

WIDTHS = (390, 1400)
SCHEMES = ("light", "dark")
PAGES = {
    "front": "index.html",
    "branch": "branch/main.html",
    "queue": "queue.html",
    "failures": "failures.html",
}

# What does not fit in the main column or is clipped, outside the containers
# that scroll on purpose (overflow-x auto or scroll: wide tables, log excerpts).
LAYOUT_JS = """
const main = document.querySelector("main");
const vw = document.documentElement.clientWidth;
const mr = main.getBoundingClientRect();
const out = [];
const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
  (typeof el.className === "string" && el.className.trim()
    ? "." + el.className.trim().split(/\\s+/).join(".") : "") +
  " '" + (el.textContent || "").trim().slice(0, 40) + "'";
const scrolls = (el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
const inScroller = (el) => {
  for (let p = el.parentElement; p && p !== main; p = p.parentElement) if (scrolls(p)) return true;
  return false;
};
if (document.documentElement.scrollWidth > vw + 1)
  out.push(`the page is ${document.documentElement.scrollWidth} px wide in ${vw} px`);
if (mr.left < -1 || mr.right > vw + 1) out.push("main is not in the viewport");
for (const el of main.querySelectorAll("*")) {
  if (!el.getClientRects().length || getComputedStyle(el).visibility === "hidden") continue;
  if (inScroller(el)) continue;
  const r = el.getBoundingClientRect();
  if (r.width && (r.left < mr.left - 1 || r.right > mr.right + 1))
    out.push(`${name(el)}: ${Math.round(r.left)}..${Math.round(r.right)} out of main ` +
             `${Math.round(mr.left)}..${Math.round(mr.right)}`);
  const cs = getComputedStyle(el);
  if (!scrolls(el) && cs.display !== "inline" && el.clientWidth > 0 &&
      el.scrollWidth > el.clientWidth + 1)
    out.push(`${name(el)} clips: ${el.scrollWidth} > ${el.clientWidth}`);
}
return out;
"""

# Every element with text of its own, shown: its contrast with the background it
# is drawn on (the nearest backgrounds up the tree, composited until opaque).
CONTRAST_JS = """
const parse = (c) => {
  const m = c.match(/rgba?\\(([^)]*)\\)/);
  if (!m) throw new Error("unparsed colour " + c);
  const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
};
const over = (top, base) => [0, 1, 2].map((i) => top[i] * top[3] + base[i] * (1 - top[3]));
const lum = (c) => {
  const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
};
const background = (el) => {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) layers.push(c);
    if (c[3] >= 1) break;
  }
  let base = [255, 255, 255];
  for (const layer of layers.reverse()) base = over(layer, base);
  return base;
};
const out = [];
const skip = new Set(["SCRIPT", "STYLE", "OPTION", "SELECT", "TITLE", "NOSCRIPT"]);
for (const el of document.body.querySelectorAll("*")) {
  if (skip.has(el.tagName)) continue;
  const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.data.trim());
  if (!own || !el.getClientRects().length) continue;
  const cs = getComputedStyle(el);
  if (cs.visibility === "hidden" || Number(cs.opacity) === 0) continue;
  const bg = background(el);
  const fg = over(parse(cs.color), bg);
  const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  const size = parseFloat(cs.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(cs.fontWeight) >= 700);
  if (ratio < (large ? 3 : 4.5))
    out.push(`${el.tagName.toLowerCase()}.${el.className} '${el.textContent.trim().slice(0, 30)}'` +
             ` ${ratio.toFixed(2)}:1 (${cs.color} on rgb(${bg.map(Math.round)}))`);
}
return out;
"""

STATE_COLOURS_JS = """
const found = {};
for (const li of document.querySelectorAll("ul.legend li")) {
  const state = Array.from(li.classList).find((c) => c.startsWith("s-"));
  if (state) found[state.slice(2)] = getComputedStyle(li.querySelector(".letter")).backgroundColor;
}
document.body.insertAdjacentHTML("beforeend",
  '<p id="probe"><span class="tag split">systemd</span><span class="tag bringup">x</span></p>');
const probe = document.getElementById("probe");
const split = getComputedStyle(probe.querySelector(".split"));
const bringup = getComputedStyle(probe.querySelector(".bringup"));
const tags = {split: [split.color, split.backgroundColor, split.borderTopColor],
              bringup: [bringup.color, bringup.backgroundColor, bringup.borderTopColor]};
probe.remove();
return [found, tags];
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")
        driver = make_driver(tmp_path_factory.mktemp("chromium-layout") / "profile")
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def rich_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The hand-made snapshot with every state, served by nginx."""
    require_tool("nginx", "nginx-light")
    root = tmp_path_factory.mktemp("rich")
    for name in ("final", "wip"):
        (root / name).mkdir()
    now = time.time()
    writer = SiteWriter(root / "html")
    writer.render(rich_site(now), now)
    writer.write_metrics(f"reconciler_last_pass_timestamp_seconds {now}\n")
    server = NginxServer.start(root / "html", root / "final", root / "wip", root / "nginx")
    try:
        yield server.base_url
    finally:
        server.stop()


CUT_ROWS = 3  # the hand-made snapshot's grid cut into pages of at most 3 rows


@pytest.fixture(scope="module")
def cut_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The hand-made snapshot, its branch's grid cut into pages, served by nginx."""
    require_tool("nginx", "nginx-light")
    root = tmp_path_factory.mktemp("cut")
    for name in ("final", "wip"):
        (root / name).mkdir()
    now = time.time()
    writer = SiteWriter(root / "html", grid_rows=CUT_ROWS)
    writer.render(rich_site(now), now)
    writer.write_metrics(f"reconciler_last_pass_timestamp_seconds {now}\n")
    server = NginxServer.start(root / "html", root / "final", root / "wip", root / "nginx")
    try:
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sites(nginx_url: str, rich_url: str, cut_url: str) -> dict[str, tuple[str, dict[str, str]]]:
    """name -> (base URL, page name -> path) of the three sites."""
    return {
        "sample": (nginx_url, {**PAGES, "package": "package/main/hello-x86.html"}),
        "rich": (rich_url, {**PAGES, "package": "package/main/foo-utils.html"}),
        "cut": (cut_url, {"branch": "branch/main.html", "grid page": "branch/main/f.html"}),
    }


def emulate(driver: WebDriver, width: int, scheme: str) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
    )


@pytest.fixture(params=[(w, s) for w in WIDTHS for s in SCHEMES], ids=lambda p: f"{p[0]}px-{p[1]}")
def mode(request: pytest.FixtureRequest, browser: WebDriver) -> Iterator[tuple[int, str]]:
    width, scheme = request.param
    emulate(browser, width, scheme)
    yield width, scheme
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def visit(driver: WebDriver, url: str) -> None:
    errors = load(driver, url)
    assert not errors, errors
    assert driver.execute_script("return matchMedia('(prefers-color-scheme: dark)').matches") in (
        True,
        False,
    )


def test_every_page_fits_and_reads_in_every_width_and_scheme(
    browser: WebDriver,
    sites: dict[str, tuple[str, dict[str, str]]],
    mode: tuple[int, str],
) -> None:
    width, scheme = mode
    problems: list[str] = []
    for site, (base, pages) in sites.items():
        for page, path in pages.items():
            visit(browser, base + path)
            inner = browser.execute_script("return document.documentElement.clientWidth")
            assert width - 20 <= inner <= width  # a desktop's scroll bar takes its part
            dark = browser.execute_script(
                "return matchMedia('(prefers-color-scheme: dark)').matches"
            )
            assert dark == (scheme == "dark")
            where = f"{site} {page} at {width} px, {scheme}"
            problems += [f"{where}: {p}" for p in browser.execute_script(LAYOUT_JS)]
            problems += [f"{where}: contrast {p}" for p in browser.execute_script(CONTRAST_JS)]
            if site != "sample":
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                shot = f"layout-{site}-{page.replace(' ', '-')}-{width}-{scheme}.png"
                browser.save_screenshot(str(ARTIFACTS / shot))
    assert not problems, "\n".join(problems)


def test_each_state_has_its_own_colour_and_tags_are_not_states(
    browser: WebDriver, rich_url: str, mode: tuple[int, str]
) -> None:
    visit(browser, rich_url + "branch/main.html")
    colours, tags = browser.execute_script(STATE_COLOURS_JS)
    assert set(colours) == {str(s) for s in PkgState}
    assert len(set(colours.values())) == len(PkgState), colours
    # The split repository's tag is neither a state's colour nor the tag of a branch
    # being brought up (which was amber, like retrying).
    for colour in tags["split"]:
        if colour != "rgba(0, 0, 0, 0)":
            assert colour not in colours.values(), (colour, colours)
    assert tags["split"] != tags["bringup"]
    # The grid's cells are drawn in their state's colour.
    cells: dict[str, str] = browser.execute_script(
        "const found = {};"
        "for (const a of document.querySelectorAll('#grid td.cell > a')) {"
        "  const s = Array.from(a.parentElement.classList).find((c) => c.startsWith('s-'));"
        "  found[s.slice(2)] = getComputedStyle(a).backgroundColor; }"
        "return found;"
    )
    assert cells and all(colours[state] == colour for state, colour in cells.items()), cells


def shown(driver: WebDriver, css: str) -> Any:
    """The element, scrolled into view: displayed, with its text."""
    element = driver.find_element(By.CSS_SELECTOR, css)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    assert element.is_displayed(), css
    rect = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", element)
    width = driver.execute_script("return document.documentElement.clientWidth")
    assert 0 <= rect["left"] < width and rect["width"] > 0, (css, rect)
    return element


def test_the_reason_of_a_failed_package_is_shown_without_hover(
    browser: WebDriver,
    generated_site: GeneratedSite,
    nginx_url: str,
    mode: tuple[int, str],
) -> None:
    failing = next(
        p
        for p in generated_site.result.plan.packages
        if p.pkgname == "hello-x86" and p.state is PkgState.FAILED
    )
    assert failing.reason
    for path, css in (
        ("package/main/hello-x86.html", ".trouble .why"),
        ("branch/main.html", 'tr.pkg[data-name="hello-x86"] .why'),
        ("failures.html", 'article[data-pkgname="hello-x86"] .why'),
    ):
        visit(browser, nginx_url + path)
        element = shown(browser, css)
        assert failing.reason in element.text, (path, element.text)


def visible_names(driver: WebDriver) -> list[str]:
    names: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#grid tbody tr.pkg'))"
        ".filter((r) => !r.hidden).map((r) => r.dataset.name)"
    )
    return names


@pytest.mark.parametrize(
    ("state", "arch", "problems", "expected"),
    [
        ("failed", "armv7", False, []),  # foo-utils failed on aarch64 only
        ("failed", "aarch64", False, ["foo-utils"]),
        ("retrying", "armv7", False, ["libfoo"]),
        ("retrying", "aarch64", False, []),
        ("", "armv7", True, ["badver", "libfoo"]),  # in trouble on armv7
        ("held", "", False, ["device-demo-phone"]),
        ("waiting", "riscv64", False, ["foo-gui", "systemd"]),
    ],
)
def test_state_and_arch_filters_match_the_same_cell(
    browser: WebDriver, rich_url: str, state: str, arch: str, problems: bool, expected: list[str]
) -> None:
    visit(browser, rich_url + "branch/main.html")
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "grid-filter").get_dom_attribute("hidden") is None,
        "filter.js did not un-hide the form",
    )
    everything = visible_names(browser)
    Select(browser.find_element(By.ID, "filter-state")).select_by_value(state)
    Select(browser.find_element(By.ID, "filter-arch")).select_by_value(arch)
    if problems:
        browser.find_element(By.ID, "filter-problems").click()
    wait_for(browser, lambda d: visible_names(d) == expected, f"{state} {arch}: {expected}")
    count = browser.find_element(By.ID, "grid-count").text
    assert count == str(len(expected))
    assert set(expected) < set(everything)


def visible_pages(driver: WebDriver) -> list[str]:
    labels: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#grid-index tbody tr'))"
        ".filter((r) => !r.hidden).map((r) => r.querySelector('a').textContent)"
    )
    return labels


def test_a_cut_branch_page_finds_the_page_of_a_name(browser: WebDriver, cut_url: str) -> None:
    """The branch page lists its grid's pages; typing the start of a name keeps the
    pages that may hold it, and their links carry it to the page's filter."""
    visit(browser, cut_url + "branch/main.html")
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "index-filter").get_dom_attribute("hidden") is None,
        "filter.js did not un-hide the name search",
    )
    every = visible_pages(browser)
    assert len(every) > 2
    browser.find_element(By.ID, "index-name").send_keys("foo-u")
    wait_for(browser, lambda d: len(visible_pages(d)) == 1, "one page holds foo-utils")
    assert browser.find_element(By.ID, "index-count").text == "1"
    link = browser.find_element(By.CSS_SELECTOR, "#grid-index tbody tr:not([hidden]) a")
    link.click()
    wait_for(browser, lambda d: visible_names(d) == ["foo-utils"], "the name went along")
    assert browser.find_element(By.ID, "filter-name").get_property("value") == "foo-u"


def test_a_grid_page_takes_its_filter_from_the_link(browser: WebDriver, cut_url: str) -> None:
    """The branch page's counts lead to a grid page showing that state: the fragment
    sets the filter, arch too."""
    visit(browser, cut_url + "branch/main/f.html#state=failed&arch=aarch64")
    wait_for(browser, lambda d: visible_names(d) == ["foo-utils"], "failed on aarch64")
    state = Select(browser.find_element(By.ID, "filter-state")).first_selected_option
    assert state.get_attribute("value") == "failed"
    assert browser.find_element(By.ID, "grid-count").text == "1"
    browser.get(cut_url + "branch/main/f.html#state=no-such-state")
    wait_for(browser, lambda d: len(visible_names(d)) > 1, "an unknown state filters nothing")
