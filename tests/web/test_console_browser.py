"""The party console in a real browser (Debian's Chromium driven by Playwright).

A requester's console builds a request, the owner approves it in its own console
(at phone width), the requester's page follows the progress live (server-sent
events) and renders the result's chart, the proof bundle is downloaded, and
``sealroom verify`` says VERIFIED about the downloaded file. Real coordinator,
real enclave worker, real uvicorn servers. Screenshots of each page go to
``$SEALROOM_TEST_OUTPUT/console`` (default ``test-output/console``).

Without Chromium the test skips (see ``conftest.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.services import SIMULATION_ROOT
from tests.web.browser import CHROMIUM, DESKTOP, PHONE, fits, labelled
from tests.web.console_world import World, world

OUT = Path(os.environ.get("SEALROOM_TEST_OUTPUT", "test-output")) / "console"

pytestmark = pytest.mark.timeout(120)


def _shot(page: Any, name: str, *, top_of: str | None = None) -> None:
    """The whole page; with ``top_of``, also one screen starting at that element (the README's)."""
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    if top_of is not None:
        page.locator(top_of).evaluate("e => e.scrollIntoView()")
        page.screenshot(path=str(OUT / f"{name}-screen.png"))
        page.evaluate("window.scrollTo(0, 0)")


def test_request_approve_progress_chart_bundle_verify(tmp_path: Path, playwright: Any) -> None:
    from playwright.sync_api import expect

    with world(tmp_path) as w:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            _drive(w, browser, expect, tmp_path)
        finally:
            browser.close()


def _drive(w: World, browser: Any, expect: Any, tmp_path: Path) -> None:
    errors: list[str] = []
    rhea_ctx = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    otto_ctx = browser.new_context(viewport=PHONE, is_mobile=True)
    rhea = rhea_ctx.new_page()
    rhea.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    rhea.on("pageerror", lambda e: errors.append(str(e)))

    # The requester opens its console from the printed link and builds a request.
    rhea.goto(w.requester.launch_url)
    expect(rhea.get_by_role("heading", name="Overview")).to_be_visible()
    _shot(rhea, "01-requester-overview")
    rhea.get_by_role("link", name="New request").click()
    rhea.get_by_role("link", name="topic-overlap").click()
    expect(rhea.get_by_role("heading", level=1)).to_contain_text("topic-overlap")
    rhea.locator('select[name="input.0"]').select_option(w.mine)
    rhea.locator('select[name="input.1"]').select_option(w.theirs)
    top = rhea.get_by_label("Top")
    expect(rhea.locator("#param\\.top-help")).not_to_be_empty()  # the registry's help text
    top.fill("0")  # the SDK's early check refuses it before anything is signed
    rhea.get_by_role("button", name="Sign and send the request").click()
    expect(rhea.get_by_role("alert")).to_contain_text("Nothing was signed or sent")
    assert w.requester.party.requests() == ()
    assert errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    errors.clear()
    top.fill("10")
    labelled(rhea)
    _shot(rhea, "02-request-builder")
    rhea.get_by_role("button", name="Sign and send the request").click()
    rhea.wait_for_url("**/requests/sha256:*")
    rid = rhea.url.rsplit("/", 1)[1]
    expect(rhea.locator("#progress-text")).to_contain_text("pending")
    _shot(rhea, "03-request-pending")

    # Its own input is approved by its own policy, from its inbox, in a second tab.
    tab = rhea_ctx.new_page()
    tab.goto(f"{w.requester.url}/inbox")
    tab.get_by_role("button", name="Let my policies decide").click()
    expect(tab.get_by_role("status")).to_contain_text("Your policies decided")
    tab.close()

    # The owner, on a phone, sees the full parameters and approves by hand.
    otto = otto_ctx.new_page()
    otto.goto(w.owner.launch_url)
    otto.get_by_role("link", name="Inbox").click()
    item = otto.get_by_role("article")
    expect(item).to_contain_text("topic-overlap from rhea")
    expect(item.locator("table.params")).to_contain_text("top")
    expect(item.locator("table.params")).to_contain_text("10")
    fits(otto)
    _shot(otto, "04-owner-inbox-phone", top_of="main h1")
    labelled(otto)
    # By keyboard: type the note, Tab to the approve button, Enter.
    item.get_by_label("Note (optional)").fill("fine for the Q3 review")
    otto.keyboard.press("Tab")
    expect(item.get_by_role("button", name="Approve and seal my data")).to_be_focused()
    otto.keyboard.press("Enter")
    expect(otto.get_by_role("status")).to_contain_text("Approved")
    assert w.owner.party.inbox() == ()

    # The requester's page was never reloaded by the test: server-sent events carried the
    # progress, and the page opened the verified result when the run completed.
    expect(rhea.locator("#verdict")).to_contain_text("VERIFIED", timeout=60_000)
    expect(rhea.locator("#chart-shared-topics")).to_have_attribute("data-rendered", "yes")
    expect(rhea.get_by_role("table").filter(has_text="remote attestation").first).to_be_visible()
    fits(rhea)
    _shot(rhea, "05-result", top_of="#result-h")

    with rhea.expect_download() as got:
        rhea.get_by_role("link", name="Download the proof bundle").click()
    bundle = tmp_path / "downloaded-bundle.json"
    got.value.save_as(bundle)
    assert got.value.suggested_filename.startswith("sealroom-bundle-")
    verified = subprocess.run(
        [
            sys.executable,
            "-m",
            "sealroom.cli",
            "verify",
            str(bundle),
            "--allow-simulated",
            "--simulation-root",
            SIMULATION_ROOT.public_key.hex(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "VERIFIED (simulated TEE)" in verified.stdout
    assert rid.removeprefix("sha256:")[:16] in got.value.suggested_filename

    # The owner's overview: its datasets and the DP budget meter.
    otto.get_by_role("link", name="Overview").click()
    meter = otto.locator("meter").first
    expect(meter).to_have_attribute("max", "4.0")
    fits(otto)
    _shot(otto, "06-owner-budget-phone")
    rhea.goto(f"{w.requester.url}/requests")
    expect(rhea.get_by_role("table")).to_contain_text("completed")
    _shot(rhea, "07-my-requests")
    assert errors == [], errors  # no CSP violation, no script error
