"""The whole web journey in one real browser run (issue 15's "done when").

A stranger finds a dataset in the coordinator's public explorer and opens its card; the
requester asks for a computation on it from its own console; the owner approves in its
console; the requester's page follows the run live and draws the result; the proof bundle
is downloaded and uploaded, through the file field, to the coordinator's public verifier
page, which says VERIFIED, and REJECTED once one byte of the receipt signature is flipped.
Real coordinator (with its public pages), real enclave worker, real uvicorn servers,
Debian's Chromium. Screenshots of each page go to ``$SEALROOM_TEST_OUTPUT/e2e``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from sealroom.verification.bundle import ProofBundle
from tests.web.browser import DESKTOP, PHONE, fits, labelled, output_dir
from tests.web.console_world import World, world

pytestmark = pytest.mark.timeout(150)


def _shot(page: Any, name: str, *, screen: bool = False) -> None:
    """The whole page; with ``screen``, also its first screen (the README's size)."""
    out = output_dir("e2e")
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    if screen:
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(out / f"{name}-screen.png"))


def _flip_receipt_signature(bundle: Path, out: Path) -> None:
    """The same bundle with one byte of the receipt's signature flipped (still well-formed)."""
    doc = json.loads(bundle.read_bytes())
    sig = bytearray(base64.b64decode(doc["receipt"]["signature"]))
    sig[7] ^= 0x01
    doc["receipt"]["signature"] = base64.b64encode(bytes(sig)).decode()
    tampered = rfc8785.dumps(doc)
    ProofBundle.from_json(tampered)  # parses: only the page's checks can catch it
    out.write_bytes(tampered)


