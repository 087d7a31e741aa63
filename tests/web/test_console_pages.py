"""The console's pages over HTTP, against a real coordinator and enclave: a gap analysis
requested, approved by both owners and opened through the consoles' own forms."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from sealroom.verification.bundle import ProofBundle
from tests.web.console_world import console, world


def _chart_data(html: str) -> list[dict[str, object]]:
    found = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html, re.S)
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_gap_analysis_through_both_consoles(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        r, o = w.requester, w.owner
        with r.browser_client() as rb, o.browser_client() as ob:
            post_r = {"origin": r.url}
            # The SDK's early check: gap-analysis takes two inputs; nothing is signed.
            refused = rb.post(
                "/new/gap-analysis",
                data={"csrf": r.csrf(rb), "input.0": w.theirs, "param.top": "5"},
                headers=post_r,
            )
            assert refused.status_code == 400
            assert "takes 2 inputs" in refused.text
            assert "Nothing was signed or sent" in refused.text
            assert f'value="{w.theirs}" selected' in refused.text  # the form keeps its values
            assert r.party.requests() == ()
            bad_json = rb.post(
                "/new/gap-analysis",
                data={"csrf": r.csrf(rb), "input.0": "../../etc/passwd", "input.1": w.mine},
                headers=post_r,
            )
            assert bad_json.status_code == 400
            assert "is not a dataset id" in bad_json.text

            made = rb.post(
                "/new/gap-analysis",
                data={
                    "csrf": r.csrf(rb),
                    "input.0": w.theirs,
                    "input.1": w.mine,
                    "param.top": "10",
                    "param.learner_min": "",
                },
                headers=post_r,
            )
            assert made.status_code == 303
            rid = made.headers["location"].rsplit("/", 1)[1]
            (view,) = r.party.requests()
            assert view.request == rid
            assert view.parameters == {"top": 10}

            # Both owners decide in their consoles (the requester owns the learner input).
            inbox = ob.get("/inbox").text
            assert rid in inbox
            assert "<code>top</code>" in inbox
            for console, client in ((o, ob), (r, rb)):
                done = client.post(
                    f"/inbox/{rid}/approve",
                    data={"csrf": console.csrf(client), "reason": "ok"},
                    headers={"origin": console.url},
                )
                assert done.status_code == 303, done.text
                assert done.headers["location"] == "/inbox?done=approved"
            assert r.party.wait(rid, timeout=60).status == "completed"

            # Live progress of a finished request: its last status, then the end.
            events = rb.get(f"/requests/{rid}/events")
            assert events.headers["content-type"].startswith("text/event-stream")
            blocks = [b for b in events.text.split("\n\n") if b.startswith("event:")]
            assert blocks[-1].startswith("event: end")
            status = json.loads(blocks[0].split("data: ", 1)[1])
            assert (status["status"], status["terminal"]) == ("completed", True)

            page = rb.get(f"/requests/{rid}")
            assert page.status_code == 200
            assert "VERIFIED" in page.text
            assert "SIMULATED enclave" in page.text
            (chart,) = _chart_data(page.text)
            assert chart["id"] == "gaps"
            assert chart["labels"]
            assert 'id="chart-gaps"' in page.text

            bundle = rb.get(f"/requests/{rid}/bundle.json")
            assert bundle.status_code == 200
            assert "attachment" in bundle.headers["content-disposition"]
            parsed = ProofBundle.from_json(bundle.content)
            assert parsed.outputs  # the opened result travels with its bundle
            saved = r.results / rid.removeprefix("sha256:") / "bundle.json"
            assert saved.stat().st_mode & 0o777 == 0o600

            # The owner is no recipient of a gap analysis: its page shows progress, no result.
            theirs = ob.get(f"/requests/{rid}")
            assert theirs.status_code == 200
            assert "chart-data" not in theirs.text
            # And the owner's overview shows the budget meter of its dataset.
            home = ob.get("/").text
            assert '<meter id="meter-1" min="0" max="4.0"' in home


def test_live_progress_of_a_pending_request(tmp_path: Path) -> None:
    """The stream sends the status now, then ends without "end" after its time is up (the
    browser reconnects to a fresh stream); a final status ends it for good."""
    with world(tmp_path, enclave=False) as w:
        view = w.requester.party.request("topic-overlap", [w.mine, w.theirs])
        with (
            console(w.requester.party, tmp_path / "short", stream_seconds=0.3) as c,
            c.browser_client() as browser,
        ):
            got = browser.get(f"/requests/{view.request}/events")
            assert got.text.startswith("retry: 2000")
            blocks = [b for b in got.text.split("\n\n") if b.startswith("event:")]
            assert len(blocks) == 1  # one status: nothing changed within the stream
            first = json.loads(blocks[0].split("data: ", 1)[1])
            assert (first["status"], first["terminal"]) == ("pending", False)
            assert [i["decision"] for i in first["inputs"]] == ["pending", "pending"]
            w.requester.party.withdraw(view.request)
            got = browser.get(f"/requests/{view.request}/events")
            assert "withdrawn" in got.text
            assert got.text.rstrip().endswith("event: end\ndata: {}")
            missing = browser.get("/requests/sha256:" + "0" * 64 + "/events")
            assert missing.status_code == 404


def test_a_coordinator_that_cannot_be_reached_is_an_error_page(tmp_path: Path) -> None:
    from sealroom.client import Client, Party
    from sealroom.crypto.keystore import Keystore
    from sealroom.errors import BackendUnavailable

    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    identity = Keystore.create(tmp_path / "k", name="kim", unencrypted=True)
    party = Party(client=Client(base_url=dead, identity=identity), home=tmp_path / "k", name="kim")
    with console(party, tmp_path / "r") as c, c.browser_client() as browser:
        for path in ("/", "/inbox", "/requests", "/new/topic-overlap"):
            got = browser.get(path)
            assert got.status_code == 503, path
            assert BackendUnavailable.public_message in got.text
        refused = browser.post(
            "/new/topic-overlap",
            data={
                "csrf": c.csrf(browser),
                "input.0": "sha256:" + "1" * 64,
                "input.1": "sha256:" + "2" * 64,
            },
            headers={"origin": c.url},
        )
        assert refused.status_code == 503
        assert "Nothing was signed or sent" in refused.text
    party.close()
