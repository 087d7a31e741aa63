"""The public log proves without publishing: an outsider who reads every entry learns nothing
the API refuses it, while parties open their statements and monitors check the tree."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import httpx
import pytest

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.crypto.merkle import RootAccumulator, leaf_hash
from sealroom.errors import NotFound
from sealroom.statements import PUBLIC_TYPES, Envelope
from sealroom.transparency.checkpoint import NoteVerifier, open_checkpoint
from sealroom.transparency.entries import commitment_entry, statement_commitment
from sealroom.transparency.monitor import LogMonitor
from sealroom.verification.bundle import ProofBundle
from tests.client.client_world import AUTO_POLICY, TOPICS_A, TOPICS_B, now, party, write_jsonl
from tests.services import coordinator, registered_enclave


def test_an_outsider_reading_every_log_entry_learns_nothing_private(tmp_path: Path) -> None:
    with coordinator(tmp_path) as url:
        homes = {}
        clients = {}
        for name in ("alice", "bob", "carol", "dave"):
            home, ident = party(tmp_path, name)
            homes[name] = (home, ident)
            clients[name] = Client(base_url=url, identity=ident)
            clients[name].register_party(name)
        published = [
            flows.publish(
                clients[name],
                homes[name][1],
                write_jsonl(tmp_path / f"{name}.jsonl", topics),
                title=f"{name}'s notes",
                description="work notes",
                policy_rules=AUTO_POLICY,
                now=now(),
                home=homes[name][0],
            )
            for name, topics in (("alice", TOPICS_A), ("bob", TOPICS_B))
        ]
        carol_home, carol = homes["carol"]
        cc = clients["carol"]
        log_key = NoteVerifier.from_vkey(cc.log_key().verifier_key)
        monitor = LogMonitor(log_key, lambda a, b: cc.log_consistency(a, b).proof)
        monitor.update(cc.log_checkpoint())

        worker = registered_enclave(url)
        view = flows.request(
            cc,
            carol,
            "topic-overlap",
            [p.dataset for p in published],
            {"top": 10},
            now=now(),
            home=carol_home,
        )
        for name in ("alice", "bob"):
            flows.auto_approve(
                clients[name], homes[name][1], home=homes[name][0], allow_simulated=True, now=now()
            )
        assert worker.step().outcome == "completed"
        done = flows.wait(cc, view.request, timeout=5)
        assert done.status == "completed"
        assert done.receipt is not None
        out = tmp_path / "carol-out"
        out.mkdir()
        (out / "result.json").write_bytes(b"an older result, left readable")
        (out / "result.json").chmod(0o644)
        got = flows.fetch_result(
            cc, carol, view.request, out, home=carol_home, allow_simulated=True
        )
        # The opened result and the bundle (which carries the private statements) are 0600.
        for path in (got.result_path, got.bundle_path):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        # ...as are the coordinator's database and its key file, kept apart.
        for path in (tmp_path / "coordinator.db", tmp_path / "coordinator-keys" / "log-key.json"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        approvals = [i.approval for i in done.inputs]
        assert all(a is not None for a in approvals)

        # The API refuses the outsider the request, so the log must not show it either.
        with pytest.raises(NotFound):
            clients["dave"].get_request(view.request)
        secrets = {
            "request digest": view.request,
            "requester": carol.party_id,
            "receipt digest": done.receipt,
            "computation": "topic-overlap",
            **{f"approval {i}": str(a) for i, a in enumerate(approvals)},
        }
        note = httpx.get(f"{url}/v1/log/checkpoint").text
        size = open_checkpoint(note, log_key).size
        entries = [httpx.get(f"{url}/v1/log/entries/{i}").json() for i in range(size)]
        seen = " ".join(str(e) for e in entries)
        for what, value in secrets.items():
            assert value not in seen, f"the public log shows the {what}"

        # What is in clear is only what the API serves anyone; the rest is commitments.
        clear = [Envelope.from_dict(e["entry"]) for e in entries if e["entry"] is not None]
        assert {env.type for env in clear} <= PUBLIC_TYPES
        committed = [e for e in entries if e["commitment"] is not None]
        # The request, two approvals, the receipt, two budget charges, the enclave's deletion.
        assert len(committed) == 7
        assert all((e["entry"] is None) != (e["commitment"] is None) for e in entries)

        # A monitor checks the public tree: the leaf hashes served rebuild the signed root,
        # and each leaf hash is that of the clear statement or of the commitment shown.
        acc = RootAccumulator()
        for e in entries:
            hashed = base64.b64decode(e["leaf_hash"])
            if e["entry"] is not None:
                assert hashed == leaf_hash(Envelope.from_dict(e["entry"]).to_json())
            else:
                assert hashed == leaf_hash(commitment_entry(e["commitment"]))
            acc.append_leaf_hash(hashed)
        assert acc.root() == open_checkpoint(note, log_key).root_hash
        assert monitor.update(note).size == size

        # Parties open what they may see: the requester's salt opens the request's leaf, and
        # the bundle carries statement + salt for every private statement, verified offline.
        mine = cc.get_request(view.request)
        assert mine.log_salt is not None
        assert entries[mine.log_index]["commitment"] == statement_commitment(
            mine.log_salt, mine.envelope.to_json()
        )
        private = {view.request, done.receipt, *map(str, approvals)}
        bundle = ProofBundle.from_json(got.bundle_path.read_bytes())
        assert {e.digest for e in bundle.log.entries if e.salt is not None} == private
        inclusion = next(c for c in got.report.checks if c.name == "log inclusion")
        assert inclusion.passed
        assert "4 as salted commitments" in inclusion.detail
