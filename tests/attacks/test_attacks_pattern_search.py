"""Issue 11, class 9, end to end: pattern-search.

On main (0bebc30) redaction missed national ids, card numbers, phone numbers, hostnames and
"the password is ..."; ``matched`` was computed on unredacted text, so extending a query
prefix recovered a redacted secret one character at a time.

Now every record is redacted before anything reads it (python-stdnum, libphonenumber, Luhn,
secrets in prose, hosts), queries match redacted text only, counts are rounded down to a
multiple of k, and two queries whose matches differ by one person are refused by the
enclave's difference check. A person approves every query (class ``content``): here the
victim approves by hand, as a busy owner would.
"""

from __future__ import annotations

import json

from tests.attacks.attack_world import Folder, World

SECRETS = (
    "hunter2",
    "078-05-1120",  # a US social security number
    "4111 1111 1111 1111",  # a Luhn-valid card number
    "+1 415 555 0132",
    "db01.corp.example.com",
)
PROBLEM = (
    "Login failed on staging for db01.corp.example.com, SSN 078-05-1120, card "
    "4111 1111 1111 1111, phone +1 415 555 0132. "
)


def test_query_extension_learns_nothing_and_differencing_is_refused(
    world: World, files: Folder
) -> None:
    rows = [
        {"text": PROBLEM + "The password is hunter2. Fixed by resetting the vault.", "person": p}
        for p in ("p0", "p1", "p2", "p3", "p4", "p5")
    ]
    rows += [{"text": PROBLEM + "The vault was sealed.", "person": "p6"}]
    victim = world.publish(
        "c9-ops",
        files.jsonl("log", rows),
        {"allow": [{"id": "pattern-search"}], "k": 5, "entity_column": "person"},
    )

    def ask(query: str) -> dict[str, object]:
        answer = world.ask(
            "c9-mallory", "pattern-search", [victim], {"query": query}, by_hand=("c9-ops",)
        )
        return answer.released

    # Extending a prefix into the secret matches nothing, whatever the secret.
    for prefix in ("h", "hu", "hunter2", "x"):
        answer = ask("the password is " + prefix)
        assert (answer["matched"], answer["patterns"]) == (0, [])
    # The problem all seven wrote leaves, redacted: none of its identifiers does.
    broad = ask("login failed on staging")
    assert broad["matched"] == 5  # 7 people, rounded down to a multiple of k = 5
    assert [p["count"] for p in broad["patterns"]] == [5]
    text = json.dumps(broad)
    assert "login failed on staging" in text
    assert not [s for s in SECRETS if s in text]
    # A query whose matches differ from those by one person: refused in the enclave, for
    # any identity (the history is per owner and entity column, across requesters).
    second = world.ask(
        "c9-sybil", "pattern-search", [victim], {"query": "the password is"}, by_hand=("c9-ops",)
    )
    assert second.refused_by("difference-check") == "enclave"
