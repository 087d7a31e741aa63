"""The coordinator's public pages over real HTTP: a real coordinator with the pages mounted
(as ``sealroom serve`` mounts them), datasets published by real parties, and a real job run by
a simulated enclave whose proof bundle the verifier page checks.

The pages must rank as the API ranks, say VERIFIED only for a bundle that verifies, and
show an outsider nothing the API would not show one.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import httpx
import pytest
import rfc8785

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.transparency.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    sign_checkpoint,
)
from sealroom.verification.bundle import ProofBundle
from sealroom.web.public.explorer import day
from sealroom.web.public.logview import b64
from sealroom.web.public.verifier import MAX_UPLOAD
from tests.client.client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, now, party, write_jsonl
from tests.services import SIMULATION_ROOT, coordinator, registered_enclave

TOPICS_C = ["remote attestation", "remote attestation quotes", "measured boot", "tpm event log"]
TOPICS_D = ["gpu drivers", "kernel tuning", "scheduler latency", "cgroups"]
HOSTILE_TITLE = '<script>alert("x")</script> notes'


def dated(path: Path, topics: list[str], rows: int) -> Path:
    """Notes with ISO timestamps (a timestamp column gives the card a time range)."""
    with path.open("w") as fh:
        for i in range(rows):
            at = dt.datetime(2024, 3, 1, tzinfo=dt.UTC) + dt.timedelta(hours=6 * i)
            text = f"worked on {topics[i % len(topics)]}"
            fh.write(json.dumps({"ts": at.isoformat(), "text": text}) + "\n")
    return path


@dataclass
class World:
    url: str
    datasets: dict[str, str]
    request: str
    pending: str
    requester: str
    receipt: str
    approvals: list[str]
    bundle: bytes
    log_key: str
    early_note: str
    keys_dir: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp_path = tmp_path_factory.mktemp("web")
    with coordinator(tmp_path, web=True) as url:
        clients: dict[str, Client] = {}
        homes = {}
        for name in ("alice", "bob", "carol", "erin"):
            home, ident = party(tmp_path, name)
            homes[name] = (home, ident)
            clients[name] = Client(base_url=url, identity=ident)
            clients[name].register_party(name)
        published = {}

        for name, title, topics, rows in (
            ("alice", "alice's attestation notes", TOPICS_A, 60),
            ("bob", "bob's kernel notes", TOPICS_B, 90),
            ("erin", "erin's boot measurements", TOPICS_C, 40),
            ("erin", HOSTILE_TITLE, TOPICS_D, 30),
        ):
            home, ident = homes[name]
            path = (dated if name == "bob" else write_jsonl)(
                tmp_path / f"{name}-{len(published)}.jsonl", topics, rows=rows
            )
            published[title] = flows.publish(
                clients[name], ident, path, title=title, description=f"work notes of {name}",
                policy_rules=AUTO_POLICY, now=now(), home=home,
            ).dataset  # fmt: skip
        early_note = httpx.get(f"{url}/v1/log/checkpoint").text  # what a monitor kept
        worker = registered_enclave(url)
        carol_home, carol = homes["carol"]
        cc = clients["carol"]
        inputs = [published["alice's attestation notes"], published["bob's kernel notes"]]
        view = flows.request(
            cc, carol, "topic-overlap", inputs, {"top": 7}, now=now(), home=carol_home
        )
        # A second request waits for the owners (gap-analysis is allowed, not automatic).
        pending = flows.request(
            cc, carol, "gap-analysis", inputs, {"learner_min": 913, "recommend": 3}, now=now(),
            home=carol_home,
        ).request  # fmt: skip
        for name in ("alice", "bob"):
            flows.auto_approve(
                clients[name], homes[name][1], home=homes[name][0], allow_simulated=True, now=now()
            )
        assert worker.step().outcome == "completed"
        done = flows.wait(cc, view.request, timeout=10)
        assert done.status == "completed"
        assert done.receipt is not None
        out = tmp_path / "carol-out"
        out.mkdir()
        got = flows.fetch_result(
            cc, carol, view.request, out, home=carol_home, allow_simulated=True
        )
        yield World(
            url=url,
            datasets=published,
            request=view.request,
            pending=pending,
            requester=carol.party_id,
            receipt=done.receipt,
            approvals=[str(i.approval) for i in done.inputs],
            bundle=got.bundle_path.read_bytes(),
            log_key=cc.log_key().verifier_key,
            early_note=early_note,
            keys_dir=tmp_path / "coordinator-keys",
        )


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts: list[str] = []
        self.inline_script = False
        self.controls: list[str | None] = []
        self.labels: set[str] = set()
        self.inline_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("input", "textarea", "select") and a.get("type") not in ("hidden", "submit"):
            self.controls.append(a.get("id"))
        if tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        if "style" in a or tag == "style":
            self.inline_style = True
        if tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        if tag == "script":
            if a.get("src"):
                self.scripts.append(str(a["src"]))
            else:
                self.inline_script = True
        if tag == "link" and a.get("href"):
            self.links.append(str(a["href"]))


def _parse(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


def _result_ids(html: str) -> list[str]:
    results = html.split('<ol class="results">', 1)[1].split("</ol>", 1)[0]
    return re.findall(r'<h3 id="[^"]+"><a href="/datasets/(sha256:[0-9a-f]{64})">', results)


def test_every_page_renders_with_strict_headers_and_local_assets(world: World) -> None:
    some = world.datasets["erin's boot measurements"]
    for path in ("/", "/datasets", f"/datasets/{some}", "/log", "/log/entries/0", "/verify"):
        r = httpx.get(world.url + path)
        assert r.status_code == 200, (path, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "'unsafe-inline'" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        page = _parse(r.text)
        assert not page.inline_script, path
        for ref in page.scripts + [x for x in page.links if x.endswith((".css", ".js"))]:
            assert urlparse(ref).netloc == "", f"{path} loads {ref} from elsewhere"
            asset = httpx.get(urljoin(world.url + path, ref))
            assert asset.status_code == 200
            assert asset.headers["x-content-type-options"] == "nosniff"
        assert '<main id="main"' in r.text
        assert 'lang="en"' in r.text
        assert 'name="viewport" content="width=device-width' in r.text
        assert not page.inline_style, path  # the CSP would block it
        for control in page.controls:  # every form control has a label
            assert control is not None, f"{path}: a control without an id"
            assert control in page.labels, f"{path}: no label for #{control}"
    assert httpx.get(world.url + "/static/../pyproject.toml").status_code == 404
    assert httpx.get(world.url + "/static/nothing.js").status_code == 404


def test_the_card_shows_what_the_attestation_and_policy_say(world: World) -> None:
    dataset = world.datasets["bob's kernel notes"]
    api = httpx.get(f"{world.url}/v1/datasets/{dataset}").json()
    html = httpx.get(f"{world.url}/datasets/{dataset}").text
    assert "bob&#39;s kernel notes" in html
    assert api["owner_fingerprint"] in html
    assert api["owner"] in html
    assert "90 rows" in html
    start, end = (day(api["time_range"][k]) for k in ("start", "end"))
    assert f"{start} to {end} (UTC)" in html
    listed = httpx.get(f"{world.url}/datasets", params={"q": "kernel"}).text
    assert f"{start} to {end}" in listed  # the result cards show it too
    for topic in api["topics"]:
        assert topic in html
    for column in api["schema"]:
        assert f"<td>{column['name']}</td>" in html
    assert "topic-overlap, gap-analysis" in html  # computations allowed
    assert "at least 3 distinct entities" in html
    assert f'href="/log/entries/{api["log_index"]}"' in html


def test_stored_markup_is_shown_as_text(world: World) -> None:
    dataset = world.datasets[HOSTILE_TITLE]
    for path in (f"/datasets/{dataset}", "/datasets?q=notes", "/"):
        html = httpx.get(world.url + path).text
        assert "<script>alert" not in html, path
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"
        in httpx.get(f"{world.url}/datasets/{dataset}").text
    )


@pytest.mark.parametrize(
    ("page", "api"),
    [
        ("q=remote+attestation", "q=remote+attestation"),
        ("q=notes", "q=notes"),
        ("q=kernel+OR+boot", "q=kernel+OR+boot"),
        ("keywords=remote+attestation", "keyword=remote+attestation"),
        ("q=notes&min_rows=50", "q=notes&min_rows=50"),
        ("q=notes&max_rows=50", "q=notes&max_rows=50"),
        ("", ""),
    ],
)
def test_the_explorer_ranks_as_the_api(world: World, page: str, api: str) -> None:
    want = httpx.get(f"{world.url}/v1/search?{api}").json()
    html = httpx.get(f"{world.url}/datasets?{page}").text
    assert _result_ids(html) == [h["dataset"]["dataset"] for h in want["items"]]
    assert f"{want['total']} dataset" in html
    if "q=" in api:
        for hit, score in zip(
            want["items"], re.findall(r'class="score">([0-9.]+)<', html), strict=False
        ):
            assert float(score) == pytest.approx(hit["score"], abs=1e-4)


def test_similar_datasets_rank_by_keyword_jaccard_as_the_api(world: World) -> None:
    anchor = world.datasets["alice's attestation notes"]
    want = httpx.get(f"{world.url}/v1/search", params={"similar_to": anchor}).json()
    html = httpx.get(f"{world.url}/datasets", params={"similar_to": anchor}).text
    assert want["items"]
    assert _result_ids(html) == [h["dataset"]["dataset"] for h in want["items"]]


def test_explorer_pages_follow_the_api_cursor(world: World) -> None:
    """A page size of 20 is more than this world has: the pager offers no next page, and a
    cursor from the API's own paging (smaller pages) is accepted by the page."""
    html = httpx.get(f"{world.url}/datasets").text
    assert 'rel="next"' not in html
    first = httpx.get(f"{world.url}/v1/search", params={"limit": 2}).json()
    assert first["next_cursor"]
    bad = httpx.get(f"{world.url}/datasets", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400
    assert "text/html" in bad.headers["content-type"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("min_rows=lots", "at least (rows) must be a whole number"),
        ("from=2024-13-01", "must be a date as YYYY-MM-DD"),
        ("from=2024-02-01&to=2024-01-01", "the &#39;from&#39; date is after the &#39;to&#39; date"),
        ("q=%21%21%21", "with a letter or digit"),
        ("min_rows=10&max_rows=5", "rows is more than"),
    ],
)
def test_bad_explorer_input_gets_a_specific_message(world: World, query: str, message: str) -> None:
    r = httpx.get(f"{world.url}/datasets?{query}")
    assert r.status_code == 400
    assert 'role="alert"' in r.text
    assert message in r.text


