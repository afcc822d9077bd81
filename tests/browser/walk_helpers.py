"""The walker behind tests/browser/test_walk.py: visit pages in Chromium and collect problems.

A ``Walker`` drives one signed-in browser page for one role at one width. Every page it
shows is checked the same way (console errors, CSP violations, broken sub-resources, raw
decimals, raw field names, horizontal overflow at phone width) and screenshotted; every
problem is kept as one line naming the role, the width and the page, so a single run lists
everything wrong at once instead of stopping at the first failure.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urldefrag, urlsplit

from django.urls import Resolver404, resolve
from playwright.sync_api import Error as PlaywrightError

# Registered before any page script runs, on every document. Playwright evaluates init
# scripts in a way the page's CSP does not block (no 'unsafe-inline' needed);
# test_walk.py checks that a violation is really reported. Violations go to Python through
# an exposed binding, since a page's console may be gone after a navigation.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__walkViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} `
                         + `at ${e.sourceFile || location.href}:${e.lineNumber} (${e.sample || ""})`);
});
"""

# The text a person reads: text nodes outside code, preformatted text and form controls
# (their values are data, not prose), shown or inside a closed <details> one can open.
VISIBLE_TEXT = """
() => {
  const skip = "code, pre, kbd, samp, script, style, template, noscript, textarea, input, select, option";
  const parts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!el || !node.textContent.trim() || el.closest(skip)) continue;
    if (el.checkVisibility() || el.closest("details:not([open])")) parts.push(node.textContent);
  }
  return parts.join(" ").replace(/\\s+/g, " ");
}
"""

# Wider than the viewport means the page scrolls sideways: a table may scroll inside its
# own wrapper (overflow-x auto/scroll), the page itself may not. The culprits are the
# innermost elements sticking out that no scrolling ancestor contains.
OVERFLOW = """
() => {
  const width = document.documentElement.clientWidth;
  const scrollWidth = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
  if (scrollWidth <= width + 1) return null;
  const contained = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const ox = getComputedStyle(p).overflowX;
      if (ox === "auto" || ox === "scroll" || ox === "hidden" || ox === "clip") return true;
    }
    return false;
  };
  const sticksOut = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.right > width + 1; };
  const culprits = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (!sticksOut(el) || contained(el)) continue;
    if (Array.from(el.children).some((c) => sticksOut(c) && !contained(c))) continue;
    const cls = el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "";
    const text = (el.textContent || "").replace(/\\s+/g, " ").trim().slice(0, 40);
    culprits.push(`<${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${cls}> right edge `
                  + `${Math.round(el.getBoundingClientRect().right)}px "${text}"`);
    if (culprits.length >= 4) break;
  }
  return {scrollWidth, width, culprits};
}
"""

LINKS = """
() => Array.from(document.querySelectorAll("a[href]")).map((a) => ({
  href: a.href, text: (a.textContent || "").trim().slice(0, 40), download: a.hasAttribute("download"),
}))
"""

# More than four decimals is a raw Decimal or float (0.0600499250000000).
RAW_DECIMAL = re.compile(r"(?<![\w.])\d+\.\d{5,}")
# Dollars with more than two decimals: only sub-cent amounts may need them.
DOLLARS = re.compile(r"\$\s?(\d[\d,]*\.\d{3,})")
ZERO_DOLLARS = re.compile(r"\$\s?0\.0000(?!\d)")
# snake_case words are names from the code (rotation_period_days), not words a person reads.
# Every part is letters: ids such as resp_9f3a… or req_c0ffee… are data, not names; so is
# the end of a key's hint after its ellipsis (sk-proj-…j_xr: four random characters).
SNAKE_CASE = re.compile(r"(?<![\w.@/…-])[a-z]+(?:_[a-z]+)+(?![\w@/-])")


def _sub_cent(text: str, match: re.Match) -> bool:
    """A dollar amount below a cent with two significant digits ($0.000012), as the money
    filter shows one: more decimals than usual, but read as a number, not a raw Decimal."""
    if not text[max(match.start() - 2, 0) : match.start()].rstrip().endswith("$"):
        return False
    whole, decimals = match.group(0).split(".")
    significant = decimals.lstrip("0")
    return whole == "0" and decimals.startswith("00") and 1 <= len(significant) <= 2


