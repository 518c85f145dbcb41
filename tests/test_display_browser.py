"""The waiting-room display (docs/examples/display.html) in a real browser.

The HTTP recipe runs under uvicorn on a loopback port, in this process, over an allocator
with a fixed clock; headless Chromium, driven through Selenium, loads ``/display`` from it.
The tests change the day through the API (or, for what the API does not offer, the
allocator itself) and wait, by polling the page's DOM, for the page to show the change.

Without Chromium and chromedriver the browser tests skip, unless ``$OPD_REQUIRE_BROWSER`` is
set (CI): then they fail. The checks of the page's source run everywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any, Literal

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from conftest import DOCTORS, EXAMPLES, HOURS, Clock, at, load_example
from opd_engine import Allocator, Doctor, Slot

http_service = load_example("http_service")
create_app: Callable[..., FastAPI] = http_service.create_app
InMemory: Callable[[Allocator], object] = http_service.InMemory

PAGE = EXAMPLES / "display.html"
NOW = at(9, 5)  # the first slots (09:00-10:00) are open
CALL_SECONDS = 2.0  # a call must be on the screen this soon
POLL_SECONDS = 2.0  # the page's polling period, when it polls
BOARD_KEY = "board-key-3f9c"
DESK_KEY = "desk-key-81d2"
DOCTOR_KEY = "doctor-key-5e07"
HOSTILE = '<script>window.injected = 1</script><img src="x" onerror="window.injected = 2">'

CHROMIUM_OPTIONS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


# ----------------------------------------------------------------------------- the page's source


class _Tags(HTMLParser):
    """Every start tag of a document with its attributes, and the text of its scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script += data


def parse_page() -> _Tags:
    parser = _Tags()
    parser.feed(PAGE.read_text(encoding="utf-8"))
    parser.close()
    return parser


def test_the_page_loads_nothing_from_elsewhere() -> None:
    page = parse_page()
    text = PAGE.read_text(encoding="utf-8")
    # The only reference to a resource is the empty inline icon (which spares a request
    # for /favicon.ico); no external script, style sheet, font or image.
    references = [
        (tag, name, value)
        for tag, attrs in page.tags
        for name, value in attrs.items()
        if name in {"src", "href", "srcset", "data", "poster", "action"}
    ]
    assert references == [("link", "href", "data:,")]
    assert not re.search(r"@import|url\(|@font-face", text)
    assert not re.search(r"https?:", text)
    assert [attrs for tag, attrs in page.tags if tag == "script"] == [{}]  # one inline script


def test_the_page_never_parses_data_as_html() -> None:
    script = parse_page().script
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert "textContent" in script


def test_the_page_is_marked_for_browsers_and_screen_readers() -> None:
    tags = parse_page().tags
    html = [attrs for tag, attrs in tags if tag == "html"]
    assert html == [{"lang": "en"}]
    metas = [attrs for tag, attrs in tags if tag == "meta"]
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in metas
    assert {"charset": "utf-8"} in metas
    assert re.search(r"<title>[^<]+</title>", PAGE.read_text(encoding="utf-8"))
    live = [attrs for _, attrs in tags if "aria-live" in attrs]
    assert len(live) == 1
    assert live[0]["aria-live"] == "polite"


# ----------------------------------------------------------------------------- a browser


