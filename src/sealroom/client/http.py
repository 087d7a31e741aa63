"""The Python SDK: one method per route of docs/http-api.md, over a sync httpx client.

Every mutating call and every non-public read is signed
(:func:`~sealroom.crypto.request_signing.sign_request`) over the exact bytes
that go on the wire: the body is serialised here (canonical JSON) and sent as
``content=``, and the signed target is taken from the built request's raw path
and query. Error responses come back as the matching
:mod:`sealroom.errors` class with the server's detail; an unreachable
coordinator is :class:`~sealroom.errors.BackendUnavailable` naming the URL; a
response that does not have the documented shape is a
:class:`~sealroom.errors.ProtocolError`.

This class checks shapes only. Whether a statement is genuine is decided by
the flows (:mod:`sealroom.client.flows`), which re-open every envelope.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx

from sealroom.client.errors import error_for
from sealroom.crypto.keys import Identity, PartyId, PublicIdentity, b64encode
from sealroom.crypto.request_signing import sign_request
from sealroom.errors import (
    AuthenticationFailed,
    BackendUnavailable,
    InvalidInput,
    ProtocolError,
    SealroomError,
    SignatureInvalid,
)
from sealroom.statements import ComputationRequest, Envelope, canonical_json
from sealroom.verification.bundle import ProofBundle
from sealroom.wire import (
    ApprovalBody,
    BudgetView,
    CompleteJobBody,
    ComputationInfo,
    ComputationList,
    ConsentBody,
    ConsistencyProofView,
    CreateRequestBody,
    CreateRoomBody,
    CreateSessionBody,
    CreditsView,
    DatasetPage,
    DatasetView,
    DeletionBody,
    DeletionRecorded,
    DeletionsView,
    DirectTransferBody,
    DraftView,
    EnclaveBody,
    EnclaveList,
    EnclaveRegistered,
    Health,
    InclusionProofView,
    InvitationBody,
    JobView,
    JoinRoomBody,
    KeywordOverlapBody,
    LeaseView,
    LedgerKeyView,
    LedgerView,
    LogEntryView,
    LogKey,
    MessagePosted,
    OrgMemberBody,
    OrgMemberView,
    Participant,
    PartyView,
    PendingReleases,
    PolicyBody,
    PolicyCreated,
    PolicyView,
    ProtocolReceiptsBody,
    PublishDatasetBody,
    PublishedDataset,
    Quote,
    QuoteBody,
    ReasonBody,
    RegisterPartyBody,
    ReleaseBody,
    ReleaseKey,
    RequestList,
    RequestView,
    ResultView,
    RoomList,
    RoomStatements,
    RoomView,
    RunApprovalBody,
    SealedOutput,
    SearchPage,
    SessionList,
    SessionView,
    TransferView,
    WireModel,
    parse_response,
)
from sealroom.wire.credits import (
    AcceptBody,
    LivenessBody,
    LivenessChallenge,
    OfferBody,
    OfferList,
    OfferView,
    RewardsView,
)
from sealroom.wire.market import (
    ArbiterView,
    DisputeBody,
    DisputePage,
    DisputeView,
    EvaluationBody,
    EvaluationPage,
    EvaluationView,
    ModelBody,
    ModelPage,
    ModelView,
    PledgeBody,
    PledgeView,
    PortfolioBody,
    PortfolioPage,
    PortfolioView,
    ReputationView,
    ResolutionBody,
    ReviewBody,
    ReviewView,
    UsePage,
)
from sealroom.wire.parties import party_keys
from sealroom.wire.uploads import StartUploadBody, UploadView

__all__ = ["DEFAULT_TIMEOUT", "DEFAULT_URL", "Client", "Progress", "system_clock"]

DEFAULT_URL = "http://127.0.0.1:8470"
DEFAULT_TIMEOUT = 30.0
UPLOAD_PIECE = 1 << 20
_MAX_ERROR_BODY = 64 << 10

V = TypeVar("V", bound=WireModel)

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while a large body is sent or received."""


def system_clock() -> int:
    """The wall clock in unix seconds: the default for signing timestamps."""
    return int(time.time())


def _segment(value: str) -> str:
    """One path segment; ``:`` in digests stays readable, everything else unsafe is escaped."""
    if not isinstance(value, str) or not value:
        raise InvalidInput("a path parameter must be a non-empty string")
    return quote(value, safe=":")


