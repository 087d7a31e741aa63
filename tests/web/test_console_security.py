"""The console refuses everything that is not its own launched session on its own origin.

Each refusal is tested against the real console served by uvicorn, over a real
coordinator, and each one is shown to change nothing (the request stays in the inbox).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sealroom.web.console.security import CSP, Sessions
from tests.web.console_world import World, world


@pytest.fixture
def pending(tmp_path: Path) -> World:
    """A world (no enclave needed) where the owner has one request waiting in its inbox."""
    with world(tmp_path, enclave=False) as w:
        w.requester.party.request("topic-overlap", [w.mine, w.theirs])
        yield w  # type: ignore[misc]


def _altered(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def test_without_the_launch_link_nothing_is_served(pending: World) -> None:
    c = pending.owner
    with httpx.Client(base_url=c.url) as anon:
        for path in ("/", "/inbox", "/requests", "/new", "/credits", "/static/console.js"):
            got = anon.get(path)
            assert got.status_code == 403, path
            assert "open the link" in got.text
            assert got.headers["content-security-policy"] == CSP
        wrong = anon.get("/launch?token=" + "x" * 43)
        assert wrong.status_code == 403
        assert anon.get("/launch").status_code == 403
        assert not anon.cookies
        # Another console's link opens that console only.
        other = anon.get(f"/launch?token={pending.requester.sessions.launch_token}")
        assert other.status_code == 403


def test_the_launch_link_opens_a_strict_session(pending: World) -> None:
    c = pending.owner
    with httpx.Client(base_url=c.url) as browser:
        got = browser.get(f"/launch?token={c.sessions.launch_token}")
        assert got.status_code == 303
        assert got.headers["location"] == "/"
        cookie = got.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        home = browser.get("/")
        assert home.status_code == 200
        headers = home.headers
        assert headers["content-security-policy"] == CSP
        assert "default-src 'self'" in CSP
        assert "frame-ancestors 'none'" in CSP
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["cache-control"] == "no-store"
        assert "otto" in home.text
        # Every asset is local: no page names another origin.
        assert "https://" not in home.text.replace(c.party.url, "")
        assert "http://" not in home.text.replace(c.party.url, "")


def test_another_host_name_is_refused_even_with_a_session(pending: World) -> None:
    """DNS rebinding: a page of evil.example resolved to 127.0.0.1 still says its name."""
    c = pending.owner
    with c.browser_client() as browser:
        got = browser.get("/inbox", headers={"host": "evil.example"})
        assert got.status_code == 421
        assert got.headers["content-security-policy"] == CSP
        assert browser.get("/inbox", headers={"host": "localhost"}).status_code == 200


def test_other_origins_are_refused(pending: World) -> None:
    c = pending.owner
    rid = c.party.inbox()[0].request
    with c.browser_client() as browser:
        csrf = c.csrf(browser)
        form = {"csrf": csrf, "reason": "no"}
        evil = {"origin": "http://evil.example"}
        assert browser.get("/inbox", headers=evil).status_code == 403
        # A cross-site form post (the browser would send the cookie only without SameSite).
        got = browser.post(f"/inbox/{rid}/reject", data=form, headers=evil)
        assert got.status_code == 403
        assert "another origin" in got.text
        # Another local port is another origin too.
        other_port = {"origin": pending.requester.url}
        assert (
            browser.post(f"/inbox/{rid}/reject", data=form, headers=other_port).status_code == 403
        )
        # A post that does not say where it comes from.
        assert browser.post(f"/inbox/{rid}/reject", data=form).status_code == 403
        assert [v.request for v in c.party.inbox()] == [rid]


def test_every_post_needs_the_sessions_csrf_token(pending: World) -> None:
    c = pending.owner
    rid = c.party.inbox()[0].request
    with c.browser_client() as browser, c.browser_client() as second:
        origin = {"origin": c.url}
        for form in (
            {"reason": "no"},
            {"csrf": "", "reason": "no"},
            {"csrf": c.csrf(second), "reason": "no"},  # another session's token
            {"csrf": _altered(c.csrf(browser)), "reason": "no"},
        ):
            got = browser.post(f"/inbox/{rid}/reject", data=form, headers=origin)
            assert got.status_code == 403, form
            assert "CSRF" in got.text
        got = browser.post("/inbox/auto", data={"go": "1"}, headers=origin)
        assert got.status_code == 403
        # Not a form: refused before the token is looked at.
        got = browser.post(
            f"/inbox/{rid}/reject",
            content=b'{"csrf": "x"}',
            headers={**origin, "content-type": "application/json"},
        )
        assert got.status_code == 415
        got = browser.post(
            f"/inbox/{rid}/reject",
            data={"csrf": c.csrf(browser), "reason": "x" * (300 * 1024)},
            headers=origin,
        )
        assert got.status_code == 413
        assert [v.request for v in c.party.inbox()] == [rid]
        # The same post with the token goes through.
        ok = browser.post(
            f"/inbox/{rid}/reject",
            data={"csrf": c.csrf(browser), "reason": "not this quarter"},
            headers=origin,
        )
        assert ok.status_code == 303
        assert c.party.inbox() == ()
        assert c.party.status(rid).status == "rejected"


def test_a_reject_without_a_reason_and_a_bad_request_id_change_nothing(pending: World) -> None:
    c = pending.owner
    rid = c.party.inbox()[0].request
    with c.browser_client() as browser:
        origin = {"origin": c.url}
        got = browser.post(
            f"/inbox/{rid}/reject", data={"csrf": c.csrf(browser), "reason": "  "}, headers=origin
        )
        assert got.status_code == 400
        assert "say why" in got.text
        got = browser.post(
            "/inbox/../../etc/reject", data={"csrf": c.csrf(browser), "reason": "x"}, headers=origin
        )
        assert got.status_code == 404
        assert browser.get("/requests/sha256:not-a-digest").status_code == 404
        assert [v.request for v in c.party.inbox()] == [rid]


def test_a_launch_token_must_be_long_enough() -> None:
    from sealroom.errors import AuthenticationFailed

    with pytest.raises(AuthenticationFailed):
        Sessions("short")
    a, b = Sessions(), Sessions()
    assert a.launch_token != b.launch_token
    assert a.cookie != b.cookie  # two consoles on one machine do not share a cookie


def test_the_requester_withdraws_from_its_console(pending: World) -> None:
    r = pending.requester
    (view,) = r.party.requests()
    with r.browser_client() as browser:
        page = browser.get(f"/requests/{view.request}")
        assert "Withdraw this request" in page.text
        done = browser.post(
            f"/requests/{view.request}/withdraw",
            data={"csrf": r.csrf(browser)},
            headers={"origin": r.url},
        )
        assert done.status_code == 303
        assert r.party.status(view.request).status == "withdrawn"
        again = browser.get(done.headers["location"])
        assert "Withdrawn." in again.text
        assert "Withdraw this request" not in again.text


HOSTILE = '<img src=x onerror="alert(1)"></script><script>alert(2)</script>'


def test_other_parties_text_is_escaped(pending: World, tmp_path: Path) -> None:
    """Titles and names come from other parties: they are text, never markup. (A hostile
    column name in the parameters is refused at request time: no input has that column.)"""
    from sealroom.client import Party
    from tests.client.client_world import TOPICS_A, write_jsonl

    name = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    with Party.create(
        home=tmp_path / "mallory", name=name, url=pending.coordinator, unencrypted=True
    ) as mallory:
        bait = mallory.publish(write_jsonl(tmp_path / "m.jsonl", TOPICS_A), title=HOSTILE)
        mallory.request("topic-overlap", [bait.dataset, pending.theirs])
    r, o = pending.requester, pending.owner
    with r.browser_client() as rb, o.browser_client() as ob:
        for page in (rb.get("/new/topic-overlap").text, ob.get("/inbox").text):
            assert "<img src=x" not in page
            assert "<script>alert" not in page
            assert "&lt;img src=x" in page
