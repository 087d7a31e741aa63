"""Marketplace flows on the party's side: publish a trained model with its provenance and its
sealed artifact, evaluate and review models it paid to use, curate portfolios, file
disputes, and (for the operator) sign resolutions with the arbiter key.

Every statement is built and signed here from what this party holds (its verified proof
bundle, its own result); the coordinator only checks and stores it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from sealroom.client import flows
from sealroom.client.http import Client
from sealroom.computations.predict import (
    ARTIFACT_FORMAT,
    GlmArtifact,
    artifact_from_training,
    artifact_table,
)
from sealroom.crypto.files import write_private
from sealroom.crypto.keys import Identity
from sealroom.errors import CommitmentMismatch, InvalidInput
from sealroom.statements import (
    ComputationRef,
    InputRef,
    ProtocolReceipt,
    Receipt,
    ReleasedOutput,
    Signed,
    TrainedModel,
    sign_statement,
)
from sealroom.statements.market_models import (
    ArtifactRef,
    Dispute,
    Evaluation,
    EvaluationExample,
    Model,
    ModelProvenance,
    Portfolio,
    PortfolioItem,
    Resolution,
    Review,
)
from sealroom.verification.bundle import ProofBundle
from sealroom.wire.market import DisputeView, EvaluationView, ModelView, PortfolioView, ReviewView

__all__ = [
    "DEFAULT_MAX_ROWS",
    "PublishedModel",
    "artifact_policy",
    "evaluate",
    "file_dispute",
    "publish_model",
    "publish_portfolio",
    "publish_protocol_model",
    "resolve_dispute",
    "review",
]

DEFAULT_MAX_ROWS = 10_000
"""Predictions one paid run may return (the artifact policy's ``max_output_rows``)."""


def artifact_policy(*, max_rows: int = DEFAULT_MAX_ROWS) -> dict[str, Any]:
    """The artifact's policy: predict only, approved automatically (each use is paid), at
    most ``max_rows`` predictions per run (it bounds what one run reveals of the weights)."""
    return {
        "allow": [{"id": "predict"}],
        "auto_approve": [{"id": "predict"}],
        "k": 1,
        "max_output_rows": max_rows,
    }


@dataclass(frozen=True, slots=True)
class PublishedModel:
    model: ModelView
    artifact: flows.Published
    artifact_path: Path


def publish_model(
    client: Client,
    identity: Identity,
    result_dir: Path,
    *,
    name: str,
    description: str,
    price: int,
    home: Path,
    now: int,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> PublishedModel:
    """Publish the train-model result in ``result_dir`` (``result.json`` and ``bundle.json``
    as :func:`flows.fetch_result` wrote them, already verified) as a model for paid use.

    The weights go into a one-row artifact file (0600, under ``home/models``) published as
    a dataset under :func:`artifact_policy`; the Model names it, the training receipt and
    the inputs that receipt binds."""
    bundle = ProofBundle.from_json(_read(result_dir / "bundle.json"))
    receipt = bundle.receipt.open(Receipt).statement
    if receipt.computation.id != "train-model":
        raise InvalidInput(f"{result_dir} holds a {receipt.computation.id} result, not train-model")
    released = ReleasedOutput.from_json(_read(result_dir / "result.json"))
    mine = [o for o in receipt.outputs if o.recipient == identity.party_id]
    if released.request != receipt.request or [o.commitment for o in mine] != [
        released.commitment()
    ]:
        raise CommitmentMismatch("result.json is not this party's output of that receipt")
    try:
        output = json.loads(released.body)
    except ValueError:
        raise InvalidInput("the result body is not JSON") from None
    if not isinstance(output, dict):
        raise InvalidInput("the result is not a train-model result")
    artifact = artifact_from_training(output)
    path, published = _publish_artifact(
        client,
        identity,
        artifact,
        bundle.receipt.digest,
        name=name,
        home=home,
        now=now,
        max_rows=max_rows,
    )
    metrics = output.get("metrics") or {}
    model = Model.build(
        trainer=identity.party_id,
        name=name,
        description=description,
        family=artifact.family,
        target=artifact.target,
        features=artifact.features,
        metrics={str(k): str(v) for k, v in dict(metrics).items()},
        provenance=ModelProvenance(
            kind="enclave-job",
            request=receipt.request,
            trained_model=None,
            receipts=(bundle.receipt.digest,),
            inputs=receipt.inputs,
            computation=receipt.computation,
        ),
        artifact=ArtifactRef(
            dataset=published.dataset,
            commitment_root=published.attestation.statement.commitment.root,
        ),
        price=price,
        created_at=now,
    )
    view = client.publish_model(sign_statement(model, identity).envelope)
    return PublishedModel(model=view, artifact=published, artifact_path=path)


def publish_protocol_model(
    client: Client,
    identity: Identity,
    trained: Signed[TrainedModel],
    receipts: Sequence[Signed[ProtocolReceipt]],
    *,
    target: str,
    name: str,
    description: str,
    price: int,
    home: Path,
    now: int,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> PublishedModel:
    """Publish a model this party trained in a federated or HE run (``trained``, the
    TrainedModel it signed, and every participant's receipt: :class:`ProtocolRun`'s
    ``model`` and ``record.receipts``) with its sealed artifact, as :func:`publish_model`
    does for an enclave job. The participants must have named the datasets they trained on
    (``inputs``); their commitment roots come from their attestations, signature-checked."""
    model = trained.statement
    if model.trainer != identity.party_id:
        raise InvalidInput("only the trainer publishes its model")
    weights = model.model
    artifact = GlmArtifact(
        format=ARTIFACT_FORMAT,
        family="binomial" if weights.family == "logistic" else "gaussian",
        target=target,
        features=weights.features,
        weights=weights.weights,
        intercept=weights.intercept,
    )
    datasets = sorted({d for p in model.participants for d in p.inputs})
    if not datasets:
        raise InvalidInput("the run names no input datasets: its owners must pass `inputs`")
    inputs = tuple(
        InputRef(dataset=d, commitment_root=flows.show(client, d).commitment["root"])
        for d in datasets
    )
    version = receipts[0].statement.protocol_version if receipts else 1
    path, published = _publish_artifact(
        client,
        identity,
        artifact,
        trained.digest,
        name=name,
        home=home,
        now=now,
        max_rows=max_rows,
    )
    statement = Model.build(
        trainer=identity.party_id,
        name=name,
        description=description,
        family=artifact.family,
        target=target,
        features=artifact.features,
        metrics={},
        provenance=ModelProvenance(
            kind="protocol-run",
            request=None,
            trained_model=trained.digest,
            receipts=tuple(r.digest for r in receipts),
            inputs=inputs,
            computation=ComputationRef(
                id=model.method, version=f"{version}.0.0", code_digest=model.code_digest
            ),
        ),
        artifact=ArtifactRef(
            dataset=published.dataset,
            commitment_root=published.attestation.statement.commitment.root,
        ),
        price=price,
        created_at=now,
    )
    view = client.publish_model(
        sign_statement(statement, identity).envelope,
        [trained.envelope, *(r.envelope for r in receipts)],
    )
    return PublishedModel(model=view, artifact=published, artifact_path=path)


def _publish_artifact(
    client: Client,
    identity: Identity,
    artifact: GlmArtifact,
    source: str,
    *,
    name: str,
    home: Path,
    now: int,
    max_rows: int,
) -> tuple[Path, flows.Published]:
    """Write the artifact (0600, under ``home/models``) and publish it under
    :func:`artifact_policy`, with no keywords or topics on its card."""
    buffer = io.BytesIO()
    pq.write_table(artifact_table(artifact), buffer)
    path = home / "models" / f"{source.removeprefix('sha256:')[:32]}.parquet"
    write_private(path, buffer.getvalue())
    published = flows.publish(
        client,
        identity,
        path,
        title=f"model artifact: {name}"[:200],
        description="Sealed parameters of a model offered for paid use (predict only).",
        policy_rules=artifact_policy(max_rows=max_rows),
        now=now,
        home=home,
        card=flows.CardOptions(text_column="", time_column="", project_column=""),
    )
    return path, published


def evaluate(
    client: Client,
    identity: Identity,
    model: str,
    use: str,
    *,
    score: str,
    summary: str,
    examples: Sequence[tuple[Mapping[str, str], str]] = (),
    now: int,
) -> EvaluationView:
    """Sign and post an evaluation of ``model``; ``use`` is this party's paid predict run."""
    ev = Evaluation.build(
        evaluator=identity.party_id,
        model=model,
        use=use,
        score=score,
        summary=summary,
        examples=tuple(
            EvaluationExample(inputs=dict(inputs), output=out) for inputs, out in examples
        ),
        created_at=now,
    )
    return client.post_evaluation(sign_statement(ev, identity).envelope)


def review(
    client: Client,
    identity: Identity,
    evaluation: str,
    use: str,
    *,
    rating: int,
    comment: str = "",
    now: int,
) -> ReviewView:
    """Sign and post a 1..5 rating of another party's evaluation (``use``: this party's own
    paid predict run of the same model)."""
    rv = Review.build(
        reviewer=identity.party_id,
        evaluation=evaluation,
        use=use,
        rating=rating,
        comment=comment,
        created_at=now,
    )
    return client.post_review(sign_statement(rv, identity).envelope)


def publish_portfolio(
    client: Client,
    identity: Identity,
    *,
    name: str,
    description: str,
    items: Sequence[tuple[str, int]],
    fee: int,
    now: int,
) -> PortfolioView:
    """Sign and post a portfolio: (dataset, weight in basis points) summing to 10 000."""
    pf = Portfolio.build(
        curator=identity.party_id,
        name=name,
        description=description,
        items=tuple(PortfolioItem(dataset=d, weight=w) for d, w in items),
        fee=fee,
        created_at=now,
    )
    return client.publish_portfolio(sign_statement(pf, identity).envelope)


def file_dispute(
    client: Client,
    identity: Identity,
    request: str,
    *,
    respondent: str,
    subject: str,
    amount: int,
    reason: str,
    now: int,
) -> DisputeView:
    """Sign and post a dispute over what this party paid ``respondent`` for ``request``; the
    request's receipt (from the coordinator, checked by digest) is the evidence."""
    view = client.get_request(request)
    if view.receipt is None:
        raise InvalidInput(f"request {request} has no receipt: only a completed run is disputed")
    d = Dispute.build(
        claimant=identity.party_id,
        respondent=respondent,
        subject=subject,
        request=request,
        receipts=(view.receipt,),
        amount=amount,
        reason=reason,
        created_at=now,
    )
    return client.file_dispute(sign_statement(d, identity).envelope)


def resolve_dispute(
    client: Client,
    arbiter: Identity,
    dispute: str,
    *,
    outcome: str,
    refund: int,
    reason: str,
    now: int,
) -> DisputeView:
    """Sign a resolution with the coordinator's arbiter key and post it (``client`` must act
    as that key)."""
    res = Resolution.build(
        arbiter=arbiter.party_id,
        dispute=dispute,
        outcome=outcome,
        refund=refund,
        reason=reason,
        created_at=now,
    )
    return client.resolve_dispute(sign_statement(res, arbiter).envelope, dispute=dispute)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