def test_unknown_things_are_html_not_found_pages(world: World) -> None:
    for path in ("/datasets/sha256:" + "0" * 64, "/log/entries/100000", "/log/entries/x"):
        r = httpx.get(world.url + path)
        assert r.status_code in (400, 404), path
        assert r.headers["content-type"].startswith("text/html")
        assert "content-security-policy" in r.headers


def test_the_log_browser_checks_inclusion_and_consistency(world: World) -> None:
    checkpoint = httpx.get(f"{world.url}/v1/log/checkpoint").text
    size = int(checkpoint.split("\n")[1])
    html = httpx.get(f"{world.url}/log").text
    assert f"<dd>{size}</dd>" in html
    assert f'verifies with the log key <code class="hash">{world.log_key}</code>' in html

    for index in (0, size - 1):
        entry = httpx.get(f"{world.url}/v1/log/entries/{index}").json()
        page = httpx.get(f"{world.url}/log/entries/{index}").text
        assert entry["leaf_hash"] in page
        assert "Checked: inclusion:" in page
        assert "signed root" in page
        assert "Checked: leaf hash: recomputed from" in page
        proof = httpx.get(f"{world.url}/v1/log/inclusion?index={index}&size={size}").json()
        for h in proof["proof"]:
            assert h in page

    page = httpx.get(f"{world.url}/log", params={"from": 2}).text
    assert "Checked: consistency:" in page
    proof = httpx.get(f"{world.url}/v1/log/consistency?first=2&second={size}").json()
    for h in proof["proof"]:
        assert h in page
    paged = httpx.get(f"{world.url}/log", params={"before": 3}).text
    rows = re.findall(r'<td><a href="/log/entries/(\d+)">', paged)
    assert rows == ["2", "1", "0"]
    assert 'href="/log?before=' in paged
    assert "Older entries" not in paged
    bad = httpx.get(f"{world.url}/log", params={"from": size + 1})
    assert bad.status_code == 400
    assert "from 1 to" in bad.text


