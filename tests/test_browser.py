"""The site in a real headless Chromium (Selenium), served by the real nginx.

Pages load without console errors; the branch grid's filter works with
JavaScript and the grid stays complete without it; a grid cell leads to its
package's page; hostile package metadata is
shown as text, never run; the front page warns when the daemon's last full pass
is too old (and still shows its time without JavaScript). Debian's
/usr/bin/chromium and /usr/bin/chromedriver are used as they are (Selenium
Manager never downloads anything). On CI
(CI=true) a missing browser fails the run. Screenshots go to tests/_artifacts/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver import Chrome as WebDriver  # the Chromium driver: has get_log()
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from reconciler.formats.apkbuild import parse_apkbuild
from reconciler.site.model import iso
from reconciler.site.writer import SiteWriter

from .nginx_server import (
    ROOT,
    GeneratedSite,
    NginxServer,
    generate_site,
    generated_site_fixture,  # noqa: F401 (fixture)
    nginx_url_fixture,  # noqa: F401 (fixture)
    require_tool,
)
from .site_inputs import one_package_site

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
ARTIFACTS = ROOT / "tests" / "_artifacts"
WAIT = 10.0  # seconds any condition in the page may take
PROBLEM_STATES = {"failed", "broken", "retrying"}

PAYLOAD = "<script>document.title='pwned'</script>\"' & <b>x"
JS_URL = "javascript:document.title='pwned-by-url'"


def make_driver(profile: Path, *, javascript: bool = True) -> WebDriver:
    """Headless Chromium with a fresh profile dir; console messages are recorded."""
    require_tool(CHROMIUM, "chromium")
    require_tool(CHROMEDRIVER, "chromium-driver")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    # An explicit driver path: Selenium Manager is never consulted (SE_OFFLINE too).
    service = Service(executable_path=CHROMEDRIVER, log_output=str(profile) + ".driver.log")
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(WAIT)
    return driver


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")
        yield


@pytest.fixture(scope="module")
def browser(offline: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    driver = make_driver(tmp_path_factory.mktemp("chromium") / "profile")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def browser_nojs(offline: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    driver = make_driver(tmp_path_factory.mktemp("chromium-nojs") / "profile", javascript=False)
    try:
        yield driver
    finally:
        driver.quit()


def console(driver: WebDriver) -> list[dict[str, Any]]:
    """Console messages since the last call (reading them clears them)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


def load(driver: WebDriver, url: str) -> list[dict[str, Any]]:
    """Open url and wait until it has loaded; returns the SEVERE console messages.

    Chromium asks for /favicon.ico once per origin and session, so whether its
    404 shows up depends on test order: it is left out here and checked on its
    own by test_site_has_an_icon.
    """
    console(driver)  # drop what earlier pages left
    driver.get(url)
    wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")
    return [
        e
        for e in console(driver)
        if e.get("level") == "SEVERE" and "/favicon.ico " not in str(e.get("message"))
    ]


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str = "") -> Any:
    return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(condition, what)


def screenshot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / name)), f"no screenshot {name}"


def rows(driver: WebDriver) -> list[WebElement]:
    found: list[WebElement] = driver.find_elements(By.CSS_SELECTOR, "#grid tbody tr.pkg")
    return found


def visible(driver: WebDriver) -> list[WebElement]:
    # The filter hides rows with the `hidden` attribute (read without JS: W3C endpoint).
    return [row for row in rows(driver) if row.get_dom_attribute("hidden") is None]


ROW_CELLS = (
    "const arches = Array.from(document.querySelectorAll('#grid thead th'))"
    ".map((th) => th.dataset.arch || '');"
    "return Object.fromEntries(Array.from(document.querySelectorAll('#grid tbody tr.pkg'))"
    ".map((row, i) => [i, Object.fromEntries(Array.from(row.cells)"
    ".map((c, j) => [arches[j], Array.from(c.classList).find((k) => k.startsWith('s-'))])"
    ".filter(([a, s]) => a && s).map(([a, s]) => [a, s.slice(2)]))]));"
)


def cells(driver: WebDriver) -> list[dict[str, str]]:
    """arch -> state of the cells of each grid row, in order (arches not built left out)."""
    found: dict[str, dict[str, str]] = driver.execute_script(ROW_CELLS)
    return [found[str(i)] for i in range(len(found))]


def shown_count(driver: WebDriver) -> str:
    text: str = driver.find_element(By.ID, "grid-count").text.strip()
    return text


# -- pages ---------------------------------------------------------------------