class Client:
    """A connection to one coordinator, optionally acting as one party (``identity``)."""

    __slots__ = ("_base_url", "_clock", "_http", "_identity")

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_URL,
        identity: Identity | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], int] = system_clock,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInput(f"coordinator URL must be http(s)://..., got {base_url!r}")
        self._base_url = base_url.rstrip("/")
        self._identity = identity
        self._clock = clock
        self._http = httpx.Client(transport=transport, timeout=httpx.Timeout(timeout))

    # --- plumbing ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def identity(self) -> Identity | None:
        return self._identity

    def now(self) -> int:
        return self._clock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_identity(self) -> Identity:
        if self._identity is None:
            raise AuthenticationFailed(
                "this call must be signed, but the client has no identity "
                "(create one with `sealroom init`)"
            )
        return self._identity

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        content_type: str = "application/json",
        signed: bool,
        headers: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        target = path + ("?" + urlencode(list(query), quote_via=quote) if query else "")
        url = self._base_url + target
        all_headers: dict[str, str] = {"accept": "application/json", **(headers or {})}
        payload = body if body is not None else b""
        content: bytes | Iterator[bytes] | None = None
        if body is not None:
            all_headers["content-type"] = content_type
            all_headers["content-length"] = str(len(body))
            content = body if progress is None else _pieces(body, progress)
        request = self._http.build_request(
            method,
            url,
            content=content,
            headers=all_headers,
            timeout=self._http.timeout if timeout is None else httpx.Timeout(timeout),
        )
        if signed:
            identity = self._require_identity()
            sent_target = request.url.raw_path.decode("ascii")
            request.headers.update(
                sign_request(
                    identity, method=method, target=sent_target, body=payload, now=self._clock()
                )
            )
        try:
            response = self._http.send(request)
        except httpx.TimeoutException as exc:
            raise BackendUnavailable(
                f"the coordinator at {self._base_url} did not answer in time ({method} {path}): "
                f"{type(exc).__name__}"
            ) from None
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"cannot reach the coordinator at {self._base_url}: {exc or type(exc).__name__}"
            ) from None
        if response.status_code >= 400:
            raise _error_from(response, method, path)
        return response

    def _view(
        self,
        cls: type[V],
        method: str,
        path: str,
        *,
        what: str,
        expect: tuple[int, ...] = (200, 201),
        **kwargs: Any,
    ) -> V:
        response = self._send(method, path, **kwargs)
        _expect(response, expect, what)
        return parse_response(cls, response.content, what=what)

    @staticmethod
    def _json_body(body: WireModel) -> bytes:
        """The body's canonical JSON. Bodies are built unchecked (``model_construct``): the
        server judges what it accepts, and says why in its error."""
        return canonical_json(body.model_dump(mode="json", by_alias=True, warnings=False))

    # --- service -----------------------------------------------------------------------

    def health(self) -> Health:
        return self._view(Health, "GET", "/v1/health", what="GET /v1/health", signed=False)

    def computations(self) -> tuple[ComputationInfo, ...]:
        view = self._view(
            ComputationList, "GET", "/v1/computations", what="GET /v1/computations", signed=False
        )
        return view.computations

    # --- parties -----------------------------------------------------------------------

    def register_party(self, name: str) -> PartyView:
        """Register this client's identity (self-certifying; repeat calls are idempotent)."""
        identity = self._require_identity()
        body = self._json_body(
            RegisterPartyBody.model_construct(
                name=name,
                signing_key=b64encode(identity.public.signing_key),
                sealing_key=b64encode(identity.public.sealing_key),
                kem_key=(
                    None if identity.public.kem_key is None else b64encode(identity.public.kem_key)
                ),
            )
        )
        return self._view(
            PartyView, "POST", "/v1/parties", what="POST /v1/parties", body=body, signed=True
        )

    def party(self, party: str) -> PartyView:
        path = f"/v1/parties/{_segment(party)}"
        return self._view(PartyView, "GET", path, what="GET party", signed=False)

    def party_identity(self, party: str) -> PublicIdentity:
        """A party's public keys, checked against its id (the id is the hash of the keys, so
        the coordinator cannot swap them)."""
        info = self.party(party)
        keys = party_keys(info.signing_key, info.sealing_key, info.kem_key)
        if keys.party_id != party:
            raise SignatureInvalid(f"the coordinator's keys for {party} do not match its id")
        return keys

    # --- transparency log --------------------------------------------------------------

    def log_checkpoint(self) -> str:
        response = self._send("GET", "/v1/log/checkpoint", signed=False)
        _expect(response, (200,), "GET /v1/log/checkpoint")
        try:
            return response.content.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("the log checkpoint is not UTF-8 text") from None

    def log_key(self) -> LogKey:
        return self._view(LogKey, "GET", "/v1/log/key", what="GET /v1/log/key", signed=False)

    def log_entry(self, index: int) -> LogEntryView:
        path = f"/v1/log/entries/{int(index)}"
        return self._view(LogEntryView, "GET", path, what="GET log entry", signed=False)

    def log_inclusion(self, index: int, size: int) -> InclusionProofView:
        return self._view(
            InclusionProofView,
            "GET",
            "/v1/log/inclusion",
            query=[("index", str(int(index))), ("size", str(int(size)))],
            what="GET /v1/log/inclusion",
            signed=False,
        )

    def log_consistency(self, first: int, second: int) -> ConsistencyProofView:
        return self._view(
            ConsistencyProofView,
            "GET",
            "/v1/log/consistency",
            query=[("first", str(int(first))), ("second", str(int(second)))],
            what="GET /v1/log/consistency",
            signed=False,
        )

    # --- credits -----------------------------------------------------------------------

    def credits_ledger(self) -> LedgerKeyView:
        """The ledger key every Transfer is signed with, and the price schedule in force."""
        return self._view(
            LedgerKeyView, "GET", "/v1/credits/ledger", what="GET /v1/credits/ledger", signed=False
        )

    def credits(self) -> CreditsView:
        """This party's balance and its transfers, with the salts of their log commitments."""
        return self._view(CreditsView, "GET", "/v1/credits", what="GET /v1/credits", signed=True)

    def pay(self, to: str, amount: int, *, key: str, memo: str = "") -> TransferView:
        """Pay ``amount`` minor units to party ``to``; the same ``key`` again moves nothing."""
        body = self._json_body(
            DirectTransferBody.model_construct(to=to, amount=amount, key=key, memo=memo)
        )
        return self._view(
            TransferView,
            "POST",
            "/v1/credits/transfers",
            what="POST /v1/credits/transfers",
            body=body,
            signed=True,
        )

    def quote(
        self,
        computation: str,
        parameters: Mapping[str, Any],
        inputs: Sequence[str],
        recipients: Sequence[str],
        terms: Sequence[str] = (),
    ) -> Quote:
        """The price a request with these parts would be escrowed at, before it is signed."""
        body = self._json_body(
            QuoteBody.model_construct(
                computation=computation,
                parameters=dict(parameters),
                inputs=tuple(inputs),
                recipients=tuple(recipients),
                terms=tuple(terms),
            )
        )
        return self._view(
            Quote,
            "POST",
            "/v1/credits/quote",
            what="POST /v1/credits/quote",
            body=body,
            signed=True,
        )

    def post_offer(self, offer: Envelope) -> OfferView:
        body = self._json_body(OfferBody.model_construct(offer=offer))
        return self._view(
            OfferView, "POST", "/v1/credits/offers", what="POST offer", body=body, signed=True
        )

    def offers(self) -> tuple[OfferView, ...]:
        """Unexpired offers this party made, or that it may accept."""
        view = self._view(OfferList, "GET", "/v1/credits/offers", what="GET offers", signed=True)
        return view.items

    def post_accept(self, accept: Envelope) -> OfferView:
        body = self._json_body(AcceptBody.model_construct(accept=accept))
        return self._view(
            OfferView, "POST", "/v1/credits/accepts", what="POST accept", body=body, signed=True
        )

    def liveness_challenge(self) -> LivenessChallenge:
        return self._view(
            LivenessChallenge,
            "GET",
            "/v1/credits/challenge",
            what="GET /v1/credits/challenge",
            signed=True,
        )

    def post_liveness(self, liveness: Envelope) -> RewardsView:
        body = self._json_body(LivenessBody.model_construct(liveness=liveness))
        return self._view(
            RewardsView,
            "POST",
            "/v1/credits/liveness",
            what="POST liveness",
            body=body,
            signed=True,
        )

    # --- policies ----------------------------------------------------------------------

    def post_policy(self, policy: Envelope) -> PolicyCreated:
        body = self._json_body(PolicyBody.model_construct(policy=policy))
        return self._view(
            PolicyCreated, "POST", "/v1/policies", what="POST /v1/policies", body=body, signed=True
        )

    def policy(self, digest: str) -> PolicyView:
        path = f"/v1/policies/{_segment(digest)}"
        return self._view(PolicyView, "GET", path, what="GET policy", signed=False)

    # --- datasets and discovery --------------------------------------------------------

    def publish_dataset(
        self, attestation: Envelope, policy: Envelope | None = None
    ) -> PublishedDataset:
        body = self._json_body(
            PublishDatasetBody.model_construct(attestation=attestation, policy=policy)
        )
        return self._view(
            PublishedDataset,
            "POST",
            "/v1/datasets",
            what="POST /v1/datasets",
            body=body,
            signed=True,
        )

    def list_datasets(
        self, *, owner: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> DatasetPage:
        query = _query(owner=owner, limit=limit, cursor=cursor)
        return self._view(
            DatasetPage, "GET", "/v1/datasets", query=query, what="GET /v1/datasets", signed=False
        )

    def dataset(self, dataset: str) -> DatasetView:
        path = f"/v1/datasets/{_segment(dataset)}"
        return self._view(DatasetView, "GET", path, what="GET dataset", signed=False)

    def withdraw_dataset(self, dataset: str, reason: str) -> DatasetView:
        path = f"/v1/datasets/{_segment(dataset)}/withdraw"
        body = self._json_body(ReasonBody.model_construct(reason=reason))
        return self._view(
            DatasetView, "POST", path, what="POST dataset withdraw", body=body, signed=True
        )

    def budget(self, dataset: str) -> BudgetView:
        """One of this party's datasets' DP budget and its use (signed: the owner's only)."""
        path = f"/v1/datasets/{_segment(dataset)}/budget"
        return self._view(BudgetView, "GET", path, what="GET budget", signed=True)

    def search(
        self,
        q: str | None = None,
        *,
        keywords: Sequence[str] = (),
        owner: str | None = None,
        min_rows: int | None = None,
        max_rows: int | None = None,
        start: int | None = None,
        end: int | None = None,
        similar_to: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> SearchPage:
        query = _query(q=q)
        query += [("keyword", k) for k in keywords]
        query += _query(
            owner=owner,
            min_rows=min_rows,
            max_rows=max_rows,
            **{"from": start, "to": end},
            similar_to=similar_to,
            limit=limit,
            cursor=cursor,
        )
        return self._view(
            SearchPage, "GET", "/v1/search", query=query, what="GET /v1/search", signed=False
        )

    # --- requests and approvals --------------------------------------------------------

    def create_request(self, request: Envelope) -> RequestView:
        body = self._json_body(CreateRequestBody.model_construct(request=request))
        return self._view(
            RequestView, "POST", "/v1/requests", what="POST /v1/requests", body=body, signed=True
        )

    def keyword_overlap_draft(self, dataset_a: str, dataset_b: str) -> ComputationRequest:
        """The server's unsigned topic-overlap draft; the caller checks it before signing."""
        body = self._json_body(
            KeywordOverlapBody.model_construct(dataset_a=dataset_a, dataset_b=dataset_b)
        )
        view = self._view(
            DraftView,
            "POST",
            "/v1/compute/keyword-overlap",
            what="POST /v1/compute/keyword-overlap",
            body=body,
            signed=True,
            expect=(200,),
        )
        try:
            return ComputationRequest.parse_payload(canonical_json(view.draft))
        except SealroomError as exc:
            raise ProtocolError(f"the keyword-overlap draft is not a request: {exc}") from None

    def keyword_overlap_create(
        self, dataset_a: str, dataset_b: str, request: Envelope
    ) -> RequestView:
        body = self._json_body(
            KeywordOverlapBody.model_construct(
                dataset_a=dataset_a, dataset_b=dataset_b, request=request
            )
        )
        return self._view(
            RequestView,
            "POST",
            "/v1/compute/keyword-overlap",
            what="POST /v1/compute/keyword-overlap",
            body=body,
            signed=True,
        )

    def list_requests(
        self, *, role: str | None = None, status: str | None = None
    ) -> tuple[RequestView, ...]:
        view = self._view(
            RequestList,
            "GET",
            "/v1/requests",
            query=_query(role=role, status=status),
            what="GET /v1/requests",
            signed=True,
        )
        return view.items

    def inbox(self) -> tuple[RequestView, ...]:
        view = self._view(RequestList, "GET", "/v1/inbox", what="GET /v1/inbox", signed=True)
        return view.items

    def get_request(self, request: str) -> RequestView:
        path = f"/v1/requests/{_segment(request)}"
        return self._view(RequestView, "GET", path, what="GET request", signed=True)

    def post_approval(self, request: str, approval: Envelope) -> RequestView:
        path = f"/v1/requests/{_segment(request)}/approvals"
        body = self._json_body(ApprovalBody.model_construct(approval=approval))
        return self._view(RequestView, "POST", path, what="POST approval", body=body, signed=True)

    def upload_input(
        self,
        request: str,
        dataset: str,
        sealed: bytes,
        *,
        enclave: str,
        progress: Progress | None = None,
    ) -> RequestView:
        path = f"/v1/requests/{_segment(request)}/inputs/{_segment(dataset)}"
        return self._view(
            RequestView,
            "PUT",
            path,
            what="PUT sealed input",
            body=sealed,
            content_type="application/octet-stream",
            headers={"sealroom-enclave": enclave},
            signed=True,
            progress=progress,
        )

    def start_upload(self, request: str, dataset: str, body: StartUploadBody) -> UploadView:
        """Start (or resume: same shape, same upload) the chunked upload of a sealed input."""
        path = f"/v1/requests/{_segment(request)}/inputs/{_segment(dataset)}/uploads"
        return self._view(
            UploadView,
            "POST",
            path,
            what="POST upload",
            body=self._json_body(body),
            signed=True,
        )

    def get_upload(self, upload: str) -> UploadView:
        path = f"/v1/uploads/{_segment(upload)}"
        return self._view(UploadView, "GET", path, what="GET upload", signed=True)

    def put_part(self, upload: str, index: int, data: bytes) -> UploadView:
        path = f"/v1/uploads/{_segment(upload)}/parts/{int(index)}"
        return self._view(
            UploadView,
            "PUT",
            path,
            what="PUT upload part",
            body=data,
            content_type="application/octet-stream",
            signed=True,
        )

    def complete_upload(self, upload: str) -> RequestView:
        path = f"/v1/uploads/{_segment(upload)}/complete"
        return self._view(
            RequestView, "POST", path, what="POST upload complete", body=b"", signed=True
        )

    def post_protocol_receipts(self, request: str, receipts: Sequence[Envelope]) -> RequestView:
        path = f"/v1/requests/{_segment(request)}/receipts"
        body = self._json_body(ProtocolReceiptsBody.model_construct(receipts=tuple(receipts)))
        return self._view(
            RequestView, "POST", path, what="POST protocol receipts", body=body, signed=True
        )

    def withdraw_request(self, request: str, reason: str) -> RequestView:
        path = f"/v1/requests/{_segment(request)}/withdraw"
        body = self._json_body(ReasonBody.model_construct(reason=reason))
        return self._view(
            RequestView, "POST", path, what="POST request withdraw", body=body, signed=True
        )

    def result(self, request: str) -> ResultView:
        path = f"/v1/requests/{_segment(request)}/result"
        return self._view(ResultView, "GET", path, what="GET result", signed=True)

    def bundle(self, request: str) -> ProofBundle:
        """The proof bundle (without outputs). Shape-checked here, verified by the caller."""
        path = f"/v1/requests/{_segment(request)}/bundle"
        response = self._send("GET", path, signed=True)
        _expect(response, (200,), "GET bundle")
        try:
            value = json.loads(response.content)
            return ProofBundle.from_json(canonical_json(value))
        except (ValueError, SealroomError) as exc:
            raise ProtocolError(f"malformed proof bundle: {exc}") from None

    # --- enclaves and jobs -------------------------------------------------------------

    def register_enclave(self, evidence: Envelope) -> EnclaveRegistered:
        body = self._json_body(EnclaveBody.model_construct(evidence=evidence))
        return self._view(
            EnclaveRegistered,
            "POST",
            "/v1/enclaves",
            what="POST /v1/enclaves",
            body=body,
            signed=True,
        )

    def enclaves(self) -> EnclaveList:
        """The enclaves the coordinator admits now (untrusted: verify one before sealing to it)."""
        return self._view(EnclaveList, "GET", "/v1/enclaves", what="GET /v1/enclaves", signed=False)

    def claim_job(self) -> JobView | None:
        """The next job for this enclave, or None when nothing is ready (204)."""
        response = self._send("POST", "/v1/jobs/claim", body=b"", signed=True)
        _expect(response, (200, 204), "POST /v1/jobs/claim")
        if response.status_code == 204:
            return None
        return parse_response(JobView, response.content, what="POST /v1/jobs/claim")

    def job_input(self, request: str, dataset: str) -> bytes:
        path = f"/v1/jobs/{_segment(request)}/inputs/{_segment(dataset)}"
        response = self._send("GET", path, signed=True, headers={"accept": "*/*"})
        _expect(response, (200,), "GET job input")
        return response.content

    def job_input_part(self, request: str, dataset: str, index: int) -> bytes:
        path = f"/v1/jobs/{_segment(request)}/inputs/{_segment(dataset)}/parts/{int(index)}"
        response = self._send("GET", path, signed=True, headers={"accept": "*/*"})
        _expect(response, (200,), "GET job input part")
        return response.content

    def complete_job(
        self,
        request: str,
        receipt: Envelope,
        outputs: Mapping[PartyId, bytes],
        charges: Sequence[Envelope] = (),
    ) -> RequestView:
        """Post the result with its budget charges (stored together, or not at all)."""
        path = f"/v1/jobs/{_segment(request)}/complete"
        body = self._json_body(
            CompleteJobBody.model_construct(
                receipt=receipt,
                outputs=tuple(
                    SealedOutput.model_construct(recipient=r, sealed=s)
                    for r, s in sorted(outputs.items())
                ),
                charges=tuple(charges),
            )
        )
        return self._view(
            RequestView, "POST", path, what="POST job complete", body=body, signed=True
        )

    def release_job(self, request: str, keys: Mapping[PartyId, bytes]) -> RequestView:
        """Post a completed job's release keys, each sealed to its recipient (enclaves only)."""
        path = f"/v1/jobs/{_segment(request)}/release"
        body = self._json_body(
            ReleaseBody.model_construct(
                keys=tuple(
                    ReleaseKey.model_construct(recipient=r, sealed_key=k)
                    for r, k in sorted(keys.items())
                )
            )
        )
        return self._view(
            RequestView, "POST", path, what="POST job release", body=body, signed=True
        )

    def pending_releases(self) -> PendingReleases:
        """This enclave's completed jobs whose release keys are not all posted yet."""
        return self._view(
            PendingReleases, "GET", "/v1/jobs/releases", what="GET job releases", signed=True
        )

    def renew_lease(self, request: str) -> LeaseView:
        path = f"/v1/jobs/{_segment(request)}/lease"
        return self._view(LeaseView, "POST", path, what="POST job lease", body=b"", signed=True)

    def ledger(self, dataset: str) -> LedgerView:
        """A dataset's budget charges with inclusion proofs (enclaves only)."""
        path = f"/v1/ledger/{_segment(dataset)}"
        return self._view(LedgerView, "GET", path, what="GET ledger", signed=True)

    def record_deletion(self, request: str, deletion: Envelope) -> DeletionRecorded:
        """Post the enclave's signed Deletion for a job it ran (stored and logged once)."""
        path = f"/v1/jobs/{_segment(request)}/deletion"
        body = self._json_body(DeletionBody.model_construct(deletion=deletion))
        return self._view(
            DeletionRecorded, "POST", path, what="POST job deletion", body=body, signed=True
        )

    def deletions(self, request: str) -> DeletionsView:
        """The request's Deletions with proofs, and the coordinator's erasures (untrusted:
        open each envelope and check its proof)."""
        path = f"/v1/requests/{_segment(request)}/deletions"
        return self._view(DeletionsView, "GET", path, what="GET deletions", signed=True)

    def fail_job(self, request: str, reason: str) -> RequestView:
        path = f"/v1/jobs/{_segment(request)}/fail"
        body = self._json_body(ReasonBody.model_construct(reason=reason))
        return self._view(RequestView, "POST", path, what="POST job fail", body=body, signed=True)

    # --- relay for protocols run between parties ---------------------------------------

    def create_session(
        self,
        session: str,
        *,
        protocol: str,
        participants: Sequence[tuple[str, str]],
        request: str | None = None,
        expires_in: int = 3600,
    ) -> SessionView:
        body = self._json_body(
            CreateSessionBody.model_construct(
                session=session,
                protocol=protocol,
                participants=tuple(
                    Participant.model_construct(role=r, party=p) for r, p in participants
                ),
                request=request,
                expires_in=expires_in,
            )
        )
        return self._view(
            SessionView, "POST", "/v1/sessions", what="POST /v1/sessions", body=body, signed=True
        )

    def sessions(self) -> tuple[SessionView, ...]:
        page = self._view(SessionList, "GET", "/v1/sessions", what="GET /v1/sessions", signed=True)
        return page.sessions

    def session(self, session: str) -> SessionView:
        path = f"/v1/sessions/{_segment(session)}"
        return self._view(SessionView, "GET", path, what="GET session", signed=True)

    def post_message(self, session: str, to: str, body: bytes) -> int:
        path = f"/v1/sessions/{_segment(session)}/messages"
        response = self._send(
            "POST",
            path,
            query=[("to", to)],
            body=body,
            content_type="application/octet-stream",
            signed=True,
        )
        _expect(response, (201,), "POST session message")
        return parse_response(MessagePosted, response.content, what="POST session message").index

    def next_message(
        self, session: str, *, after: int, wait: float = 0.0
    ) -> tuple[int, str, bytes] | None:
        """The next relayed message for this party after ``after``: (index, sender role, body).

        With ``wait`` (s, at most the coordinator's limit, 20), the coordinator holds the
        request until a message arrives or the time is up (long poll)."""
        path = f"/v1/sessions/{_segment(session)}/messages"
        query = [("after", str(after))]
        if wait > 0:
            query.append(("wait", f"{wait:.3f}"))
        response = self._send(
            "GET",
            path,
            query=query,
            signed=True,
            headers={"accept": "*/*"},
            # The coordinator answers after up to ``wait`` s: the read timeout covers it.
            timeout=None if wait <= 0 else wait + _http_timeout(self._http),
        )
        _expect(response, (200, 204), "GET session message")
        if response.status_code == 204:
            return None
        index, sender = (
            response.headers.get("sealroom-index", ""),
            response.headers.get("sealroom-sender", ""),
        )
        if not index.isdigit() or not sender:
            raise ProtocolError("malformed response to GET session message: headers")
        return int(index), sender, response.content

    # --- rooms ------------------------------------------------------------------------

    def create_room(self, room: Envelope, policy: Envelope) -> RoomView:
        body = self._json_body(CreateRoomBody.model_construct(room=room, policy=policy))
        return self._view(
            RoomView, "POST", "/v1/rooms", what="POST /v1/rooms", body=body, signed=True
        )

    def rooms(self) -> tuple[RoomView, ...]:
        return self._view(RoomList, "GET", "/v1/rooms", what="GET /v1/rooms", signed=True).items

    def room(self, room: str) -> RoomView:
        path = f"/v1/rooms/{_segment(room)}"
        return self._view(RoomView, "GET", path, what="GET room", signed=True)

    def room_statements(self, room: str) -> RoomStatements:
        path = f"/v1/rooms/{_segment(room)}/statements"
        return self._view(RoomStatements, "GET", path, what="GET room statements", signed=True)

    def invite(self, room: str, invitation: Envelope) -> RoomView:
        path = f"/v1/rooms/{_segment(room)}/invitations"
        body = self._json_body(InvitationBody.model_construct(invitation=invitation))
        return self._view(RoomView, "POST", path, what="POST invitation", body=body, signed=True)

    def join_room(self, room: str, precheck: Mapping[str, Any]) -> RoomView:
        path = f"/v1/rooms/{_segment(room)}/join"
        body = self._json_body(JoinRoomBody.model_construct(precheck=dict(precheck)))
        return self._view(RoomView, "POST", path, what="POST join", body=body, signed=True)

    def post_consent(self, room: str, consent: Envelope) -> RoomView:
        path = f"/v1/rooms/{_segment(room)}/consents"
        body = self._json_body(ConsentBody.model_construct(consent=consent))
        return self._view(RoomView, "POST", path, what="POST consent", body=body, signed=True)

    def approve_run(self, room: str, request: str, approval: Envelope) -> RoomView:
        path = f"/v1/rooms/{_segment(room)}/runs/{_segment(request)}/approvals"
        body = self._json_body(RunApprovalBody.model_construct(approval=approval))
        return self._view(RoomView, "POST", path, what="POST run approval", body=body, signed=True)

    def put_org_member(self, member: Envelope) -> OrgMemberView:
        body = self._json_body(OrgMemberBody.model_construct(member=member))
        return self._view(
            OrgMemberView,
            "POST",
            "/v1/orgs/members",
            what="POST /v1/orgs/members",
            body=body,
            signed=True,
        )

    # --- marketplace ----------------------------------------------------------------------

    def publish_model(self, model: Envelope, evidence: Sequence[Envelope] = ()) -> ModelView:
        body = self._json_body(ModelBody.model_construct(model=model, evidence=tuple(evidence)))
        return self._view(
            ModelView, "POST", "/v1/models", what="POST /v1/models", body=body, signed=True
        )

    def models(self, *, trainer: str | None = None) -> ModelPage:
        query = _query(trainer=trainer)
        return self._view(
            ModelPage, "GET", "/v1/models", query=query, what="GET /v1/models", signed=False
        )

    def model(self, model: str) -> ModelView:
        path = f"/v1/models/{_segment(model)}"
        return self._view(ModelView, "GET", path, what="GET model", signed=False)

    def model_uses(self, model: str) -> UsePage:
        path = f"/v1/models/{_segment(model)}/uses"
        return self._view(UsePage, "GET", path, what="GET model uses", signed=True)

    def model_evaluations(self, model: str) -> EvaluationPage:
        path = f"/v1/models/{_segment(model)}/evaluations"
        return self._view(EvaluationPage, "GET", path, what="GET evaluations", signed=False)

    def post_evaluation(self, evaluation: Envelope) -> EvaluationView:
        body = self._json_body(EvaluationBody.model_construct(evaluation=evaluation))
        return self._view(
            EvaluationView,
            "POST",
            "/v1/evaluations",
            what="POST evaluation",
            body=body,
            signed=True,
        )

    def post_review(self, review: Envelope) -> ReviewView:
        body = self._json_body(ReviewBody.model_construct(review=review))
        return self._view(
            ReviewView, "POST", "/v1/reviews", what="POST review", body=body, signed=True
        )

    def publish_portfolio(self, portfolio: Envelope) -> PortfolioView:
        body = self._json_body(PortfolioBody.model_construct(portfolio=portfolio))
        return self._view(
            PortfolioView, "POST", "/v1/portfolios", what="POST portfolio", body=body, signed=True
        )

    def portfolios(self, *, curator: str | None = None) -> PortfolioPage:
        query = _query(curator=curator)
        return self._view(
            PortfolioPage, "GET", "/v1/portfolios", query=query, what="GET portfolios", signed=False
        )

    def portfolio(self, portfolio: str) -> PortfolioView:
        path = f"/v1/portfolios/{_segment(portfolio)}"
        return self._view(PortfolioView, "GET", path, what="GET portfolio", signed=False)

    def pledge(self, portfolio: str, request: str, amount: int) -> PledgeView:
        path = f"/v1/portfolios/{_segment(portfolio)}/pledges"
        body = self._json_body(PledgeBody.model_construct(request=request, amount=amount))
        return self._view(PledgeView, "POST", path, what="POST pledge", body=body, signed=True)

    def get_pledge(self, request: str) -> PledgeView:
        path = f"/v1/pledges/{_segment(request)}"
        return self._view(PledgeView, "GET", path, what="GET pledge", signed=True)

    def file_dispute(self, dispute: Envelope) -> DisputeView:
        body = self._json_body(DisputeBody.model_construct(dispute=dispute))
        return self._view(
            DisputeView, "POST", "/v1/disputes", what="POST dispute", body=body, signed=True
        )

    def disputes(self) -> DisputePage:
        return self._view(DisputePage, "GET", "/v1/disputes", what="GET disputes", signed=True)

    def dispute(self, dispute: str) -> DisputeView:
        path = f"/v1/disputes/{_segment(dispute)}"
        return self._view(DisputeView, "GET", path, what="GET dispute", signed=True)

    def resolve_dispute(self, resolution: Envelope, *, dispute: str) -> DisputeView:
        """Post the arbiter's resolution (this client's identity must be the arbiter key)."""
        path = f"/v1/disputes/{_segment(dispute)}/resolution"
        body = self._json_body(ResolutionBody.model_construct(resolution=resolution))
        return self._view(DisputeView, "POST", path, what="POST resolution", body=body, signed=True)

    def arbiter(self) -> ArbiterView:
        return self._view(
            ArbiterView, "GET", "/v1/market/arbiter", what="GET arbiter", signed=False
        )

    def reputation(self, party: str) -> ReputationView:
        path = f"/v1/reputation/{_segment(party)}"
        return self._view(ReputationView, "GET", path, what="GET reputation", signed=False)


def _http_timeout(http: httpx.Client) -> float:
    """The client's read timeout (s), the margin a long poll adds to its wait."""
    read = http.timeout.read
    return DEFAULT_TIMEOUT if read is None else read


def _pieces(body: bytes, progress: Progress) -> Iterator[bytes]:
    total = len(body)
    view = memoryview(body)
    progress(0, total)
    for start in range(0, total, UPLOAD_PIECE):
        piece = bytes(view[start : start + UPLOAD_PIECE])
        yield piece
        progress(start + len(piece), total)


def _query(**params: str | int | None) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in params.items() if v is not None]


def _expect(response: httpx.Response, statuses: tuple[int, ...], what: str) -> None:
    if response.status_code not in statuses:
        raise ProtocolError(
            f"unexpected HTTP {response.status_code} from {what} "
            f"(expected {', '.join(map(str, statuses))})"
        )


def _error_from(response: httpx.Response, method: str, path: str) -> SealroomError:
    status = response.status_code
    raw = response.content[:_MAX_ERROR_BODY]
    try:
        doc = json.loads(raw)
        err = doc["error"]
        code = err["code"]
        message = err.get("message")
        detail = err.get("detail")
        if not isinstance(code, str):
            raise TypeError("code")
    except (ValueError, KeyError, TypeError):
        return ProtocolError(
            f"HTTP {status} from {method} {path} without a sealroom error body"
            + (" (is this a sealroom coordinator?)" if status == 404 else "")
        )
    text = detail if isinstance(detail, str) and detail else message
    return error_for(status, code, text if isinstance(text, str) else f"HTTP {status}")