def _browser_paths() -> tuple[str, str] | None:
    """Chromium and its chromedriver, if both are installed."""
    chromium = next(
        (
            path
            for name in ("chromium", "chromium-browser", "google-chrome")
            if (path := shutil.which(name)) is not None
        ),
        None,
    )
    driver = shutil.which("chromedriver")
    return None if chromium is None or driver is None else (chromium, driver)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile, for the whole module."""
    paths = _browser_paths()
    if paths is None:
        message = "no Chromium and chromedriver: install chromium and chromium-driver"
        if os.environ.get("OPD_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    chromium, chromedriver = paths
    profile = tempfile.mkdtemp(prefix="opd-chromium-")
    options = Options()
    for option in CHROMIUM_OPTIONS:
        options.add_argument(option)
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # the requests made
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Server:
    """The app under uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            log_config=None,  # leave the logging configuration alone
            ws="none",
            timeout_graceful_shutdown=1,  # an open event stream must not hold the shutdown
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn did not start"
            assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
            self.thread.join(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        assert not self.thread.is_alive(), "uvicorn did not stop"


# What the page shows, read in one script so that it is one consistent reading. The tests
# select on the page's data- attributes; "shown" means rendered (not hidden, with a box).
SNAPSHOT = """
const shown = (el) => !!el && !el.closest("[hidden]") && el.getClientRects().length > 0;
const one = (root, selector) => root.querySelector(selector);
const connection = one(document, "[data-connection-text]");
return {
  connection: document.body.dataset.connection,
  mode: document.body.dataset.mode,
  banner: shown(connection) ? connection.innerText : "",
  updated: one(document, "[data-updated]").innerText,
  heading: one(document, "h1").innerText,
  title: document.title,
  announce: one(document, "[data-announce]").textContent,
  doctors: Array.from(document.querySelectorAll("[data-doctor]"), (card) => ({
    id: card.dataset.doctor,
    status: card.dataset.status,
    status_shown: shown(one(card, "[data-doctor-status]"))
      ? one(card, "[data-doctor-status]").innerText : "",
    name: one(card, "[data-name]").innerText,
    now_serving: one(card, "[data-now-serving]").dataset.nowServing,
    now_shown: one(card, "[data-now-serving]").innerText,
    next_up: Array.from(card.querySelectorAll("[data-next-up] [data-token]"),
                        (item) => item.innerText),
    waiting: one(card, "[data-waiting]").innerText,
    delay: shown(one(card, "[data-delay]")) ? one(card, "[data-delay]").innerText : "",
  })),
};
"""


class Screen:
    """A browser tab on the display of one server, and an HTTP client of the same server."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver
        self.servers: list[Server] = []
        self.clients: list[httpx.Client] = []
        self.url = ""
        self.day = ""  # the day's path prefix: /hospitals/{hospital}/days/{date} if routed
        self.keys: dict[str, str] = {}  # role -> the API key the test sends for it
        self.requests()  # forget those of earlier tests

    def serve(self, app: FastAPI) -> None:
        server = Server(app)
        self.servers.append(server)
        self.url = server.url
        self.clients.append(httpx.Client(base_url=server.url, timeout=10))

    @property
    def api(self) -> httpx.Client:
        """A client of the server served last."""
        return self.clients[-1]

    def open(self, path: str = "/display") -> None:
        self.driver.get(self.url + self.day + path)

    def read(self) -> dict[str, Any]:
        snapshot: dict[str, Any] = self.driver.execute_script(SNAPSHOT)
        return snapshot

    def doctor(self, doctor_id: str, snapshot: dict[str, Any] | None = None) -> dict[str, Any]:
        snapshot = self.read() if snapshot is None else snapshot
        found = [card for card in snapshot["doctors"] if card["id"] == doctor_id]
        assert len(found) == 1, (doctor_id, snapshot)
        card: dict[str, Any] = found[0]
        return card

    def wait(
        self, shows: Callable[[dict[str, Any]], bool], timeout: float = CALL_SECONDS
    ) -> dict[str, Any]:
        """Poll the page until ``shows(snapshot)``; fail with the last snapshot after
        ``timeout`` seconds."""
        last: list[dict[str, Any]] = []

        def check(_: WebDriver) -> dict[str, Any] | Literal[False]:
            snapshot = self.read()
            last[:] = [snapshot]
            return snapshot if shows(snapshot) else False

        try:
            result: dict[str, Any] = WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
                check
            )
        except TimeoutException:
            pytest.fail(f"not shown within {timeout} s; the page showed {last}")
        return result

    def wait_doctor(
        self, doctor_id: str, shows: Callable[[dict[str, Any]], bool], **options: float
    ) -> dict[str, Any]:
        return self.wait(lambda s: shows(self.doctor(doctor_id, s)), **options)

    def live(self) -> dict[str, Any]:
        """Wait for the page's first board."""
        return self.wait(lambda s: s["connection"] == "live", timeout=10)

    def post(self, path: str, role: str = "admin", **options: Any) -> httpx.Response:
        """POST to the day's ``path`` with the key of ``role``, if the app has keys."""
        key = self.keys.get(role)
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        response = self.api.post(self.day + path, headers=headers, **options)
        assert response.status_code == 200, response.text
        return response

    def book_and_check_in(self, patient: str, doctor: str, slot_id: str) -> str:
        body = {"patient_id": patient, "doctor_id": doctor, "slot_id": slot_id, "source": "ONLINE"}
        booked = self.api.post(
            self.day + "/tokens",
            json=body,
            headers={} if not self.keys else {"Authorization": f"Bearer {self.keys['desk']}"},
        )
        assert booked.status_code == 201, booked.text
        token_id: str = booked.json()["id"]
        self.post(f"/tokens/{token_id}/check-in", "desk")
        return token_id

    def call_next(self, doctor: str) -> str:
        token_id: str = self.post(f"/doctors/{doctor}/call-next", "clinician").json()["id"]
        return token_id

    def requests(self) -> list[str]:
        """The URLs requested by the server's pages (and the pages themselves) since the
        last call."""
        urls = []
        get_log: Callable[[str], list[dict[str, Any]]] = self.driver.get_log  # untyped
        for entry in get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                params = message["params"]
                if self.url and params.get("documentURL", "").startswith(self.url):
                    urls.append(params["request"]["url"])
        return urls

    def cdp(self, command: str, **arguments: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.driver.execute_cdp_cmd(command, arguments)
        return result

    def close(self) -> None:
        self.driver.get("about:blank")  # closes the page's event stream
        self.cdp("Network.setBlockedURLs", urls=[])
        self.cdp("Emulation.clearDeviceMetricsOverride")
        self.cdp("Emulation.setEmulatedMedia", media="", features=[])
        for client in self.clients:
            client.close()
        for server in self.servers:
            server.stop()


@pytest.fixture
def screen(browser: WebDriver) -> Iterator[Screen]:
    screen = Screen(browser)
    try:
        yield screen
    finally:
        screen.close()


def make_day(clock: Clock, *extra: Doctor, places: int = 6) -> Allocator:
    """The fixture's doctors (and ``extra`` ones), each with three hourly slots of
    ``places`` places from 09:00."""
    alloc = Allocator(clock=clock)
    for doctor in (*DOCTORS, *extra):
        alloc.add_doctor(doctor)
        for hour in HOURS:
            alloc.add_slot(
                Slot(f"{doctor.id}@{hour:02d}", doctor.id, at(hour), at(hour + 1), places)
            )
    return alloc


@pytest.fixture
def day() -> Allocator:
    return make_day(Clock(NOW))


# ----------------------------------------------------------------------------- calls


def test_a_call_shows_on_the_display_within_two_seconds(screen: Screen, day: Allocator) -> None:
    screen.serve(create_app(day))
    screen.open()
    first = screen.live()
    assert first["mode"] == "stream"
    assert first["banner"] == ""  # nothing to say while the page is live
    assert first["updated"] == "09:05"  # the server's clock, not the browser's
    assert [(d["id"], d["name"]) for d in first["doctors"]] == [
        ("D1", "Dr. Rao"),
        ("D2", "Dr. Iyer"),
        ("D3", "Dr. Sen"),
    ]
    d1 = screen.doctor("D1", first)
    assert (d1["now_serving"], d1["next_up"], d1["waiting"]) == ("", [], "0")
    assert d1["status_shown"] == ""  # AVAILABLE shows nothing special

    asha = screen.book_and_check_in("Asha", "D1", "D1@09")
    ravi = screen.book_and_check_in("Ravi", "D1", "D1@09")
    meena = screen.book_and_check_in("Meena", "D1", "D1@10")
    screen.wait_doctor("D1", lambda d: d["next_up"] == [asha, ravi, meena] and d["waiting"] == "3")

    assert screen.call_next("D1") == asha
    shown = screen.wait_doctor("D1", lambda d: d["now_shown"] == asha)
    d1 = screen.doctor("D1", shown)
    assert (d1["now_serving"], d1["next_up"], d1["waiting"]) == (asha, [ravi, meena], "2")
    assert shown["announce"] == f"Token {asha}, please go to Dr. Rao."
    assert screen.doctor("D2", shown)["now_serving"] == ""

    assert screen.call_next("D1") == ravi  # the second call replaces the first
    shown = screen.wait_doctor("D1", lambda d: d["now_shown"] == ravi)
    d1 = screen.doctor("D1", shown)
    assert (d1["next_up"], d1["waiting"]) == ([meena], "1")
    assert shown["announce"] == f"Token {ravi}, please go to Dr. Rao."

    # Everything the page asked for came from the server that served it: the page, then
    # the stream (the icon is inline, and nothing else is loaded).
    requested = screen.requests()
    assert requested == [f"{screen.url}/display", f"{screen.url}/events"]


def test_a_paused_unavailable_or_ended_doctor_is_shown_plainly(
    screen: Screen, day: Allocator
) -> None:
    screen.serve(create_app(day))
    screen.open()
    screen.live()
    screen.post("/doctors/D1/pause")
    shown = screen.wait_doctor("D1", lambda d: d["status"] == "PAUSED")
    assert screen.doctor("D1", shown)["status_shown"] == "PAUSED"
    assert screen.doctor("D2", shown)["status_shown"] == ""

    screen.post("/doctors/D2/unavailable")
    screen.post("/doctors/D3/end-day")
    shown = screen.wait(
        lambda s: [d["status"] for d in s["doctors"]] == ["PAUSED", "UNAVAILABLE", "ENDED"]
    )
    assert "UNAVAILABLE" in screen.doctor("D2", shown)["status_shown"]
    assert "ENDED" in screen.doctor("D3", shown)["status_shown"]

    screen.post("/doctors/D1/delay", json={"minutes": 15})
    shown = screen.wait_doctor("D1", lambda d: d["delay"] != "")
    assert "15 min" in screen.doctor("D1", shown)["delay"]
    assert screen.doctor("D2", shown)["delay"] == ""

    screen.post("/doctors/D1/resume")
    shown = screen.wait_doctor("D1", lambda d: d["status"] == "AVAILABLE")
    assert screen.doctor("D1", shown)["status_shown"] == ""


def test_the_board_key_in_the_query_string_reaches_the_board(
    day: Allocator, screen: Screen
) -> None:
    screen.keys = {"board": BOARD_KEY, "desk": DESK_KEY, "clinician": DOCTOR_KEY}
    screen.serve(create_app(day, keys={key: role for role, key in screen.keys.items()}))
    assert screen.api.get("/display").status_code == 401
    assert screen.api.get("/board").status_code == 401
    assert screen.api.get("/board", params={"key": BOARD_KEY}).status_code == 200

    screen.open(f"/display?key={BOARD_KEY}")
    first = screen.live()
    assert first["mode"] == "stream"
    assert [d["id"] for d in first["doctors"]] == ["D1", "D2", "D3"]
    asha = screen.book_and_check_in("Asha", "D2", "D2@09")
    assert screen.call_next("D2") == asha
    screen.wait_doctor("D2", lambda d: d["now_shown"] == asha)
    requested = screen.requests()
    assert requested == [
        f"{screen.url}/display?key={BOARD_KEY}",
        f"{screen.url}/events?key={BOARD_KEY}",
    ]

    # The key may come as the opd_key cookie instead: the page's requests carry it too.
    screen.driver.add_cookie({"name": "opd_key", "value": BOARD_KEY, "path": "/"})
    try:
        screen.open()
        shown = screen.live()
    finally:
        screen.driver.delete_all_cookies()
    assert (shown["mode"], screen.doctor("D2", shown)["now_serving"]) == ("stream", asha)


def test_a_day_routed_by_hospital_and_date_has_its_own_display(
    day: Allocator, screen: Screen
) -> None:
    days = http_service.Days(lambda hospital, date: InMemory(day), ["north"], in_memory=True)
    screen.keys = {"board": BOARD_KEY, "desk": DESK_KEY, "clinician": DOCTOR_KEY}
    screen.serve(create_app(days, keys={key: role for role, key in screen.keys.items()}))
    screen.day = "/hospitals/north/days/2026-11-25"
    query = f"?key={BOARD_KEY}&n=1&department=General+Medicine"
    screen.open(f"/display{query}")
    first = screen.live()
    assert first["mode"] == "stream"
    assert [d["id"] for d in first["doctors"]] == ["D1", "D2"]  # not D3, in Cardiology
    assert first["heading"] == first["title"] == "Now serving \u2014 General Medicine"
    asha = screen.book_and_check_in("Asha", "D1", "D1@09")
    ravi = screen.book_and_check_in("Ravi", "D1", "D1@09")
    assert screen.call_next("D1") == asha
    shown = screen.wait_doctor("D1", lambda d: d["now_shown"] == asha)
    assert screen.doctor("D1", shown)["next_up"] == [ravi]  # n=1 reached the stream
    # The page's relative URLs stayed under the day's path, with its query string.
    assert screen.requests() == [
        f"{screen.url}{screen.day}/display{query}",
        f"{screen.url}{screen.day}/events{query}",
    ]


def test_a_hostile_doctor_name_is_shown_as_text(screen: Screen) -> None:
    clock = Clock(NOW)
    # An id that names a property of every JavaScript object must not confuse the page.
    day = make_day(clock, Doctor("D9", HOSTILE, department=HOSTILE), Doctor("constructor", "Dr. C"))
    screen.serve(create_app(day))
    screen.open()
    first = screen.live()
    assert screen.doctor("D9", first)["name"] == HOSTILE
    assert screen.doctor("constructor", first)["name"] == "Dr. C"
    asha = screen.book_and_check_in("Asha", "D9", "D9@09")
    assert screen.call_next("D9") == asha
    shown = screen.wait_doctor("D9", lambda d: d["now_serving"] == asha)
    assert shown["announce"] == f"Token {asha}, please go to {HOSTILE}."
    injected = screen.driver.execute_script(
        "return [window.injected, document.querySelectorAll('main script, main img').length]"
    )
    assert injected == [None, 0]


# ----------------------------------------------------------------------------- the connection


def test_without_event_source_the_page_polls_and_says_when_the_connection_is_lost(
    screen: Screen, day: Allocator
) -> None:
    screen.serve(create_app(day))
    script = screen.cdp("Page.addScriptToEvaluateOnNewDocument", source="delete window.EventSource")
    try:
        screen.open()
        first = screen.live()
    finally:
        screen.cdp("Page.removeScriptToEvaluateOnNewDocument", identifier=script["identifier"])
    assert first["mode"] == "polling"
    # A poll every 2 s: a call shows within one period and the request's time.
    asha = screen.book_and_check_in("Asha", "D1", "D1@09")
    assert screen.call_next("D1") == asha
    screen.wait_doctor("D1", lambda d: d["now_shown"] == asha, timeout=POLL_SECONDS + CALL_SECONDS)

    screen.cdp("Network.enable")
    screen.cdp("Network.setBlockedURLs", urls=["*/board*"])
    lost = screen.wait(lambda s: s["connection"] == "lost", timeout=POLL_SECONDS + CALL_SECONDS)
    assert lost["banner"] == "Connection lost \u2014 retrying\u2026"
    assert screen.doctor("D1", lost)["now_shown"] == asha  # the last board stays up

    screen.cdp("Network.setBlockedURLs", urls=[])
    ravi = screen.book_and_check_in("Ravi", "D1", "D1@09")
    assert screen.call_next("D1") == ravi
    back = screen.wait_doctor(
        "D1", lambda d: d["now_shown"] == ravi, timeout=POLL_SECONDS + CALL_SECONDS
    )
    assert (back["connection"], back["banner"]) == ("live", "")


def test_a_stream_that_fails_falls_back_to_polling(screen: Screen, day: Allocator) -> None:
    screen.serve(create_app(day))
    screen.cdp("Network.enable")
    screen.cdp("Network.setBlockedURLs", urls=["*/events*"])
    screen.open()
    first = screen.live()
    assert first["mode"] == "polling"
    asha = screen.book_and_check_in("Asha", "D3", "D3@09")
    assert screen.call_next("D3") == asha
    screen.wait_doctor("D3", lambda d: d["now_shown"] == asha, timeout=POLL_SECONDS + CALL_SECONDS)


def test_coming_back_to_the_page_reconnects_it(screen: Screen, day: Allocator) -> None:
    """Leaving the page closes its stream; the browser may keep the page and show it again
    on "back" (its back-forward cache): it must then reconnect, not show a stale board."""
    screen.serve(create_app(day))
    screen.open()
    screen.live()
    screen.driver.execute_script("window.kept = true")
    screen.open("/board")
    asha = screen.book_and_check_in("Asha", "D1", "D1@09")
    assert screen.call_next("D1") == asha
    screen.driver.back()
    shown = screen.wait_doctor("D1", lambda d: d["now_shown"] == asha)
    assert shown["mode"] == "stream"
    assert screen.driver.execute_script("return window.kept") is True  # the same page, kept


# ----------------------------------------------------------------------------- legibility


def _luminance(rgb: list[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour given as 0-255 channels."""
    linear = [
        c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
        for c in (channel / 255 for channel in rgb[:3])
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: list[float], other: list[float]) -> float:
    """WCAG 2 contrast ratio of two opaque colours."""
    light, dark = sorted((_luminance(one), _luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_formula() -> None:
    assert contrast([0, 0, 0], [255, 255, 255]) == pytest.approx(21)
    assert contrast([118, 118, 118], [255, 255, 255]) == pytest.approx(4.54, abs=0.01)


# Every rendered piece of text: its colour and the background it is drawn on (the first
# ancestor's with a colour), both as [r, g, b, alpha].
TEXT_COLOURS = """
const rgba = (value) => {
  const parts = value.match(/[\\d.]+/g).map(Number);
  return parts.length === 3 ? [...parts, 1] : parts;
};
const background = (el) => {
  for (let node = el; node; node = node.parentElement) {
    const colour = rgba(getComputedStyle(node).backgroundColor);
    if (colour[3] > 0) return colour;
  }
  return [255, 255, 255, 1];
};
const found = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const el = node.parentElement;
  const box = el.getBoundingClientRect();
  if (!node.textContent.trim() || box.width <= 1 || box.height <= 1) continue;
  const style = getComputedStyle(el);
  if (style.visibility !== "visible") continue;
  found.push({text: node.textContent.trim(), colour: rgba(style.color),
              background: background(el), size: parseFloat(style.fontSize)});
}
return found;
"""

LAYOUT = """
const px = (selector) => Math.min(...Array.from(document.querySelectorAll(selector),
  (el) => parseFloat(getComputedStyle(el).fontSize)));
const cards = Array.from(document.querySelectorAll("[data-doctor]"),
                         (el) => el.getBoundingClientRect());
return {
  width: innerWidth, height: innerHeight,
  page_width: document.documentElement.scrollWidth,
  page_height: document.documentElement.scrollHeight,
  widest_card: Math.max(...cards.map((box) => box.right)),
  lowest_card: Math.max(...cards.map((box) => box.bottom)),
  now_serving_px: px("[data-now-serving]"),
  next_up_px: px("[data-next-up] [data-token]"),
  name_px: px("[data-name]"),
};
"""


@pytest.fixture
def busy_day(screen: Screen) -> Allocator:
    """Four doctors, each with a patient in consultation and more waiting; one paused,
    one running late, one unavailable; served and shown."""
    clock = Clock(NOW)
    day = make_day(clock, Doctor("D4", "Dr. Chandrasekhar", department="Paediatrics"))
    for doctor in ("D1", "D2", "D3", "D4"):
        for i in range(5):
            day.book(f"{doctor}-P{i}", doctor, f"{doctor}@09", checked_in=True)
        day.call_next(doctor)
    day.pause("D2")
    day.delay("D2", 25)
    day.mark_unavailable("D3")
    screen.serve(create_app(day))
    return day


def test_the_tv_shows_every_doctor_in_large_high_contrast_type(
    screen: Screen, busy_day: Allocator
) -> None:
    screen.cdp(
        "Emulation.setDeviceMetricsOverride",
        width=1920,
        height=1080,
        deviceScaleFactor=1,
        mobile=False,
    )
    screen.cdp(  # no call flashes during the reading
        "Emulation.setEmulatedMedia",
        media="screen",
        features=[{"name": "prefers-reduced-motion", "value": "reduce"}],
    )
    screen.open()
    shown = screen.live()
    assert [d["now_serving"] for d in shown["doctors"]] == ["D1-001", "D2-001", "D3-001", "D4-001"]
    assert [len(d["next_up"]) for d in shown["doctors"]] == [3, 3, 3, 3]
    layout = screen.driver.execute_script(LAYOUT)
    # One screen, no scrolling: every card whole on a 1920x1080 TV.
    assert (layout["width"], layout["height"]) == (1920, 1080)
    assert layout["page_width"] <= 1920
    assert layout["page_height"] <= 1080
    assert layout["lowest_card"] <= 1080
    # About a tenth of the screen's height for the token called, and names and the next
    # tokens big enough to read across a room.
    assert layout["now_serving_px"] >= 100
    assert layout["next_up_px"] >= 40
    assert layout["name_px"] >= 40
    # WCAG AA for normal text (4.5:1), for every piece of text, badges included.
    texts = screen.driver.execute_script(TEXT_COLOURS)
    assert {"PAUSED", "D2-001", "Dr. Chandrasekhar"} <= {t["text"] for t in texts}
    assert any("UNAVAILABLE" in t["text"] for t in texts)
    assert any("25 min" in t["text"] for t in texts)
    for text in texts:
        assert text["colour"][3] == 1, text
        assert text["background"][3] == 1, text
        assert contrast(text["colour"], text["background"]) >= 4.5, text


def test_a_phone_shows_the_cards_one_under_another(screen: Screen, busy_day: Allocator) -> None:
    screen.cdp(
        "Emulation.setDeviceMetricsOverride",
        width=390,
        height=844,
        deviceScaleFactor=3,
        mobile=True,
    )
    screen.open()
    screen.live()
    layout = screen.driver.execute_script(LAYOUT)
    assert layout["width"] == 390
    assert layout["page_width"] <= 390  # no sideways scrolling
    assert layout["widest_card"] <= 390
    assert layout["now_serving_px"] >= 48
    assert layout["next_up_px"] >= 24
