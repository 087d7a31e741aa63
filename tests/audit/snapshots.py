"""A room policy snapshot as the rooms flow writes it (the shape in docs/rooms-audit.md)."""

from __future__ import annotations

from typing import Any

from sealroom.crypto.keys import Identity

CODE = "sha256:" + "ab" * 32


def snapshot(
    host: Identity,
    members: list[Identity],
    *,
    code: str = CODE,
    title: str = "Cohort overlap 2026",
    k: int = 10,
) -> dict[str, Any]:
    return {
        "type": "sealroom.room-policy-snapshot",
        "version": 1,
        "room": "sha256:" + "cd" * 32,
        "title": title,
        "purpose": "Size the overlap of two customer cohorts before a joint campaign.",
        "host": host.party_id,
        "template": {
            "id": "psi-overlap",
            "name": "PSI overlap and cohort sizing",
            "code_digest": code,
        },
        "inputs": [
            {"party": m.party_id, "name": f"customers-{n}", "description": "hashed emails"}
            for n, m in enumerate(members)
        ],
        "outputs": [
            {
                "name": "overlap size",
                "description": "thresholded count of shared entities.",
                "recipients": [m.party_id for m in members],
            }
        ],
        "allowed_queries": [{"id": "topic-overlap", "version": "2.1.0", "code_digest": code}],
        "visibility": [
            {"party": m.party_id, "sees": "the overlap size; never the other party's rows"}
            for m in members
        ],
        "k": k,
        "dp": {"epsilon": "1.0", "delta": "0.000001"},
        "retention_seconds": 7 * 86400,
        "expires_at": 1_900_000_000,
        "region": "eu-west",
        "parties": [{"party": m.party_id, "name": f"member {n}"} for n, m in enumerate(members)],
        # A field the summary does not show still counts in the digest.
        "extra": {"note": "kept"},
    }