def test_front_page_loads_without_console_errors(browser: WebDriver, nginx_url: str) -> None:
    errors = load(browser, nginx_url)
    screenshot(browser, "front-page.png")
    assert not errors, errors
    assert browser.find_element(By.TAG_NAME, "footer").text.strip()
    # The stylesheet was applied (a rule of static/style.css is active).
    assert browser.execute_script("return document.styleSheets.length") >= 1


def test_site_has_an_icon(browser: WebDriver, nginx_url: str) -> None:
    """A page without <link rel="icon"> makes the browser fetch /favicon.ico (a 404)."""
    load(browser, nginx_url)
    icons = browser.find_elements(By.CSS_SELECTOR, "link[rel~='icon']")
    hrefs = [icon.get_attribute("href") for icon in icons]  # resolved against the page
    if not hrefs:
        hrefs = [nginx_url + "favicon.ico"]
    for href in hrefs:
        assert href
        if href.startswith("data:"):
            continue
        status = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0]).then(r => done(r.status), () => done(0));",
            href,
        )
        assert status == 200, f"no <link rel=icon> in index.html and {href} answers {status}"


def test_package_page_loads_without_console_errors(browser: WebDriver, nginx_url: str) -> None:
    errors = load(browser, nginx_url + "package/main/hello-x86.html")
    assert not errors, errors
    assert "hello-x86" in browser.find_element(By.TAG_NAME, "h1").text


# -- the branch grid filter -----------------------------------------------------


@pytest.fixture
def branch_page(browser: WebDriver, nginx_url: str) -> WebDriver:
    errors = load(browser, nginx_url + "branch/main.html")
    assert not errors, errors
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "grid-filter").get_dom_attribute("hidden") is None,
        "filter.js did not un-hide #grid-filter",
    )
    return browser


def test_filter_form_appears_and_counts_every_row(branch_page: WebDriver) -> None:
    driver = branch_page
    screenshot(driver, "branch-page.png")
    total = len(rows(driver))
    assert total > 2, "the branch grid has (almost) no rows"
    assert driver.find_element(By.ID, "grid-filter").is_displayed()
    assert len(visible(driver)) == total
    assert shown_count(driver) == str(total)


def test_filter_by_name(branch_page: WebDriver) -> None:
    driver = branch_page
    total = len(rows(driver))
    box = driver.find_element(By.ID, "filter-name")
    assert box.get_dom_attribute("type") == "search"
    box.send_keys("hello")
    wait_for(driver, lambda d: len(visible(d)) < total, "typing did not hide any row")
    shown = visible(driver)
    assert shown, "no row matches 'hello' (hello-x86 is in the grid)"
    assert all("hello" in row.get_dom_attribute("data-name") for row in shown)
    assert "hello-x86" in {row.get_dom_attribute("data-name") for row in shown}
    wait_for(driver, lambda d: shown_count(d) == str(len(shown)), "#grid-count not updated")
    # Clearing the box shows everything again.
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    wait_for(driver, lambda d: len(visible(d)) == total, "clearing did not show all rows")
    wait_for(driver, lambda d: shown_count(d) == str(total))


def test_filter_only_problems(branch_page: WebDriver) -> None:
    driver = branch_page
    all_rows = rows(driver)
    total = len(all_rows)
    by_row = cells(driver)
    failing = [
        row
        for row, c in zip(all_rows, by_row, strict=True)
        if {"failed", "broken"} & set(c.values())
    ]
    assert failing, "the sample site has a failed package; its cell says s-failed"
    driver.find_element(By.ID, "filter-problems").click()
    wait_for(driver, lambda d: len(visible(d)) < total, "ticking only-problems hid nothing")
    shown = visible(driver)
    for row, c in zip(all_rows, by_row, strict=True):
        if row in shown:
            assert set(c.values()) & PROBLEM_STATES, f"{row.get_dom_attribute('data-name')}: {c}"
    for row in failing:
        assert row in shown, f"{row.get_dom_attribute('data-name')} failed but is hidden"
    wait_for(driver, lambda d: shown_count(d) == str(len(shown)), "#grid-count not updated")
    driver.find_element(By.ID, "filter-problems").click()
    wait_for(driver, lambda d: len(visible(d)) == total, "unticking did not show all rows")