def _verify(world: World, bundle: bytes, **fields: str) -> httpx.Response:
    return httpx.post(
        f"{world.url}/verify",
        files={"bundle": ("carol bundle.json", bundle, "application/json")},
        data=fields,
        timeout=30,
    )


def _verdict(html: str) -> str:
    return re.findall(r'<h2 id="verdict-h" class="big">(\w+)</h2>', html)[0]


def test_the_verifier_page_says_verified_for_the_real_bundle(world: World) -> None:
    root = SIMULATION_ROOT.public_key.hex()
    r = _verify(
        world, world.bundle, allow_simulated="on", log_key=world.log_key, simulation_root=root
    )
    assert r.status_code == 200
    assert _verdict(r.text) == "VERIFIED"
    assert "VERIFIED (simulated TEE): all " in r.text
    assert "checks passed." in r.text
    assert "FAIL" not in r.text.split('<table class="report">')[1].split("</table>")[0]
    assert "SIMULATED" in r.text
    command = (
        f"sealroom verify carol_bundle.json --allow-simulated --log-key {world.log_key} "
        f"--simulation-root {root}"
    )
    assert command in r.text


def test_the_verifier_page_prefills_this_deployments_pins(world: World) -> None:
    html = httpx.get(f"{world.url}/verify").text
    assert f'value="{world.log_key}"' in html
    assert f'value="{SIMULATION_ROOT.public_key.hex()}"' in html


