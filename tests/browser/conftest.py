"""Browser tests: pytest-playwright drives Debian's Chromium against pytest-django's live server.

Nothing is downloaded: the browser is the system's Chromium (`apt-get install -y chromium`),
never one fetched by `playwright install`. A missing browser fails these tests; it never
skips them, so a green run always means the console was driven for real.
"""

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Dialog, Page, Route, expect
from playwright.sync_api import Error as PlaywrightError

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery"  # tests.factories.UserFactory's

# Policies a test may put in place of the console's own (peridio_console.middleware). Neither
# allows inline script or eval; 'wasm-unsafe-eval' lets hash-wasm compile its WebAssembly (and
# allows no JavaScript eval); without it the uploader hashes in plain JavaScript.
NO_WASM_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
WASM_CSP = NO_WASM_CSP.replace("script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'")
NOT_PAGES = ("/static/", "/v1/", "/transfer/")

# A loaded CI machine (or other suites running alongside) can take longer than the default 5 s.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        found = shutil.which("chromium")
        pytest.fail(
            f"The browser tests drive Chromium at {CHROMIUM}, which is missing"
            + (f" (there is one at {found}: set CHROMIUM_PATH={found})" if found else "")
            + ". Install it with `apt-get install -y chromium`; `playwright install` is not "
            "used. Deselect these tests with `-m 'not browser'` to run the rest.",
            pytrace=False,
        )
    return {
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def base_url(live_server) -> str:
    """Pages open relative to the live server (this also replaces pytest-playwright's own
    base_url fixture, which pytest 9 deprecates)."""
    return live_server.url


class Policy:
    """The Content-Security-Policy pages arrive with: the console's own (None), another
    one, or none at all ("")."""

    def __init__(self) -> None:
        self.value: str | None = None


def _is_page(url: str) -> bool:
    return not any(prefix in url for prefix in NOT_PAGES)


@pytest.fixture
def csp(context: BrowserContext) -> Policy:
    """Pages keep the console's own policy unless a test sets another (as a proxy would)."""
    policy = Policy()

    def replace_policy(route: Route) -> None:
        request = route.request
        # The uploader's Web Worker runs under the policy its own script arrives with.
        worker = "/static/js/hash-worker" in request.url
        if (
            policy.value is None
            or request.method != "GET"
            or not (worker or request.is_navigation_request())
        ):
            route.fallback()
            return
        response = route.fetch(max_redirects=0)
        headers = {k: v for k, v in response.headers.items() if k != "content-security-policy"}
        if policy.value:
            headers["content-security-policy"] = policy.value
        route.fulfill(response=response, headers=headers)

    context.route(lambda url: _is_page(url) or "/static/js/hash-worker" in url, replace_policy)
    return policy


class PageProblems:
    """What a page must never do: open a dialog (an injected script ran), break a policy, or
    throw. Failed requests are not problems: some tests cause them on purpose."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.violations: list[str] = []
        self.uncaught: list[str] = []

    def on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.violations.append(message.text)

    def on_page_error(self, error: Exception) -> None:
        self.uncaught.append(str(error))


@pytest.fixture
def problems(context: BrowserContext) -> Iterator[PageProblems]:
    found = PageProblems()

    def watch(page: Page) -> None:
        page.on("dialog", found.on_dialog)
        page.on("console", found.on_console)
        page.on("pageerror", found.on_page_error)

    for page in context.pages:
        watch(page)
    context.on("page", watch)
    yield found
    assert not found.dialogs, f"A dialog opened, so a script ran: {found.dialogs}"
    assert not found.violations, f"The page broke its Content-Security-Policy: {found.violations}"
    assert not found.uncaught, f"A script threw: {found.uncaught}"


@pytest.fixture
def page(page: Page, csp: Policy, problems: PageProblems) -> Page:
    """pytest-playwright's page, under the policy and watched for problems."""
    return page


def log_in(page: Page, username: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("/")


def wait_until(page: Page, condition: Callable[[], bool], timeout: float = 30) -> None:
    """Let the page's events run until `condition` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {condition}.")
        page.wait_for_timeout(50)


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot under test-artifacts/screenshots/ (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    try:
        page.screenshot(path=path, full_page=True)
    except PlaywrightError:  # Chromium without a GPU now and then fails a capture under load
        page.screenshot(path=path, full_page=True)
    return path
