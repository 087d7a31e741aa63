"""The public pages on both storage backends: the log browser reads stored checkpoints by
size (``Log.checkpoint_at``) and the explorer searches, on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from sealroom.client import flows
from sealroom.client.http import Client
from tests.client.client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, now, party, write_jsonl
from tests.services import coordinator


def test_explorer_and_log_browser_on_each_backend(tmp_path: Path, db_url: str) -> None:
    with coordinator(tmp_path, db_url=db_url, web=True) as url:
        home, ident = party(tmp_path, "alice")
        client = Client(base_url=url, identity=ident)
        client.register_party("alice")
        for n, topics in enumerate((TOPICS_A, TOPICS_B)):
            flows.publish(
                client, ident, write_jsonl(tmp_path / f"{n}.jsonl", topics), title=f"notes {n}",
                description="", policy_rules=AUTO_POLICY, now=now(), home=home,
            )  # fmt: skip
        want = httpx.get(f"{url}/v1/search", params={"q": "kms secrets notes"}).json()
        html = httpx.get(f"{url}/datasets", params={"q": "kms secrets notes"}).text
        shown = re.findall(r'<h3 id="[^"]+"><a href="/datasets/(sha256:[0-9a-f]{64})">', html)
        assert shown == [h["dataset"]["dataset"] for h in want["items"]]
        assert len(shown) == 2

        size = int(httpx.get(f"{url}/v1/log/checkpoint").text.split("\n")[1])
        assert size >= 4  # a party, two policies, two attestations (at least)
        for first in (1, size // 2, size):
            page = httpx.get(f"{url}/log", params={"from": first})
            assert page.status_code == 200, page.text[:300]
            assert "Checked: consistency:" in page.text
            assert f"the tree of size {first} (root" in page.text
        entry = httpx.get(f"{url}/log/entries/{size - 1}")
        assert "Checked: inclusion:" in entry.text
