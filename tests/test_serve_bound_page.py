"""The page of `bindsearch serve` over a library of a bound space, in a real browser: a modality the space
adds (here "vibration", a time series bound to pictures) gets its target pill and count, its cards draw its
recordings as plots, and a recording uploaded as that modality is a query."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO
from playwright import sync_api
from serve_helpers import CHROMIUM, CHROMIUM_ARGS, ServerProcess, running_server

import bindsearch
from bindsearch.bind import bind

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
DEMO = REPO / "examples" / "make_bind_demo.py"
TOKEN = "bound-page-token"
TIMEOUT_MS = 30_000
PAIRS = 48


@pytest.fixture(scope="module")
def bound_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pictures and vibration recordings of the bind demo, in a library of a space bound on them (one short
    epoch: the page is under test here, not the tower)."""
    root = tmp_path_factory.mktemp("bound-page")
    data = root / "data"
    subprocess.run([sys.executable, str(DEMO), str(data), "--pairs", str(PAIRS), "--seed", "1"],
                   check=True, capture_output=True)
    report = bind(data / "pairs.csv", "vibration", root / "bound", input="timeseries", epochs=1,
                  space=str(TINY_IMAGEBIND), size="tiny", batch_size=8)
    with bindsearch.open_library(root / "lib", report.space, create=True) as lib:
        lib.index([data / "images", data / "vibration"], workers=0)
    return root / "lib"


@pytest.fixture(scope="module")
def server(bound_library: Path) -> Iterator[ServerProcess]:
    with running_server(bound_library, token=TOKEN, env={"BINDSEARCH_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}) as s:
        yield s


@pytest.fixture(scope="module")
def page(server: ServerProcess) -> Iterator[sync_api.Page]:
    assert Path(CHROMIUM).exists(), f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
        page.goto(f"{server.url}/?token={TOKEN}")
        page.wait_for_selector(".pill[data-target=vibration]")
        yield page
        browser.close()
        assert errors == [], f"console errors: {errors}"


def _modalities(page: sync_api.Page) -> list[str]:
    return page.eval_on_selector_all(".result", "els => els.map(e => e.dataset.modality)")


def _plots_drawn(page: sync_api.Page) -> None:
    page.wait_for_function("() => { const i = [...document.querySelectorAll('.result.m-vibration img.thumb')];"
                           " return i.length > 0 && i.every(x => x.complete && x.naturalWidth > 0); }")


def test_the_added_modality_has_its_pill_and_count(page: sync_api.Page) -> None:
    pills = page.eval_on_selector_all(".pill", "els => els.map(e => e.dataset.target)")
    assert pills == ["all", "image", "vibration"]  # the space's order: built-in ones first
    assert page.inner_text(".pill[data-target=vibration] .pill-count") == str(PAIRS)
    assert page.inner_text(".count-pill[data-modality=vibration]") == f"{PAIRS} vibration"


def test_a_search_in_the_added_modality_draws_its_recordings(page: sync_api.Page, tmp_path: Path) -> None:
    page.fill("input[name=q]", "a red square")
    with page.expect_request("**/api/search") as sent:
        page.click(".pill[data-target=vibration]")
        page.press("input[name=q]", "Enter")
    assert json.loads(sent.value.post_data)["targets"] == ["vibration"]
    page.wait_for_function("() => document.querySelectorAll('.result').length > 0 && [...document"
                           ".querySelectorAll('.result')].every(e => e.dataset.modality === 'vibration')")
    assert set(_modalities(page)) == {"vibration"}
    assert page.locator(".result.k-timeseries").count() == page.locator(".result").count()
    _plots_drawn(page)
    assert page.text_content(".result >> nth=0 >> .badge.kind") == "vibration"
    shot = tmp_path / "vibration.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    wanted = os.environ.get("BINDSEARCH_SCREENSHOT_BOUND")
    if wanted:
        page.screenshot(path=wanted)
    # The detail panel shows the recording's plot at full size.
    page.click(".result >> nth=0 >> .media")
    page.wait_for_selector("dialog#detail[open] .tag-editor")
    page.wait_for_function("() => { const i = document.querySelector('dialog#detail .detail-media img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog#detail", state="hidden")
    page.click(".pill[data-target=vibration]")  # back to every modality


def test_a_recording_uploaded_as_the_added_modality_finds_itself(page: sync_api.Page, bound_library: Path) -> None:
    recording = sorted((bound_library.parent / "data" / "vibration").iterdir())[3]
    page.fill("input[name=q]", "")
    page.set_input_files("input[type=file]", str(recording))
    chip = page.locator(".chip[data-kind=file]")
    options = chip.locator("select.chip-modality option").evaluate_all("os => os.map(o => o.value)")
    assert "vibration" in options and "text" not in options
    chip.locator("select.chip-modality").select_option("vibration")
    with page.expect_response("**/api/search/upload") as answer:
        page.click("#search-btn")
    assert answer.value.status == 200, answer.value.text()
    # Score 1: read by the vibration tower (the IMU tower, which its name would suggest, gives another vector).
    page.wait_for_function(f"() => document.querySelector('.result')?.dataset.path === {json.dumps(str(recording))}")
    assert page.inner_text(".result >> nth=0 >> .score") == "1.000"
    page.click(".chip >> nth=0 >> .chip-remove")


def test_an_expression_names_the_added_modality(page: sync_api.Page, bound_library: Path) -> None:
    recording = sorted((bound_library.parent / "data" / "vibration").iterdir())[0]
    page.fill("input[name=q]", f"vibration:{recording} + a red square")
    page.press("input[name=q]", "Control+Enter")  # one chip per term
    kinds = page.eval_on_selector_all(".chip", "els => els.map(e => e.dataset.kind + ':' + e.dataset.modality)")
    assert kinds[0].endswith(":vibration") and kinds[1] == "text:text", kinds
    with page.expect_response("**/api/search") as answer:
        page.click("#search-btn")
    assert answer.value.status == 200, answer.value.text()
    page.wait_for_selector(".result")