@pytest.mark.parametrize(("control", "value"), [
    ("filter-state", "failed"),
    ("filter-arch", "armv7"),
])  # fmt: skip
def test_filter_by_state_or_arch(branch_page: WebDriver, control: str, value: str) -> None:
    driver = branch_page
    total = len(rows(driver))
    by_state = control == "filter-state"
    expected = [
        row
        for row, c in zip(rows(driver), cells(driver), strict=True)
        if (value in c.values() if by_state else value in c)
    ]
    assert 0 < len(expected) < total, f"the sample grid should have some {value}"
    Select(driver.find_element(By.ID, control)).select_by_value(value)
    wait_for(driver, lambda d: len(visible(d)) == len(expected), f"{control}={value}")
    assert visible(driver) == expected
    wait_for(driver, lambda d: shown_count(d) == str(len(expected)))
    Select(driver.find_element(By.ID, control)).select_by_value("")
    wait_for(driver, lambda d: len(visible(d)) == total)


def test_grid_cells_link_to_the_package_page(branch_page: WebDriver) -> None:
    driver = branch_page
    cell = driver.find_element(By.CSS_SELECTOR, 'tr.pkg[data-name="hello-x86"] td.s-failed > a')
    cell.click()
    wait_for(driver, lambda d: d.current_url.endswith("/package/main/hello-x86.html"))
    assert "hello-x86" in driver.find_element(By.TAG_NAME, "h1").text


def test_without_javascript_every_row_shows(browser_nojs: WebDriver, nginx_url: str) -> None:
    driver = browser_nojs
    load(driver, nginx_url + "branch/main.html")
    form = driver.find_element(By.ID, "grid-filter")
    assert form.get_dom_attribute("hidden") is not None, "the form must stay hidden without JS"
    assert not form.is_displayed()
    all_rows = rows(driver)
    assert len(all_rows) > 2
    # Displayed, checked for every row in one round trip (the driver's own script
    # runs although the page's may not): not hidden, laid out with a size.
    shown = driver.execute_script(
        "return Array.from(document.querySelectorAll('tr.pkg'))"
        ".map(r => !r.hidden && r.getClientRects().length > 0"
        " && getComputedStyle(r).visibility !== 'hidden')"
    )
    assert len(shown) == len(all_rows) and all(shown)
    assert all_rows[0].is_displayed() and all_rows[-1].is_displayed()
    screenshot(driver, "branch-page-nojs.png")


# -- hostile metadata ------------------------------------------------------------