def test_the_verifier_page_says_rejected_for_a_tampered_bundle(world: World) -> None:
    """The receipt now claims another time of issue: still a well-formed, canonical bundle,
    so only the checks (the enclave's signature over the receipt) can catch it."""
    doc = json.loads(world.bundle)
    receipt = doc["receipt"]
    payload = json.loads(base64.b64decode(receipt["payload"]))
    payload["issued_at"] += 1
    receipt["payload"] = base64.b64encode(rfc8785.dumps(payload)).decode()
    tampered = rfc8785.dumps(doc)
    ProofBundle.from_json(tampered)  # still well-formed: the checks must catch it
    r = _verify(world, tampered, allow_simulated="on", log_key=world.log_key)
    assert r.status_code == 200
    assert _verdict(r.text) == "REJECTED"
    assert "NOT VERIFIED:" in r.text
    failed = re.findall(r'<tr class="fail"><td>FAIL</td><td>([^<]+)</td>', r.text)
    assert "receipt signature" in failed, failed


def test_the_verifier_page_rejects_simulated_evidence_unless_accepted(world: World) -> None:
    r = _verify(world, world.bundle, log_key=world.log_key)
    assert _verdict(r.text) == "REJECTED"
    assert "refused" in r.text


def test_the_verifier_page_on_bad_input(world: World) -> None:
    r = _verify(world, b"{not json")
    assert _verdict(r.text) == "REJECTED"
    assert "bundle format" in r.text
    empty = httpx.post(f"{world.url}/verify", data={"bundle_text": "  "})
    assert empty.status_code == 400
    assert "No bundle" in empty.text
    pasted = httpx.post(
        f"{world.url}/verify",
        data={"bundle_text": world.bundle.decode(), "allow_simulated": "on"},
        timeout=30,
    )
    assert _verdict(pasted.text) == "VERIFIED"
    big = _verify(world, b" " * (MAX_UPLOAD + 1))
    assert big.status_code == 413
    assert "text/html" in big.headers["content-type"]
    assert "sealroom verify" in big.text
    pin = _verify(world, world.bundle, simulation_root="zz")
    assert pin.status_code == 400
    assert "a pin is not usable" in pin.text