def text_problems(text: str) -> list[tuple[str, str]]:
    """What in a page's visible text is a raw number or a raw field name: (what, where) pairs."""

    def around(match: re.Match) -> str:
        start, end = max(match.start() - 30, 0), min(match.end() + 30, len(text))
        return f"{match.group(0)!r} in “…{text[start:end].strip()}…”"

    problems: list[tuple[str, str]] = []
    raw_spans = set()
    for m in RAW_DECIMAL.finditer(text):
        raw_spans.add(m.end())
        if not _sub_cent(text, m):
            problems.append(("raw decimal (5+ decimals)", around(m)))
    for m in DOLLARS.finditer(text):
        if m.end() not in raw_spans and float(m.group(1).replace(",", "")) >= 0.01:
            problems.append(("dollars with more than 2 decimals", around(m)))
    problems += [
        ("“$0.0000” instead of a readable zero", around(m)) for m in ZERO_DOLLARS.finditer(text)
    ]
    seen: set[str] = set()
    for m in SNAKE_CASE.finditer(text):
        if m.group(0) not in seen:
            seen.add(m.group(0))
            problems.append(("raw field name", around(m)))
    return problems


def page_kind(url: str, refine: Callable[[str, dict], str] | None = None) -> str:
    """The kind of page a URL shows (its view and query keys): one of each is rendered.

    ``refine(view_name, kwargs)`` may add what makes two pages of one view differ (a key's
    kind, a project's environment)."""
    parts = urlsplit(url)
    try:
        match = resolve(parts.path)
    except Resolver404:
        return parts.path
    name = match.view_name + (f"[{refine(match.view_name, match.kwargs)}]" if refine else "")
    keys = sorted({k for k, _ in parse_qsl(parts.query)})
    return name + (f"?{'&'.join(keys)}" if keys else "")