def inject(pmaports: Path) -> None:
    """hello-x86 gets PAYLOAD as pkgdesc; postmarketos-ui-demo a javascript: url."""
    # The payload holds both quote characters, which no single quoted string can:
    # the `"` comes from a variable, as a shell script would do it.
    apkbuild = pmaports / "main" / "hello-x86" / "APKBUILD"
    text = apkbuild.read_text(encoding="utf-8")
    shell_value = PAYLOAD.replace('"', "${_dq}")
    text, found = re.subn(
        r"^pkgdesc=.*$",
        lambda _: f'_dq=\'"\'\npkgdesc="{shell_value}"',
        text,
        count=1,
        flags=re.MULTILINE,
    )
    assert found == 1
    apkbuild.write_text(text, encoding="utf-8")
    parsed = parse_apkbuild(text, str(apkbuild))
    assert parsed.pkgdesc == PAYLOAD, f"the APKBUILD parser read {parsed.pkgdesc!r}"

    other = pmaports / "main" / "postmarketos-ui-demo" / "APKBUILD"
    text, found = re.subn(
        r"^url=.*$", f'url="{JS_URL}"', other.read_text(encoding="utf-8"), flags=re.MULTILINE
    )
    assert found == 1
    other.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def hostile_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A small site (x86_64 only, nothing failing) built from the injected tree."""
    require_tool("nginx", "nginx-light")
    root = tmp_path_factory.mktemp("hostile")
    site: GeneratedSite = generate_site(root, inject, arches=("x86_64",), fail=())
    server = NginxServer.start(site.html_out, site.final, site.wip, root / "nginx")
    try:
        yield server.base_url
    finally:
        server.stop()


def assert_no_alert(driver: WebDriver) -> None:
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return
    text = alert.text
    alert.dismiss()
    raise AssertionError(f"the page opened an alert: {text!r}")


def test_package_description_is_shown_as_text(browser: WebDriver, hostile_url: str) -> None:
    errors = load(browser, hostile_url + "package/main/hello-x86.html")
    screenshot(browser, "package-page-hostile.png")
    assert_no_alert(browser)
    assert browser.title != "pwned"
    assert "pwned" not in browser.title
    assert PAYLOAD in browser.find_element(By.TAG_NAME, "body").text
    for script in browser.find_elements(By.TAG_NAME, "script"):
        assert "pwned" not in (script.get_attribute("textContent") or ""), "payload became a script"
    assert not browser.find_elements(By.XPATH, "//main//b[text()='x']"), "payload became markup"
    assert not errors, errors


def test_javascript_urls_are_not_links(browser: WebDriver, hostile_url: str) -> None:
    load(browser, hostile_url + "package/main/postmarketos-ui-demo.html")
    assert_no_alert(browser)
    hrefs = [a.get_dom_attribute("href") or "" for a in browser.find_elements(By.TAG_NAME, "a")]
    assert not [h for h in hrefs if h.strip().lower().startswith("javascript:")], hrefs


def test_other_pages_of_the_hostile_site_stay_inert(browser: WebDriver, hostile_url: str) -> None:
    for page in ("", "branch/main.html", "queue.html", "failures.html"):
        errors = load(browser, hostile_url + page)
        assert_no_alert(browser)
        assert "pwned" not in browser.title, page
        assert not errors, (page, errors)


# -- a daemon that may be down ----------------------------------------------------

STALE_AFTER = 600.0


@pytest.fixture(scope="module")
def daemon_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, float]]]:
    """Two front pages served by nginx: a last full pass an hour ago (stale: more than
    STALE_AFTER) and one just now. name -> (base URL, last_pass_at)."""
    require_tool("nginx", "nginx-light")
    now = time.time()
    servers, urls = [], {}
    try:
        for name, seen in (("stale", now - 3600), ("fresh", now)):
            root = tmp_path_factory.mktemp(f"daemon-{name}")
            for directory in ("final", "wip"):
                (root / directory).mkdir()
            writer = SiteWriter(root / "html")
            writer.render(one_package_site(seen, STALE_AFTER), seen)
            # The heartbeat every pass writes: its last pass, a minute after the full one.
            writer.write_metrics(f"reconciler_last_pass_timestamp_seconds {seen + 60}\n")
            server = NginxServer.start(root / "html", root / "final", root / "wip", root / "nginx")
            servers.append(server)
            urls[name] = (server.base_url, seen)
        yield urls
    finally:
        for server in servers:
            server.stop()


def daemon_line(driver: WebDriver) -> WebElement:
    line: WebElement = driver.find_element(By.ID, "daemon-seen")
    return line


def test_an_old_last_pass_warns_that_the_daemon_may_be_down(
    browser: WebDriver, daemon_urls: dict[str, tuple[str, float]]
) -> None:
    url, seen = daemon_urls["stale"]
    errors = load(browser, url)
    assert not errors, errors
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "daemon-down").is_displayed(),
        "stale.js did not show the warning",
    )
    screenshot(browser, "front-page-daemon-down.png")
    text = daemon_line(browser).text
    assert "the daemon may be down" in text
    assert iso(seen) in text, "the time of the last pass stays"
    assert "stale" in (daemon_line(browser).get_dom_attribute("class") or "").split()


def test_a_fresh_last_pass_shows_no_warning(
    browser: WebDriver, daemon_urls: dict[str, tuple[str, float]]
) -> None:
    url, seen = daemon_urls["fresh"]
    errors = load(browser, url)
    assert not errors, errors
    # The script has run (it loads deferred, before "complete"): the line is as served.
    assert browser.execute_script(
        "return Array.from(document.scripts).some(s => s.src.includes('static/stale.js?v='))"
    )
    warning = browser.find_element(By.ID, "daemon-down")
    assert not warning.is_displayed()
    text = daemon_line(browser).text
    assert "may be down" not in text
    assert text.startswith(f"daemon last seen: {iso(seen)} (a full pass runs every 5 min)")
    assert "stale" not in (daemon_line(browser).get_dom_attribute("class") or "").split()


def test_the_time_of_the_last_pass_comes_from_the_heartbeat(
    browser: WebDriver, daemon_urls: dict[str, tuple[str, float]]
) -> None:
    """The front page is written only when its content changes; the time of the
    last pass (quiet ones too) is read from metrics.prom, which every pass writes."""
    url, seen = daemon_urls["fresh"]
    errors = load(browser, url)
    assert not errors, errors
    line = wait_for(
        browser,
        lambda d: (
            d.find_element(By.ID, "last-pass").is_displayed() and d.find_element(By.ID, "last-pass")
        ),
        "stale.js did not show the last pass",
    )
    assert line.text == f"last pass (every pass, quiet ones too): {iso(seen + 60)}"


def test_without_javascript_the_last_pass_time_still_shows(
    browser_nojs: WebDriver, daemon_urls: dict[str, tuple[str, float]]
) -> None:
    url, seen = daemon_urls["stale"]
    load(browser_nojs, url)
    text = daemon_line(browser_nojs).text
    assert text.startswith(f"daemon last seen: {iso(seen)}")
    assert not browser_nojs.find_element(By.ID, "daemon-down").is_displayed()