def test_search_card_request_approve_result_bundle_public_verifier(
    tmp_path: Path, chromium: Any
) -> None:
    from playwright.sync_api import expect

    with world(tmp_path, web=True) as w:
        errors: list[str] = []
        public = chromium.new_context(viewport=DESKTOP)
        rhea_ctx = chromium.new_context(viewport=DESKTOP, accept_downloads=True)
        otto_ctx = chromium.new_context(viewport=DESKTOP)
        for ctx in (public, rhea_ctx, otto_ctx):
            ctx.on("weberror", lambda e: errors.append(str(e.error)))
            ctx.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            ctx.on(
                "response",
                lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
        _journey(w, public, rhea_ctx, otto_ctx, expect, tmp_path)
        assert errors == [], errors  # no CSP violation, no script error on any page


def _journey(
    w: World, public: Any, rhea_ctx: Any, otto_ctx: Any, expect: Any, tmp_path: Path
) -> None:
    # 1. Anyone searches the public explorer (typing, then Enter) and opens the card.
    explorer = public.new_page()
    explorer.goto(f"{w.coordinator}/datasets")
    explorer.get_by_label("Search text").fill("engineering notes")
    explorer.get_by_label("Search text").press("Enter")
    explorer.wait_for_url("**/datasets?q=*")
    expect(explorer.locator("#results-h")).to_have_text("1 dataset matches")
    card_link = explorer.get_by_role("link", name="Otto's engineering notes")
    expect(card_link).to_be_visible()
    labelled(explorer)
    _shot(explorer, "01-explorer-search", screen=True)
    card_link.click()
    explorer.wait_for_url(f"**/datasets/{w.theirs}")
    expect(explorer.get_by_role("heading", level=1)).to_have_text("Otto's engineering notes")
    expect(explorer.locator("dl.facts").first).to_contain_text(w.theirs)
    expect(explorer.locator("#topics-h")).to_be_visible()
    _shot(explorer, "02-dataset-card")
    dataset = explorer.url.rsplit("/", 1)[1]  # what a person copies from the card

    # 2. The requester asks for topic-overlap on it in its own console (the builder is
    #    preset with the datasets, as a link from the card would do).
    rhea = rhea_ctx.new_page()
    rhea.goto(w.requester.launch_url)
    rhea.goto(f"{w.requester.url}/new/topic-overlap?dataset={w.mine}&dataset={dataset}")
    expect(rhea.locator('select[name="input.1"]')).to_have_value(dataset)
    rhea.get_by_label("Top").fill("10")
    _shot(rhea, "03-console-request")
    rhea.get_by_role("button", name="Sign and send the request").click()
    rhea.wait_for_url("**/requests/sha256:*")
    expect(rhea.locator("#progress-text")).to_contain_text("pending")
    rid = rhea.url.rsplit("/", 1)[1]
    tab = rhea_ctx.new_page()  # its own input: its policy decides
    tab.goto(f"{w.requester.url}/inbox")
    tab.get_by_role("button", name="Let my policies decide").click()
    expect(tab.get_by_role("status")).to_contain_text("Your policies decided")
    tab.close()

    # 3. The owner approves in a second party's console.
    otto = otto_ctx.new_page()
    otto.goto(w.owner.launch_url)
    otto.get_by_role("link", name="Inbox").click()
    expect(otto.get_by_role("article")).to_contain_text("topic-overlap from rhea")
    _shot(otto, "04-owner-inbox")
    otto.get_by_role("button", name="Approve and seal my data").click()
    expect(otto.get_by_role("status")).to_contain_text("Approved")

    # 4. Live progress (server-sent events, no reload) ends in the verified result's chart.
    expect(rhea.locator("#verdict")).to_contain_text("VERIFIED", timeout=60_000)
    expect(rhea.locator("#chart-shared-topics")).to_have_attribute("data-rendered", "yes")
    _shot(rhea, "05-console-result")
    with rhea.expect_download() as got:
        rhea.get_by_role("link", name="Download the proof bundle").click()
    bundle = tmp_path / got.value.suggested_filename
    got.value.save_as(bundle)
    assert rid.removeprefix("sha256:")[:16] in bundle.name

    # 5. The public verifier page, given the downloaded file through its file field.
    verifier = public.new_page()
    verifier.goto(f"{w.coordinator}/verify")
    labelled(verifier)
    verifier.get_by_label("Accept a SIMULATED enclave").check()
    verifier.get_by_label("Choose a bundle file").set_input_files(str(bundle))
    expect(verifier.locator("#file-status")).to_contain_text(f"Selected {bundle.name}")
    verifier.get_by_role("button", name="Verify", exact=True).click()
    expect(verifier.locator("#verdict-h")).to_have_text("VERIFIED")
    expect(verifier.locator("table.report")).not_to_contain_text("FAIL")
    expect(verifier.get_by_label("Offline command")).to_contain_text("sealroom verify")
    fits(verifier)
    _shot(verifier, "06-public-verifier-verified", screen=True)

    tampered = tmp_path / "tampered-bundle.json"
    _flip_receipt_signature(bundle, tampered)
    verifier.goto(f"{w.coordinator}/verify")
    verifier.get_by_label("Accept a SIMULATED enclave").check()
    verifier.get_by_label("Choose a bundle file").set_input_files(str(tampered))
    verifier.get_by_role("button", name="Verify", exact=True).click()
    expect(verifier.locator("#verdict-h")).to_have_text("REJECTED")
    failed = verifier.locator("table.report tr.fail td:nth-child(2)")
    expect(failed.filter(has_text="receipt signature")).to_have_count(1)
    _shot(verifier, "07-public-verifier-rejected", screen=True)


_FOCUSED = """() => {
  const e = document.activeElement;
  return e ? (e.id || e.getAttribute('name') || (e.textContent || '').trim()).slice(0, 40) : '';
}"""


def _tab_until(page: Any, target: str, *, limit: int = 40) -> list[str]:
    """Press Tab until the element with id ``target`` has focus; return what got focus."""
    seen: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        seen.append(page.evaluate(_FOCUSED))
        if seen[-1] == target:
            return seen
    raise AssertionError(f"Tab never reached #{target}; the order was {seen}")


_AUDIT = """() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push('html has no lang');
  if (!document.title.trim()) problems.push('no title');
  const h1 = document.querySelectorAll('h1').length;
  if (h1 !== 1) problems.push(h1 + ' h1 elements');
  for (const e of document.querySelectorAll('[tabindex]'))
    if (e.tabIndex > 0) problems.push('positive tabindex on ' + e.tagName);
  for (const a of document.querySelectorAll('a[href], button'))
    if (!(a.textContent.trim() || a.getAttribute('aria-label') || a.title))
      problems.push('unnamed ' + a.tagName + ' ' + a.outerHTML.slice(0, 60));
  for (const i of document.querySelectorAll('img'))
    if (!i.hasAttribute('alt')) problems.push('img without alt');
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
  const dup = ids.filter((id, k) => ids.indexOf(id) !== k);
  if (dup.length) problems.push('duplicate ids ' + dup.join(','));
  return problems;
}"""


def test_public_pages_by_keyboard_and_their_markup(tmp_path: Path, chromium: Any) -> None:
    """Keyboard only: the skip link, then Tab reaches the search field and the verifier's
    controls, and Enter / Space use them. Every public page passes a small axe-like audit
    (lang, title, one h1, labels, named links, no positive tabindex) at desktop and phone
    width."""
    from playwright.sync_api import expect

    with world(tmp_path, enclave=False, web=True) as w:
        ctx = chromium.new_context(viewport=DESKTOP)
        page = ctx.new_page()
        page.goto(f"{w.coordinator}/datasets")
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("main")).to_be_focused()
        _tab_until(page, "q", limit=5)
        page.keyboard.type("support tickets")
        page.keyboard.press("Enter")
        page.wait_for_url("**/datasets?q=support*")
        expect(page.locator("#results-h")).to_have_text("1 dataset matches")
        page.get_by_label("Search text").focus()
        order = _tab_until(page, "Search")  # the submit button, after every filter
        assert order[:2] == ["keywords", "owner"], order
        _tab_until(page, "Rhea's support tickets")  # then the results, in order
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/datasets/{w.mine}")

        page.goto(f"{w.coordinator}/verify")
        _tab_until(page, "bundle")
        _tab_until(page, "allow_simulated")
        page.keyboard.press("Space")
        expect(page.get_by_label("Accept a SIMULATED enclave")).to_be_checked()
        _tab_until(page, "Verify")
        page.keyboard.press("Enter")  # nothing chosen: a clear error, announced as an alert
        expect(page.get_by_role("alert")).to_be_visible()

        for width in (DESKTOP, PHONE):
            page.set_viewport_size(width)
            for path in (
                "/",
                "/datasets",
                "/datasets?q=notes",
                f"/datasets/{w.theirs}",
                "/log",
                "/verify",
            ):
                page.goto(f"{w.coordinator}{path}")
                assert page.evaluate(_AUDIT) == [], path
                labelled(page)
                fits(page)