def _crawl(url: str, limit: int = 400) -> dict[str, str]:
    """Every public page reachable from / (same origin, no API or docs), by link."""
    seen: dict[str, str] = {}
    queue = ["/", "/verify", "/log?from=1", "/datasets?q=notes"]
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        r = httpx.get(url + path)
        assert r.status_code == 200, path
        seen[path] = r.text
        for link in _parse(r.text).links:
            target = urlparse(urljoin(url + path, link))
            if target.netloc != urlparse(url).netloc:
                continue
            local = target.path + (f"?{target.query}" if target.query else "")
            if target.path.startswith(("/v1/", "/docs", "/static/", "/openapi")):
                continue
            if local not in seen:
                queue.append(local)
    return seen


def test_the_public_pages_expose_nothing_the_api_hides_from_an_outsider(world: World) -> None:
    pages = _crawl(world.url)
    assert any(p.startswith("/log/entries/") for p in pages)
    assert any(p.startswith("/datasets/sha256:") for p in pages)
    shown = "\n".join(pages.values())

    # What an unauthenticated caller gets from the API, over the same world.
    size = int(httpx.get(f"{world.url}/v1/log/checkpoint").text.split("\n")[1])
    api = [httpx.get(f"{world.url}/v1/log/entries/{i}").text for i in range(size)]
    api.append(httpx.get(f"{world.url}/v1/search?limit=100").text)
    api += [httpx.get(f"{world.url}/v1/datasets/{d}").text for d in world.datasets.values()]
    assert httpx.get(f"{world.url}/v1/requests/{world.request}").status_code == 401
    outsider = "\n".join(api)

    private = {
        "request id": world.request,
        "requester id": world.requester,
        "receipt digest": world.receipt,
        "pending request id": world.pending,
        "parameter name": "learner_min",
        "parameter value": '"top": 7',
        "parameters (compact)": '"top":7',
        **{f"approval {i}": a for i, a in enumerate(world.approvals)},
    }
    hidden = {what: v for what, v in private.items() if v not in outsider}
    assert set(hidden) >= {
        "request id",
        "pending request id",
        "requester id",
        "receipt digest",
        "parameter name",
        "parameter value",
    }
    for what, value in hidden.items():
        assert value not in shown, f"a public page shows the {what}"
        assert value not in shown.replace("&#34;", '"'), f"a public page shows the {what}"
    # The crawl reached what is public: every dataset and every private entry's commitment.
    for dataset in world.datasets.values():
        assert dataset in shown
    commitments = [json.loads(e)["commitment"] for e in api[:size]]
    assert sum(c is not None for c in commitments) >= 4
    for c in commitments:
        assert c is None or c in shown
    for noise in ("SELECT ", "sqlite", "Traceback"):
        assert noise not in shown


def test_the_log_browser_checks_a_checkpoint_the_reader_kept(world: World) -> None:
    """The monitor's check with the reader's own evidence: an earlier signed checkpoint is
    extended by the log; one the log signed for a different tree is shown as a split view."""
    early = open_checkpoint(world.early_note, NoteVerifier.from_vkey(world.log_key))
    latest = httpx.get(f"{world.url}/v1/log/checkpoint").text
    assert early.size < int(latest.split("\n")[1])
    page = httpx.get(f"{world.url}/log", params={"note": world.early_note})
    assert page.status_code == 200
    assert f"the tree of size {early.size} (root {b64(early.root_hash)})" in page.text
    assert "Checked: consistency:" in page.text

    doc = json.loads((world.keys_dir / "log-key.json").read_text())
    signer = NoteSigner.from_seed(doc["origin"], base64.b64decode(doc["seed"]))
    split = sign_checkpoint(Checkpoint(early.origin, early.size, b"\x07" * 32), signer)
    forked = httpx.get(f"{world.url}/log", params={"note": split})
    assert forked.status_code == 409
    assert "FAILED: consistency proof from size" in forked.text
    assert "Checked: consistency" not in forked.text

    stranger = NoteSigner.from_seed(early.origin, b"\x01" * 32)
    other = sign_checkpoint(early, stranger)
    refused = httpx.get(f"{world.url}/log", params={"note": other})
    assert refused.status_code == 400
    assert "Not a checkpoint of this log" in refused.text
    junk = httpx.get(f"{world.url}/log", params={"note": "hello"})
    assert junk.status_code == 400
