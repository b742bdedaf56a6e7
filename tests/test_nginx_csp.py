"""The Content-Security-Policy of deploy/nginx.conf in a real Chromium, through nginx.

The site's pages load, style and run their scripts under the shipped policy with
no violation: none reported to a `securitypolicyviolation` listener (installed
over DevTools before any page script runs, which no CSP can block) and no
"Content Security Policy" message in the browser's console. A positive control
shows the policy is really enforced: an inline script and an inline style put
into a page are refused and reported. On CI (CI=true) a missing browser or nginx
fails the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from .nginx_server import (
    TIMEOUT,
    generated_site_fixture,  # noqa: F401 (fixture)
    nginx_url_fixture,  # noqa: F401 (fixture)
)
from .test_browser import console, make_driver, wait_for

RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.effectiveDirective + " blocked " + (e.blockedURI || "inline")
    + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""

PAGES = [
    "",
    "index.html",
    "branch/main.html",
    "package/main/hello-x86.html",
    "queue.html",
    "failures.html",
    "operations.html",
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")
        driver = make_driver(tmp_path_factory.mktemp("chromium-csp") / "profile")
        try:
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORDER})
            yield driver
        finally:
            driver.quit()


def open_page(driver: WebDriver, url: str) -> list[dict[str, Any]]:
    """Load `url`; every console message it produced (not only the severe ones)."""
    console(driver)
    driver.get(url)
    wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete")
    return console(driver)


def violations(driver: WebDriver) -> list[str]:
    found: list[str] = driver.execute_script("return window.__cspViolations")
    return found


def csp_messages(messages: list[dict[str, Any]]) -> list[str]:
    return [
        str(m.get("message"))
        for m in messages
        if "content security policy" in str(m.get("message")).lower()
    ]


@pytest.mark.parametrize("page", PAGES)
def test_pages_load_under_the_policy_without_a_violation(
    page: str, browser: WebDriver, nginx_url: str
) -> None:
    url = nginx_url + page
    policy = requests.get(url, timeout=TIMEOUT).headers.get("Content-Security-Policy", "")
    assert "default-src 'none'" in policy, f"{url}: no policy to test under"
    messages = open_page(browser, url)
    assert violations(browser) == [], violations(browser)
    assert not csp_messages(messages), csp_messages(messages)
    severe = [m for m in messages if m.get("level") == "SEVERE"]
    assert not [m for m in severe if "/favicon.ico " not in str(m.get("message"))], severe
    # The style sheet and the icon loaded (allowed by style-src and img-src 'self').
    rules = browser.execute_script("return document.styleSheets[0].cssRules.length")
    assert rules > 10, "static/style.css did not apply"
    badge = browser.find_element(By.CSS_SELECTOR, "img.badge")
    assert browser.execute_script("return arguments[0].naturalWidth", badge) > 0


def test_scripts_run_and_the_filter_form_submits_nowhere(
    browser: WebDriver, nginx_url: str
) -> None:
    """filter.js runs (script-src 'self'); Enter in its box is handled by the script,
    so form-action 'none' never has anything to refuse."""
    url = nginx_url + "branch/main.html"
    open_page(browser, url)
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "grid-filter").get_dom_attribute("hidden") is None,
        "filter.js did not run",
    )
    box = browser.find_element(By.ID, "filter-name")
    box.send_keys("hello", Keys.ENTER)
    wait_for(browser, lambda d: d.find_element(By.ID, "grid-count").text.strip() != "")
    assert browser.current_url == url
    assert violations(browser) == [], violations(browser)
    assert not csp_messages(console(browser))


def test_the_policy_is_enforced(browser: WebDriver, nginx_url: str) -> None:
    """A positive control: inline script and style, as an injection would add them,
    are refused by the browser and reported (so the checks above can see one)."""
    open_page(browser, nginx_url + "index.html")
    browser.execute_script(
        "const s = document.createElement('script');"
        "s.textContent = 'window.__inlineRan = true;';"
        "document.body.appendChild(s);"
        "const st = document.createElement('style');"
        "st.textContent = 'body { background: red; }';"
        "document.head.appendChild(st);"
        "const frame = document.createElement('iframe');"
        "frame.src = 'https://example.org/';"
        "document.body.appendChild(frame);"
    )
    wait_for(browser, lambda d: len(violations(d)) >= 3, "no violation was reported")
    assert browser.execute_script("return window.__inlineRan === undefined")
    found = " | ".join(violations(browser))
    for directive in ("script-src-elem", "style-src-elem", "frame-src"):
        assert directive in found, found
    assert csp_messages(console(browser)), "Chromium logged no CSP message"
