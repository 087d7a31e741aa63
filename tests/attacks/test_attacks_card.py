"""Issue 11, class 11, end to end: the public card.

On main (0bebc30) profiling ignored the policy's k and counted records, not entities: a
200-record file where 6 records name a patient and a diagnosis published a card listing
both, with k = 50 in the policy, and it stays in the log forever. There was no preview.

Now the card is built with the policy's k in distinct entities, the owner sees the exact
card first (``preview_card`` / ``dataset publish --dry-run``) and can drop terms, and what
the coordinator serves from the log is that card.
"""

from __future__ import annotations

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.statements import DatasetAttestation
from tests.attacks.attack_world import Folder, World
from tests.client.client_world import now
from tests.connectors.clinic_notes import write_clinic_notes


def test_the_public_card_obeys_k_in_entities(world: World, files: Folder) -> None:
    notes = write_clinic_notes(files.path / "notes.jsonl")
    rules = {"allow": [{"id": "topic-overlap"}], "k": 50}
    victim = world.party("c11-clinic")
    card = flows.CardOptions(text_column="note")
    preview = flows.preview_card(notes, policy_rules=rules, card=card)
    dataset = flows.publish(
        victim.client,
        victim.identity,
        notes,
        title="clinic notes",
        description="",
        policy_rules=rules,
        now=now(),
        home=victim.home,
        card=card,
    ).dataset
    # What anyone reads from the log, forever:
    served = Client(base_url=world.url).dataset(dataset).envelope.open(DatasetAttestation)
    body = served.statement.model_dump_json().lower()
    assert not any(w in body for w in ("zebulon", "quixote", "leukaemia"))
    assert all((kw.count or 0) >= 50 for kw in served.statement.keywords)
    assert [kw.model_dump() for kw in served.statement.keywords] == preview.fields["keywords"]
