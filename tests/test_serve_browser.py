"""The page of `bindsearch serve` in a real browser (Debian's Chromium driven by Playwright) against a real
server process over the demo library: searching by words, by a file, by a built query; more like this;
the keyboard; errors; tags. Every page must log no console error and ask no host but the server."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright import sync_api
from serve_helpers import CHROMIUM, CHROMIUM_ARGS, ServerProcess, demo_library, running_server

TOKEN = "browser-test-token"
TIMEOUT_MS = 30_000

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_library(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def media(demo: Path) -> Path:
    return demo.parent / "media"


@pytest.fixture(scope="module")
def server(demo: Path) -> Iterator[ServerProcess]:
    with running_server(demo, token=TOKEN, env={"BINDSEARCH_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}) as running:
        yield running


@pytest.fixture(scope="module")
def playwright() -> Iterator[object]:
    """One Playwright for the module (a second one cannot start while the first runs)."""
    # Debian's Chromium (.ci/run installs it): Playwright's own browser download is not used.
    assert Path(CHROMIUM).exists(), f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: object) -> Iterator[object]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@dataclass
class Watched:
    """A page, and what it logged and asked for."""

    page: object
    base: str
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    allowed_errors: list[str] = field(default_factory=list)  # regexes of console errors a test expects

    def search(self, text: str) -> None:
        self.page.fill("input[name=q]", text)
        with self.page.expect_response(lambda r: "/api/search" in r.url):
            self.page.press("input[name=q]", "Enter")
        self.page.wait_for_selector(".result")

    def cards(self) -> list[dict[str, str]]:
        return self.page.eval_on_selector_all(
            ".result:not([hidden])", "els => els.map(e => ({id: e.dataset.id, path: e.dataset.path}))")


@pytest.fixture
def watched(browser: object, server: ServerProcess) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark",
                                  permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    w = Watched(page, server.url)
    page.on("console", lambda m: w.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: w.errors.append(f"uncaught: {e}"))

    def on_request(request: object) -> None:
        url = request.url
        if not (url.startswith(server.url + "/") or url.startswith(("data:", "blob:"))):
            w.foreign.append(url)

    page.on("request", on_request)
    page.goto(f"{server.url}/?token={TOKEN}")  # the server sets its cookie and sends the page home
    page.wait_for_selector(".pill[data-target=image]")
    yield w
    try:
        unexpected = [e for e in w.errors if not any(re.search(a, e) for a in w.allowed_errors)]
        assert unexpected == [], f"console errors: {unexpected}"
        assert w.foreign == [], f"requests to other hosts: {w.foreign}"
    finally:
        context.close()


def _post_json(request: object) -> dict:
    return json.loads(request.post_data)


def test_words_find_cards_with_ids_paths_and_scores(watched: Watched, media: Path) -> None:
    page = watched.page
    assert page.url == watched.base + "/"  # the token went into a cookie, out of the address
    watched.search("a rocket on the launch pad")
    cards = watched.cards()
    assert len(cards) >= 10
    for card in cards:
        assert card["id"].isdigit()
        assert Path(card["path"]).is_absolute() and Path(card["path"]).is_relative_to(media)
    scores = page.eval_on_selector_all(".result .score", "els => els.map(e => e.textContent)")
    assert all(re.fullmatch(r"-?\d\.\d{3}", s) for s in scores), scores
    ranks = page.eval_on_selector_all(".result .rank", "els => els.map(e => e.textContent)")
    assert ranks == [f"#{n}" for n in range(1, len(cards) + 1)]
    assert re.search(r"took [\d.]+ ms", page.inner_text("#status"))
    # Text cards show their snippet, fetched from the item.
    page.wait_for_function("() => [...document.querySelectorAll('.m-text .snippet')].every(s => "
                           "!s.classList.contains('loading') && s.textContent.length > 5)")
    # Copy path: the card's full path lands on the clipboard.
    page.click(".result >> nth=0 >> .act.copy")
    page.wait_for_selector("#toast.shown:has-text('Path copied')")
    assert page.evaluate("() => navigator.clipboard.readText()") == cards[0]["path"]
    # One target: only that modality comes back.
    with page.expect_request("**/api/search") as sent:
        page.click(".pill[data-target=image]")
    assert _post_json(sent.value)["targets"] == ["image"]
    page.wait_for_function("() => [...document.querySelectorAll('.result')].every(e => e.dataset.modality === 'image')")
    assert len(watched.cards()) == 5


def test_a_file_finds_itself_first(watched: Watched, media: Path) -> None:
    page = watched.page
    cat = media / "cat.jpg"
    page.set_input_files("input[type=file]", str(cat))
    page.wait_for_selector(".chip[data-kind=file]")
    assert "cat.jpg" in page.inner_text(".chip[data-kind=file] .chip-label")
    with page.expect_request("**/api/search/upload") as sent:
        page.click("#search-btn")
    assert sent.value.headers["content-type"].startswith("multipart/form-data; boundary=")
    page.wait_for_selector(".result")
    assert page.get_attribute(".result >> nth=0", "data-path") == str(cat)
    assert page.inner_text(".result >> nth=0 >> .score") == "1.000"


def test_more_like_this_replaces_the_query_with_a_like_term(watched: Watched) -> None:
    page = watched.page
    watched.search("a cup of coffee")
    first = watched.cards()[0]
    with page.expect_request("**/api/search") as sent:
        page.click(".result >> nth=0 >> .act.like")
    body = _post_json(sent.value)
    assert body["terms"] == [{"like": int(first["id"]), "weight": 1}]
    assert body["expression"] is None
    page.wait_for_function(f"() => document.querySelector('.result') && "
                           f"document.querySelector('.result').dataset.id !== '{first['id']}'")
    chips = page.locator(".chip")
    assert chips.count() == 1
    assert chips.first.get_attribute("data-kind") == "like"
    assert Path(first["path"]).name in chips.first.inner_text()
    assert page.input_value("input[name=q]") == ""
    assert first["id"] not in [c["id"] for c in watched.cards()]  # a like search leaves the item out


def test_a_query_built_from_chips(watched: Watched, media: Path, server: ServerProcess) -> None:
    page = watched.page
    page.fill("input[name=q]", "a rocket")
    page.click("#add-term")
    page.set_input_files("input[type=file]", str(media / "coffee.jpg"))
    chips = page.locator(".chip")
    assert chips.count() == 2
    assert page.input_value("input[name=q]") == ""
    assert [chips.nth(n).get_attribute("data-kind") for n in range(2)] == ["text", "file"]
    assert [chips.nth(n).locator(".chip-weight").input_value() for n in range(2)] == ["1", "1"]
    text_chip = chips.nth(0)
    text_chip.locator(".chip-weight").fill("2")
    text_chip.locator(".chip-sign").click()
    assert "negative" in (chips.nth(0).get_attribute("class") or "")
    assert chips.nth(0).get_attribute("data-weight") == "-2"
    with page.expect_request("**/api/search/upload") as sent:
        page.click("#search-btn")
    assert sent.value.headers["content-type"].startswith("multipart/form-data")
    page.wait_for_selector(".result")
    shown = [(c["id"], s) for c, s in zip(watched.cards(), page.locator(".result .score").all_inner_texts())]
    # The same query sent by hand: the page's results are those of -2 × "a rocket" + the photo, in its order.
    def by_hand(text_weight: float) -> list[tuple[str, str]]:
        terms = [{"modality": "text", "value": "a rocket", "weight": text_weight}, {"upload": 0, "weight": 1}]
        with server.client() as client:
            answer = client.post("/api/search/upload", data={"terms": json.dumps(terms), "k": "24", "targets": "all"},
                                 files=[("file", ("coffee.jpg", (media / "coffee.jpg").read_bytes(), "image/jpeg"))])
        assert answer.status_code == 200, answer.text
        return [(str(h["id"]), f"{h['score']:.3f}") for h in answer.json()["hits"]]

    assert shown == by_hand(-2)
    assert shown != by_hand(2)
    # Ctrl+Enter turns an expression into one chip per term; a chip can be removed.
    page.fill("input[name=q]", "0.5:a dog - a leash")
    page.press("input[name=q]", "Control+Enter")
    assert page.locator(".chip").count() == 4
    assert page.get_attribute(".chip >> nth=2", "data-weight") == "0.5"
    assert page.get_attribute(".chip >> nth=3", "data-weight") == "-1"
    page.click(".chip >> nth=3 >> .chip-remove")
    assert page.locator(".chip").count() == 3


def test_keyboard_moves_across_cards_and_opens_and_closes_the_detail(watched: Watched) -> None:
    page = watched.page
    watched.search("a photo")
    ids = [c["id"] for c in watched.cards()]
    columns = page.evaluate("(() => { const c = [...document.querySelectorAll('.result')];"
                            " return c.filter(e => e.offsetTop === c[0].offsetTop).length; })()")
    assert columns >= 2
    focused = "document.activeElement.dataset.id"
    page.focus(".result >> nth=0")
    page.keyboard.press("ArrowRight")
    assert page.evaluate(focused) == ids[1]
    page.keyboard.press("ArrowDown")
    assert page.evaluate(focused) == ids[1 + columns]
    page.keyboard.press("ArrowLeft")
    assert page.evaluate(focused) == ids[columns]
    page.keyboard.press("ArrowUp")
    assert page.evaluate(focused) == ids[0]
    page.keyboard.press("Enter")
    page.wait_for_selector("dialog#detail[open] .meta")
    page.wait_for_selector("dialog#detail[open] .tag-editor")  # the item's details arrived
    assert page.inner_text("dialog#detail .detail-path code") == watched.cards()[0]["path"]
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog#detail", state="hidden")
    assert page.evaluate(focused) == ids[0]  # focus is back on the card it opened from


def test_errors_show_in_the_alert_bar_and_the_page_goes_on(watched: Watched) -> None:
    page = watched.page
    watched.allowed_errors.append(r"status of 400")  # the browser logs each refused request
    alert = page.locator("[role=alert]")
    assert alert.is_hidden()
    page.fill("input[name=q]", "2:")
    with page.expect_response("**/api/search") as answer:
        page.press("input[name=q]", "Enter")
    assert answer.value.status == 400
    alert.wait_for(state="visible")
    assert "empty" in alert.inner_text()
    assert "\n" not in alert.inner_text().strip()
    watched.search("a cat")
    assert alert.is_hidden()
    # A filter date that is not a date.
    page.click("#filters-toggle")
    page.fill("#filters input[name=after]", "notadate")
    with page.expect_response("**/api/search") as answer:
        page.press("#filters input[name=after]", "Enter")
    assert answer.value.status == 400
    alert.wait_for(state="visible")
    assert "notadate" in alert.inner_text()
    assert len(watched.cards()) > 0  # the last results stay
    page.fill("#filters input[name=after]", "2000-01-01")
    with page.expect_response("**/api/search") as answer:
        page.click("#filters button[type=submit]")
    assert answer.value.status == 200
    assert _post_json(answer.value.request)["filters"]["after"] == "2000-01-01"
    alert.wait_for(state="hidden")
    assert page.inner_text("#filter-count") == "1"


def test_cut_off_and_sort_work_on_the_loaded_results(watched: Watched, server: ServerProcess) -> None:
    page = watched.page
    watched.search("a sound")
    total = len(watched.cards())
    calibrated = sorted(float(v) for v in page.eval_on_selector_all(
        ".result", "els => els.map(e => e.dataset.calibrated)"))
    middle = calibrated[len(calibrated) // 2]
    page.eval_on_selector("#cutoff", "(e, v) => { e.value = v; e.dispatchEvent(new Event('input')); }", middle)
    visible = watched.cards()
    assert 0 < len(visible) < total
    assert "below the cut-off" in page.inner_text("#status")
    page.eval_on_selector("#cutoff", "e => { e.value = e.min; e.dispatchEvent(new Event('input')); }")
    assert len(watched.cards()) == total
    by_rank = [c["id"] for c in watched.cards()]
    with server.client() as client:
        mtime = {i: client.get(f"/api/items/{i}").json()["mtime"] for i in by_rank}
    page.select_option("#sort", "oldest")
    oldest = sorted(by_rank, key=lambda i: mtime[i])  # a stable sort: equal times keep their rank
    page.wait_for_function("ids => [...document.querySelectorAll('.result')].map(e => e.dataset.id).join() === "
                           "ids.join()", arg=oldest)
    page.select_option("#sort", "score")
    page.wait_for_function("ids => [...document.querySelectorAll('.result')].map(e => e.dataset.id).join() === "
                           "ids.join()", arg=by_rank)


def test_tags_are_edited_in_the_detail_panel(watched: Watched) -> None:
    page = watched.page
    watched.search("a rocket")
    first = page.locator(".result").first
    first.click(position={"x": 40, "y": 40})
    page.wait_for_selector("dialog#detail[open] .tag-input")
    page.fill("dialog#detail .tag-input", "launch")
    with page.expect_response("**/tags") as answer:
        page.press("dialog#detail .tag-input", "Enter")
    assert answer.value.status == 200
    page.wait_for_selector("dialog#detail .tags.editable .tag:has-text('launch')")
    assert first.locator(".tags .tag").all_inner_texts() == ["launch"]
    page.wait_for_selector("#tags option[value=launch]", state="attached")
    with page.expect_response("**/tags"):
        page.click("dialog#detail .tag-remove")
    page.wait_for_selector("dialog#detail .tags.editable .tag", state="detached")
    assert first.locator(".tags .tag").count() == 0
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog#detail", state="hidden")


def test_pages_load_on_load_more_and_on_scroll(watched: Watched) -> None:
    page = watched.page
    page.set_viewport_size({"width": 400, "height": 500})  # a phone: two columns, the grid's end out of view
    page.goto(f"{watched.base}/?k=5")  # five results a page (the cookie holds the token now)
    page.wait_for_selector(".pill[data-target=image]")
    offsets: list[int] = []
    page.on("request", lambda r: offsets.append(_post_json(r)["offset"]) if r.url.endswith("/api/search") else None)
    watched.search("a picture")
    assert len(watched.cards()) == 5
    page.click("#load-more")
    page.wait_for_function("() => document.querySelectorAll('.result').length === 10")
    assert offsets == [0, 5]
    page.mouse.wheel(0, 10_000)  # the end of the grid comes into view: the next page loads
    page.wait_for_function("() => document.querySelectorAll('.result').length === 14")
    page.wait_for_selector("#load-more", state="hidden")  # 4 < 5: there are no more
    assert offsets == [0, 5, 10]
    assert len({c["id"] for c in watched.cards()}) == 14


def test_screenshots_of_the_results(watched: Watched, tmp_path: Path) -> None:
    page = watched.page
    page.click("#windows")  # every matching moment, for long media
    watched.search("a rocket launch")
    page.wait_for_function("() => [...document.querySelectorAll('.result img.thumb')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    page.wait_for_function("() => [...document.querySelectorAll('.m-text .snippet')].every(s => "
                           "!s.classList.contains('loading'))")
    shot = tmp_path / "results.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    wanted = os.environ.get("BINDSEARCH_SCREENSHOT")
    if wanted:
        Path(wanted).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=wanted)


def test_a_recording_from_the_microphone_is_a_query(playwright: object, server: ServerProcess) -> None:
    """Chromium's fake capture device stands in for a microphone (a beeping tone), granted without a prompt."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
    try:
        context = browser.new_context(permissions=["microphone"])
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{server.url}/?token={TOKEN}")
        page.wait_for_selector("#record:not([hidden])")
        page.click("#record")
        page.wait_for_selector("#record.recording")
        page.wait_for_function("() => document.getElementById('rec-time').textContent >= '0:01'")
        page.click("#record")
        chip = page.wait_for_selector(".chip[data-kind=recording][data-modality=audio]")
        assert "recording" in chip.inner_text()
        with page.expect_response("**/api/search/upload") as answer:
            page.click("#search-btn")
        # 200 with hits: the server read the browser's recording as sound (an unreadable one is 400).
        assert answer.value.status == 200, answer.value.text()
        assert answer.value.json()["hits"]
        page.wait_for_selector(".result")
        assert errors == []
    finally:
        browser.close()