def slugify_kind(kind: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-") or "home"


@dataclass
class Walker:
    """One role at one width: visit, check, screenshot, collect problems."""

    page: object
    base_url: str
    role: str
    width: int
    shots: Path
    staff: bool = False
    max_pages: int = 40
    refine_kind: Callable[[str, dict], str] | None = None
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(
        default_factory=lambda: {"open": 0.0, "check": 0.0, "screenshot": 0.0, "links": 0.0}
    )
    visited: list[str] = field(default_factory=list)
    checked_links: dict[str, int] = field(default_factory=dict)
    _current: str = ""
    _documents: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.expose_binding(
            "__walkViolation",
            lambda source, text: self.fail(f"CSP violation: {text}", where=source["frame"].url),
        )
        self.page.add_init_script(REPORT_VIOLATIONS)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.fail(f"page error: {exc}"))
        self.page.on("response", self._response)

    # -- collecting ----------------------------------------------------------------------
    def fail(self, what: str, where: str | None = None) -> None:
        path = self._path(where or self._current or self.page.url)
        self.problems.append(f"[{self.role} @ {self.width}px] {path}: {what}")

    def _path(self, url: str) -> str:
        parts = urlsplit(url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        where = msg.location.get("url", "")
        # Chromium logs every document that answers >= 400; a document's status is checked
        # where it is opened (an expected 403 or 404 page is not an error).
        if where in self._documents and msg.text.startswith("Failed to load resource"):
            return
        # The Django admin's pages have no icon link, so Chromium asks for /favicon.ico.
        if where.endswith("/favicon.ico") and "status of 404" in msg.text:
            return
        self.fail(f"console error ({where}): {msg.text}")

    def _response(self, response) -> None:
        if response.request.resource_type == "document":
            self._documents.add(response.url)
            return
        if response.url.endswith("/favicon.ico"):
            return
        if response.status >= 400:
            self.fail(f"HTTP {response.status} for the sub-resource {response.url}")

    # -- one page ------------------------------------------------------------------------
    def settle(self) -> None:
        """Wait until the page and any htmx request it started on load are done."""
        self.page.wait_for_load_state("load")
        # A selector, not wait_for_function: a string predicate may be compiled in the page,
        # which the CSP (no 'unsafe-eval') refuses.
        self.page.wait_for_selector(".htmx-request", state="detached", timeout=10_000)

    def check(self, name: str) -> None:
        """Check the page now shown and save its full-page screenshot as ``name``."""
        self._current = self.page.url
        started = time.monotonic()
        self.settle()
        grouped: dict[str, list[str]] = {}
        for what, where in text_problems(self.page.evaluate(VISIBLE_TEXT)):
            grouped.setdefault(what, []).append(where)
        for what, wheres in grouped.items():
            more = f" and {len(wheres) - 3} more" if len(wheres) > 3 else ""
            self.fail(f"{what} ×{len(wheres)}: {'; '.join(wheres[:3])}{more}")
        if self.width < 600:
            overflow = self.page.evaluate(OVERFLOW)
            if overflow:
                self.fail(
                    f"the page is {overflow['scrollWidth']}px wide in a {overflow['width']}px viewport "
                    f"(scrolls sideways); sticking out: {'; '.join(overflow['culprits']) or '?'}"
                )
        shot = time.monotonic()
        self.seconds["check"] += shot - started
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)
        self.seconds["screenshot"] += time.monotonic() - shot

    def _open(self, url: str, name: str) -> int | None:
        """Open and check one page; its status, or None if the browser could not show it
        (reported, and the walk goes on: one run lists every problem)."""
        self._current = url
        try:
            started = time.monotonic()
            response = self.page.goto(url, wait_until="load")
            self.seconds["open"] += time.monotonic() - started
            self._current = self.page.url
            self.check(name)
        except PlaywrightError as exc:
            self.fail(f"the browser could not show the page: {str(exc).splitlines()[0]}")
            return None
        return response.status if response is not None else 0

    def visit(self, url: str, name: str, *, expect: tuple[int, ...] = (200,)) -> int | None:
        """Open ``url`` typed in (not by a link), check it, return its status."""
        status = self._open(url, name)
        if status is not None and status not in expect:
            self.fail(f"answered {status} (expected {' or '.join(map(str, expect))})")
        return status

    def submit(self, selector: str, name: str) -> None:
        """Click the submit button ``selector`` and check the page the form leads to."""
        with self.page.expect_navigation():
            self.page.click(selector)
        self.check(name)

    # -- the crawl -----------------------------------------------------------------------
    def _follow(self, url: str, source: str) -> bool:
        """Whether a link is one to open; links never to open are skipped, broken ones reported."""
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.base_url or parts.scheme not in (
            "http",
            "https",
        ):
            return False
        if parts.path.startswith("/accounts/logout"):
            return False
        if parts.path.startswith("/admin/"):
            if not self.staff:
                self.fail(
                    f"links to the Django admin ({parts.path}) for a user who is not staff",
                    where=source,
                )
            return False  # the superuser's admin pages are visited directly, not crawled
        return True

    def _probe(self, url: str, source: str, text: str) -> tuple[int, str]:
        """Status and content type of a link, fetched with the page's own session."""
        if url in self.checked_links:
            return self.checked_links[url], ""
        started = time.monotonic()
        response = self.page.context.request.get(url, max_redirects=5)
        self.seconds["links"] += time.monotonic() - started
        status, ctype = response.status, response.headers.get("content-type", "")
        landed = urlsplit(response.url).path
        response.dispose()
        self.checked_links[url] = status
        if landed.startswith("/accounts/login") and not urlsplit(url).path.startswith(
            "/accounts/login"
        ):
            self.fail(
                f"link “{text}” to {self._path(url)} sends a signed-in user to the sign-in page",
                where=source,
            )
        if status >= 400:
            dead = (
                " (a dead end: the link leads to a page this role may not see)"
                if status == 403
                else ""
            )
            self.fail(f"link “{text}” to {self._path(url)} answers {status}{dead}", where=source)
        return status, ctype

    def check_link(self, url: str, source: str, text: str) -> bool:
        """Fetch a link; report it if broken, check it if it is a CSV export. Whether it is
        an HTML page to render."""
        status, ctype = self._probe(url, source, text)
        if urlsplit(url).path.endswith(".csv") or "csv" in ctype:
            if status != 200 or not ctype.startswith("text/csv"):
                self.fail(
                    f"CSV link “{text}” to {self._path(url)} answers {status} "
                    f"{ctype or '(no content type)'}, expected 200 text/csv",
                    where=source,
                )
            return False
        return status < 400 and (not ctype or "text/html" in ctype)

    def crawl(self, start: str) -> None:
        """Breadth-first over same-origin links from ``start``: one page of each kind rendered,
        every link's status checked, CSV exports fetched and checked, at most max_pages."""
        queue: deque[tuple[str, str, str]] = deque([(start, start, "start")])
        kinds: set[str] = set()
        seen: set[str] = {start}
        while queue:
            url, source, text = queue.popleft()
            if not self.check_link(url, source, text):
                continue
            kind = page_kind(url, self.refine_kind)
            if kind in kinds or len(self.visited) >= self.max_pages:
                continue
            kinds.add(kind)
            self.visited.append(url)
            status = self._open(url, f"{len(self.visited):02d}-{slugify_kind(kind)}")
            if status is None:
                continue
            if status >= 400:
                self.fail(f"answered {status} in the browser")
            for link in self.page.evaluate(LINKS):
                href = urldefrag(link["href"]).url
                if href in seen or not self._follow(href, self.page.url):
                    continue
                seen.add(href)
                queue.append((href, self.page.url, link["text"]))
