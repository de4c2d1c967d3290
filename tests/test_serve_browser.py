"""The chat page in a real browser: headless Debian chromium driven by playwright (no browser download),
against a real `agentdistill serve` process. A question typed into the page streams its steps in; the
answer's citation links to the passage the search showed.

Needs chromium: `apt-get install -y chromium`. Without it the test fails with that hint (deselect it with
``-m "not browser"`` where no browser can be installed). Set AGENTDISTILL_SCREENSHOT=docs/chat.png to
write the page's screenshot there (docs/chat.png was made so).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_serve import LEAVE_QUESTION, rule_server, serve_process, tiny_run  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


def _chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("no chromium found: install Debian's with `apt-get install -y chromium` (or set CHROMIUM to a "
                    "Chromium binary), or deselect browser tests with -m 'not browser'")
    return path


def test_the_chat_page_streams_the_steps_and_links_the_citation(rule_server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(rule_server.url + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        expect(page.locator("#model")).to_contain_text("rule-agent")

        page.fill("#question", LEAVE_QUESTION)
        page.press("#question", "Enter")
        answer = page.locator(".answer")
        expect(answer).to_contain_text("30 calendar days", timeout=300_000)

        turn = page.locator(".turn").first
        expect(turn.locator(".question")).to_have_text(LEAVE_QUESTION)
        expect(turn.locator(".step .thought").first).to_contain_text("Searching")
        expect(turn.locator(".step.action code")).to_contain_text("search_labour_law")
        assert turn.locator(".step.observation .passage").count() >= 2
        expect(turn.locator(".status")).to_contain_text("answered")
        # the steps came before the answer, in the order the agent took them
        labels = [label.upper() for label in turn.locator(".step .label").all_inner_texts()]
        assert labels == ["THOUGHT", "ACTION", "OBSERVATION", "THOUGHT"], labels

        link = answer.locator("a.cite").first
        expect(link).to_have_text("Federal Decree-Law 33/2021, Art. 29")
        target = link.get_attribute("href")
        passage = page.locator(target)
        expect(passage).to_contain_text("Art. 29")
        link.click()
        expect(passage).to_be_in_viewport()
        assert page.evaluate("location.hash") == target
        cited = turn.locator(".sources a")
        expect(cited.first).to_have_text("FDL 33/2021 Art. 29")

        shot = Path(os.environ.get("AGENTDISTILL_SCREENSHOT") or tmp_path / "chat.png")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        browser.close()
