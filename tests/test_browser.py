"""A student's first steps in a real browser: headless Chromium (Debian's package, driven by Playwright) opens the
student lab that `make lab` serves, lands on the start page, opens notebook 01 from its link, runs the cells before
the first exercise, sees a plot and no red text, presses Validate and reads the summary.

The lab serves a copy of notebooks/, so that nothing the browser saves reaches the repository. Screenshots of each
step go to test-artifacts/browser/ (CI keeps them). WORKSHOP_CHROMIUM names another Chromium-based browser. Without
one or without Playwright the test is skipped, unless WORKSHOP_REQUIRE_BROWSER=1 (set by .ci/run): it fails then.
"""

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from grader.release import REPO
from tests.test_lab import free_port

CHROMIUM = Path(os.environ.get("WORKSHOP_CHROMIUM", "/usr/bin/chromium"))  # Debian's package; no browser downloads
SHOTS = REPO / "test-artifacts" / "browser"
TOKEN = "workshop-browser-token"
try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    sync_playwright = None
if sync_playwright is None or not CHROMIUM.exists():
    why = f"needs Playwright's Python package and a Chromium at {CHROMIUM}"
    if os.environ.get("WORKSHOP_REQUIRE_BROWSER") == "1":
        raise RuntimeError(why)
    pytest.skip(why, allow_module_level=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` on a free port, serving a copy of notebooks/ in the quick profile; its base URL."""
    root = tmp_path_factory.mktemp("lab") / "notebooks"
    shutil.copytree(REPO / "notebooks", root)
    port = free_port()
    server = subprocess.Popen(["make", "--no-print-directory", "lab", f"PORT={port}", f"ROOT={root}"], cwd=REPO,
                              env={**os.environ, "JUPYTER_TOKEN": TOKEN, "WORKSHOP_PROFILE": "quick"},
                              start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=5)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and server.poll() is None, "the lab did not start within 120 s"
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.communicate(timeout=30)


def test_a_student_opens_notebook_01_runs_it_and_validates(lab):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(f"{lab}/?token={TOKEN}")  # the server sends a browser to its start page
            start = page.locator(".jp-RenderedMarkdown").filter(has_text="Start here")
            expect(start.first).to_be_visible(timeout=60_000)
            page.screenshot(path=SHOTS / "1-start-page.png")

            page.locator(".jp-RenderedMarkdown").get_by_role("link", name="backpropagation", exact=True).click()
            notebook = page.locator(".jp-NotebookPanel:visible")
            # the kernel, started: the status bar names it and says Idle (the execution indicator says idle before
            # there is a kernel, and keys pressed then run nothing)
            expect(page.locator("#jp-main-statusbar")).to_contain_text(re.compile(r"Python 3.*\| Idle"),
                                                                        timeout=120_000)
            cells = notebook.locator(".jp-Notebook .jp-Cell")
            given = nbformat.read(REPO / "notebooks" / "01-backprop" / "01-backprop.ipynb", as_version=4).cells
            first_exercise = next(i for i, c in enumerate(given) if c.metadata.get("nbgrader", {}).get("solution"))
            last_code = max(i for i in range(first_exercise) if given[i].cell_type == "code")
            page.screenshot(path=SHOTS / "2-notebook-01.png")

            cells.nth(1).locator(".jp-InputArea-prompt").click()
            for _ in range(1, first_exercise):
                page.keyboard.press("Shift+Enter")
            ran_prompt = re.compile(r"\[\d+\]:")
            expect(cells.nth(last_code).locator(".jp-InputArea-prompt")).to_have_text(ran_prompt, timeout=120_000)
            deadline = time.monotonic() + 60  # outputs can be drawn a little after the prompt shows the count
            while True:
                plots, red, shown = 0, [], ""
                for i in (i for i in range(first_exercise) if given[i].cell_type == "code"):
                    cells.nth(i).scroll_into_view_if_needed()  # the lab renders only the cells in view
                    outputs = cells.nth(i).locator(".jp-OutputArea-output")
                    plots += outputs.locator("img").count()
                    red += outputs.and_(page.locator("[data-mime-type='application/vnd.jupyter.stderr']")
                                        ).all_inner_texts()
                    shown += cells.nth(i).locator(".jp-OutputArea").inner_text()
                if plots or time.monotonic() > deadline:
                    break
                page.wait_for_timeout(1000)
            assert plots >= 1, "no plot was rendered before the first exercise"
            assert not red, f"red text before the first exercise: {red}"
            assert shown.startswith("Profile: quick"), f"the first lines should name the profile: {shown[:300]}"
            cells.nth(first_exercise).scroll_into_view_if_needed()
            page.screenshot(path=SHOTS / "3-first-cells-run.png")

            notebook.get_by_role("button", name="Validate").click()
            dialog = page.locator(".jp-Dialog")
            expect(dialog).to_contain_text("Summary: 0 of 5 exercises pass their visible tests", timeout=180_000)
            text = dialog.inner_text()
            assert "Fix first: activation-derivatives" in text and "not implemented yet" in text
            page.screenshot(path=SHOTS / "4-validate.png")
        finally:
            browser.close()
