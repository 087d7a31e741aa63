"""One party acting through the SDK: its keys, its coordinator, its local state and its clock.

A :class:`Party` is what the CLI, the demos and agents hold: every verb of the
flows (publish, search, request, approve, ... and the protocols run directly
between parties) signed by this party, timed by its clock, with what it
remembers (dataset index, pinned log key) kept in its keystore directory.
The verbs are thin: the checks live in :mod:`sealroom.client.flows` and
:mod:`sealroom.client.protocol_runs`, which stay usable on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sealroom.attestation.collateral import CollateralSource, collateral_source
from sealroom.client import flows, market
from sealroom.client import rooms as room_flows
from sealroom.client.http import DEFAULT_TIMEOUT as HTTP_TIMEOUT
from sealroom.client.http import DEFAULT_URL, Client, Progress, system_clock
from sealroom.client.protocol_runs import (
    Exchange,
    ProtocolRun,
    run_federated,
    run_he,
    run_pjc,
    run_psi,
)
from sealroom.client.relay import Session, join_session, open_session
from sealroom.computations import Registry
from sealroom.crypto.keys import Identity, PartyId
from sealroom.crypto.keystore import Keystore, PassphraseSource
from sealroom.errors import Conflict, InvalidInput, NameTaken, SealroomError
from sealroom.protocols.channel import DEFAULT_TIMEOUT
from sealroom.statements import Envelope, Policy, sign_statement
from sealroom.wire import BudgetView, DatasetView, OrgMemberView, RequestView, RoomView, SearchPage
from sealroom.wire.market import (
    DisputeView,
    EvaluationView,
    PortfolioView,
    ReputationView,
    ReviewView,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from numpy.typing import NDArray

    from sealroom.audit.pack import AuditPack
    from sealroom.audit.summary import PolicySummary
    from sealroom.connectors.sources import Source
    from sealroom.statements import DatasetAttestation, Signed

__all__ = ["Party", "PartyRooms"]


class Party:
    """This party's client, identity, keystore directory (``home``) and clock.

    Open one with :meth:`open` (an existing keystore) or :meth:`create` (new
    keys); both register the party with the coordinator. Use it as a context
    manager, or call :meth:`close`, to close its HTTP connections. The clock
    (unix seconds) times every signature and statement; tests inject one.
    """

    __slots__ = ("_client", "_collateral", "_home", "_identity", "_name", "_registry")

    def __init__(
        self,
        *,
        client: Client,
        home: Path,
        name: str,
        registry: Registry | None = None,
        collateral: CollateralSource | None = None,
    ) -> None:
        if client.identity is None:
            raise InvalidInput("a party's client must sign as the party (it has no identity)")
        self._client = client
        self._identity = client.identity
        self._home = Path(home)
        self._name = name
        # The computation library is loaded when a flow first needs it (``None`` here means the
        # default one): it imports every computation's numeric stack, which a command that only
        # lists, reads or decides never touches.
        self._registry = registry
        # Where live enclave checks get DCAP collateral: the given source, else
        # $SEALROOM_PCCS_URL, else the evidence's own copy (with a warning).
        self._collateral = collateral if collateral is not None else collateral_source()

    @classmethod
    def open(
        cls,
        *,
        home: Path,
        url: str = DEFAULT_URL,
        clock: Callable[[], int] = system_clock,
        timeout: float = HTTP_TIMEOUT,
        registry: Registry | None = None,
        passphrase: PassphraseSource | None = None,
        collateral: CollateralSource | None = None,
    ) -> Party:
        """The party whose keystore is in ``home``, connected to the coordinator at ``url``.

        ``passphrase`` opens an encrypted keystore (a function is asked only if it is);
        ``collateral`` is where live enclave checks get current DCAP collateral
        (default: ``$SEALROOM_PCCS_URL``, else the evidence's own copy).
        """
        entry = Keystore.load_entry(home, passphrase=passphrase)
        return cls._connect(
            entry.identity, entry.name, home, url, clock, timeout, registry, collateral
        )

    @classmethod
    def create(
        cls,
        *,
        home: Path,
        name: str,
        url: str = DEFAULT_URL,
        clock: Callable[[], int] = system_clock,
        timeout: float = HTTP_TIMEOUT,
        registry: Registry | None = None,
        passphrase: str | None = None,
        unencrypted: bool = False,
        collateral: CollateralSource | None = None,
    ) -> Party:
        """A new party: fresh keys in a new keystore in ``home``, registered as ``name``.

        The keystore is encrypted under ``passphrase``, or not at all only with
        ``unencrypted=True`` (as :meth:`Keystore.create`).
        """
        identity = Keystore.create(home, name=name, passphrase=passphrase, unencrypted=unencrypted)
        return cls._connect(identity, name, home, url, clock, timeout, registry, collateral)

    @classmethod
    def _connect(
        cls,
        identity: Identity,
        name: str,
        home: Path,
        url: str,
        clock: Callable[[], int],
        timeout: float,
        registry: Registry | None,
        collateral: CollateralSource | None = None,
    ) -> Party:
        client = Client(base_url=url, identity=identity, clock=clock, timeout=timeout)
        try:
            client.register_party(name)  # idempotent
        except NameTaken:
            client.close()
            raise
        except Conflict:
            pass  # registered earlier under another display name; the keys are what count
        except SealroomError:
            client.close()
            raise
        return cls(client=client, home=home, name=name, registry=registry, collateral=collateral)

    # --- who, where, when ------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The HTTP layer, for the routes no verb covers."""
        return self._client

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def party_id(self) -> PartyId:
        return self.identity.party_id

    @property
    def name(self) -> str:
        return self._name

    @property
    def home(self) -> Path:
        return self._home

    @property
    def url(self) -> str:
        return self._client.base_url

    def now(self) -> int:
        return self._client.now()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Party:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Party(name={self._name!r}, party_id={self.party_id!r}, url={self.url!r})"

    # --- datasets --------------------------------------------------------------------------

    def publish(
        self,
        path: Path | Source,
        *,
        title: str,
        description: str = "",
        policy: Mapping[str, Any] | None = None,
        policy_name: str | None = None,
        card: flows.CardOptions | None = None,
    ) -> flows.Published:
        """Profile and commit a local file or other source
        (:func:`sealroom.connectors.open_source`), publish its signed card (and ``policy``'s
        rules); the data stays here. ``flows.preview_card`` shows the same card unsigned."""
        return flows.publish(
            self._client,
            self.identity,
            path,
            title=title,
            description=description,
            policy_rules=policy,
            policy_name=policy_name,
            now=self.now(),
            home=self._home,
            card=card if card is not None else flows.CardOptions(),
        )

    def search(
        self,
        query: str | None = None,
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
        """Published datasets by full text, keywords, owner, size and time range, or ranked
        by keyword Jaccard against ``similar_to``."""
        return self._client.search(
            query,
            keywords=keywords,
            owner=owner,
            min_rows=min_rows,
            max_rows=max_rows,
            start=start,
            end=end,
            similar_to=similar_to,
            limit=limit,
            cursor=cursor,
        )

    def show(self, dataset: str) -> DatasetView:
        """A dataset's public card, once its owner's signature on it checks out."""
        return flows.show(self._client, dataset)

    def withdraw_dataset(self, dataset: str, *, reason: str) -> DatasetView:
        """Withdraw one of this party's datasets (new requests are refused, pending ones end)."""
        return flows.withdraw_dataset(self._client, dataset, reason=reason)

    def budget(self, dataset: str) -> BudgetView:
        """One of this party's datasets' DP budget: spent and remaining per requester and in
        total, as the coordinator's receipts show it (the enclave's ledger is the truth)."""
        return self._client.budget(dataset)

    def load_dataset(
        self, dataset: str, *, data: Path | Source | None = None
    ) -> tuple[Signed[DatasetAttestation], pa.Table]:
        """One of this party's datasets, read from ``data`` (default: the file it published)
        and checked against its signed commitment."""
        return flows.load_dataset(self._client, dataset, data_path=data, home=self._home)

    # --- requests ---------------------------------------------------------------------------

    def request(
        self,
        computation: str,
        datasets: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        ttl: int = flows.DEFAULT_TTL,
        room_policy: Mapping[str, Any] | Envelope | str | None = None,
        room_policy_name: str = "room policy",
        terms: Sequence[str] = (),
        max_price: int | None = None,
    ) -> RequestView:
        """Ask for ``computation`` on ``datasets``; their owners approve by hand or by policy.

        ``room_policy``: rules this party signs (or a signed policy, or a stored policy's
        digest) that every input's policy composes with, strictest wins. ``terms``: this
        party's acceptances of owners' offers (negotiated prices); ``max_price``: the most
        this party agrees to pay, signed into the request.
        """
        room: Envelope | str | None
        if isinstance(room_policy, Mapping):
            room = sign_statement(
                Policy.build(
                    owner=self.party_id,
                    name=room_policy_name[:200],
                    rules=dict(room_policy),
                    created_at=self.now(),
                ),
                self.identity,
            ).envelope
        else:
            room = room_policy
        return flows.request(
            self._client,
            self.identity,
            computation,
            datasets,
            params or {},
            now=self.now(),
            ttl=ttl,
            registry=self._registry,
            room_policy=room,
            home=self._home,
            terms=terms,
            max_price=max_price,
        )

    def keyword_overlap(self, mine: str, theirs: str) -> RequestView:
        """A topic overlap drafted by the coordinator (the seed's call), checked, then signed."""
        return flows.keyword_overlap(
            self._client, self.identity, mine, theirs, now=self.now(), registry=self._registry
        )

    def inbox(self) -> tuple[RequestView, ...]:
        """Requests on this party's datasets that wait for its decision."""
        return self._client.inbox()

    def requests(self, *, status: str | None = None) -> tuple[RequestView, ...]:
        """This party's own requests (as requester), optionally only those in ``status``."""
        return self._client.list_requests(role="requester", status=status)

    def auto_approve(
        self,
        *,
        allow_simulated: bool = False,
        measurements: bytes | None = None,
        simulation_root: bytes | None = None,
        progress: Progress | None = None,
    ) -> list[flows.AutoApproval]:
        """Approve (and seal data for) exactly the inbox items this party's policies approve
        automatically; leave the rest for a person."""
        return flows.auto_approve(
            self._client,
            self.identity,
            home=self._home,
            allow_simulated=allow_simulated,
            now=self.now(),
            registry=self._registry,
            measurements=measurements,
            simulation_root=simulation_root,
            progress=progress,
            collateral=self._collateral,
        )

    def approve(
        self,
        request: str,
        *,
        data: Path | Source | None = None,
        reason: str = "approved by the owner",
        allow_simulated: bool = False,
        measurements: bytes | None = None,
        simulation_root: bytes | None = None,
        progress: Progress | None = None,
    ) -> list[flows.ApprovedInput]:
        """Approve this party's inputs of ``request``: verify the enclave, re-check the data
        against its commitment, sign, seal it to the enclave and upload it."""
        return flows.approve(
            self._client,
            self.identity,
            request,
            home=self._home,
            data_path=data,
            allow_simulated=allow_simulated,
            now=self.now(),
            reason=reason,
            registry=self._registry,
            measurements=measurements,
            simulation_root=simulation_root,
            progress=progress,
            collateral=self._collateral,
        )

    def reject(self, request: str, *, reason: str) -> RequestView:
        """Reject a request on this party's data (one signed rejection ends it)."""
        return flows.reject(self._client, self.identity, request, reason=reason, now=self.now())

    def withdraw(self, request: str, *, reason: str = "withdrawn by the requester") -> RequestView:
        """Withdraw this party's own request while it is pending or approved."""
        return flows.withdraw(self._client, request, reason=reason)

    def status(self, request: str) -> RequestView:
        return flows.status(self._client, request)

    def wait(
        self,
        request: str,
        *,
        timeout: float,
        until: Collection[str] = flows.TERMINAL,
        progress: Callable[[RequestView], None] | None = None,
    ) -> RequestView:
        """Poll until ``request`` reaches a status in ``until`` (or any final one)."""
        return flows.wait(self._client, request, until=until, timeout=timeout, progress=progress)

    def result(
        self,
        request: str,
        out_dir: Path,
        *,
        allow_simulated: bool = False,
        measurements: bytes | None = None,
        simulation_root: bytes | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> flows.FetchedResult:
        """Download, open and verify this party's result; write result.json and bundle.json
        in ``out_dir`` (``on_step`` is told each step as it starts)."""
        return flows.fetch_result(
            self._client,
            self.identity,
            request,
            out_dir,
            home=self._home,
            allow_simulated=allow_simulated,
            measurements=measurements,
            simulation_root=simulation_root,
            on_step=on_step,
        )

    # --- rooms ------------------------------------------------------------------------------

    @property
    def rooms(self) -> PartyRooms:
        """This party's verbs on rooms (host, member, or a person of an organisation)."""
        return PartyRooms(self)

    # --- marketplace ------------------------------------------------------------------------

    def publish_model(
        self,
        result_dir: Path,
        *,
        name: str,
        price: int,
        description: str = "",
        max_rows: int = market.DEFAULT_MAX_ROWS,
    ) -> market.PublishedModel:
        """Publish this party's verified train-model result (``result_dir``, as
        :meth:`result` wrote it) as a model for paid use: a sealed artifact dataset (predict
        only) and a signed Model naming the training receipt."""
        return market.publish_model(
            self._client,
            self.identity,
            result_dir,
            name=name,
            description=description,
            price=price,
            home=self._home,
            now=self.now(),
            max_rows=max_rows,
        )

    def predict(
        self, model: str, dataset: str, *, id_column: str | None = None, digits: int = 6
    ) -> RequestView:
        """Ask for predictions of ``model`` on this party's ``dataset`` (paid per use when it
        completes); approve the own input with :meth:`auto_approve` or :meth:`approve`."""
        artifact = self._client.model(model).artifact
        params: dict[str, Any] = {"digits": digits}
        if id_column is not None:
            params["id_column"] = id_column
        return self.request("predict", [artifact, dataset], params)

    def evaluate(
        self,
        model: str,
        use: str,
        *,
        score: str,
        summary: str = "",
        examples: Sequence[tuple[Mapping[str, str], str]] = (),
    ) -> EvaluationView:
        """Evaluate ``model``; ``use`` is this party's paid predict request of it."""
        return market.evaluate(
            self._client,
            self.identity,
            model,
            use,
            score=score,
            summary=summary,
            examples=examples,
            now=self.now(),
        )

    def review(self, evaluation: str, use: str, *, rating: int, comment: str = "") -> ReviewView:
        """Rate another party's evaluation (``use``: this party's paid use of the same model)."""
        return market.review(
            self._client,
            self.identity,
            evaluation,
            use,
            rating=rating,
            comment=comment,
            now=self.now(),
        )

    def curate(
        self, *, name: str, items: Sequence[tuple[str, int]], fee: int, description: str = ""
    ) -> PortfolioView:
        """Publish a portfolio: (dataset, weight in basis points summing to 10 000), fee in bp."""
        return market.publish_portfolio(
            self._client,
            self.identity,
            name=name,
            description=description,
            items=items,
            fee=fee,
            now=self.now(),
        )

    def dispute(
        self, request: str, *, respondent: str, amount: int, reason: str, subject: str = "result"
    ) -> DisputeView:
        """File a dispute over what this party paid ``respondent`` for ``request``."""
        return market.file_dispute(
            self._client,
            self.identity,
            request,
            respondent=respondent,
            subject=subject,
            amount=amount,
            reason=reason,
            now=self.now(),
        )

    def reputation(self, party: str | None = None) -> ReputationView:
        """A party's reputation per role (default: this party's)."""
        return self._client.reputation(party or self.party_id)

    # --- protocols between parties, no enclave ----------------------------------------------
    #
    # A run is started by one party naming the others (``start_with``: party ids) and
    # joined by each of them (``join=True``: the newest session of the protocol that invites
    # this party, or ``session``; ``expect``: party ids the session must include).

    def psi(
        self,
        elements: Iterable[bytes] = (),
        *,
        keywords: Sequence[str] | None = None,
        start_with: Sequence[str] = (),
        join: bool = False,
        session: str | None = None,
        expect: Sequence[str] = (),
        mode: Literal["cardinality", "intersection"] = "cardinality",
        threshold: int = 0,
        workers: int = 1,
        inputs: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
        on_start: Callable[[Session], None] | None = None,
        on_join: Callable[[Session], None] | None = None,
        on_exchange: Exchange | None = None,
    ) -> ProtocolRun:
        """Private set intersection with one other party (ECDH-PSI over Curve25519).

        Both learn both set sizes; in ``cardinality`` mode both learn |A ∩ B| and the
        Jaccard index, in ``intersection`` mode the starter learns the common elements
        (:attr:`ProtocolRun.intersection`). With ``keywords`` (private discovery) the
        normalised keyword sets are compared by size only. Both sides must give the same
        ``mode`` and ``threshold``; below the threshold the run stops, revealing no size.
        """
        from sealroom.protocols import psi

        if keywords is not None and mode != "cardinality":
            raise InvalidInput("keyword sets are compared by size only (cardinality)")
        params = psi.PsiParams(
            mode=mode,
            threshold=threshold,
            max_set_size=psi.KEYWORD_MAX if keywords is not None else 1_000_000,
        )
        peer = _one_peer(start_with)
        met = self._meet(
            psi.PROTOCOL,
            [("a", self.party_id), ("b", peer)] if peer is not None else None,
            session=session,
            expect=expect,
            join=join,
            timeout=timeout,
            on_start=on_start,
            on_join=on_join,
        )
        return run_psi(
            self._client,
            met,
            elements=elements,
            keywords=keywords,
            params=params,
            workers=workers,
            inputs=inputs,
            timeout=timeout,
            on_exchange=on_exchange,
        )

    def pjc(
        self,
        ids: Sequence[bytes],
        values: Sequence[int] | None = None,
        *,
        start_with: Sequence[str] = (),
        join: bool = False,
        session: str | None = None,
        expect: Sequence[str] = (),
        min_intersection: int = 10,
        max_value: int = 1_000_000,
        dp_epsilon: str | None = None,
        workers: int = 1,
        inputs: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
        on_start: Callable[[Session], None] | None = None,
        on_join: Callable[[Session], None] | None = None,
        on_exchange: Exchange | None = None,
    ) -> ProtocolRun:
        """Private intersection-sum (Private Join and Compute) with one other party.

        The party without ``values`` learns how many ``ids`` both hold and the sum of the
        other's values over them (with Laplace noise at ``dp_epsilon``, a decimal string);
        the values' owner learns only the other set's size. Both must give the same
        ``min_intersection``, ``max_value`` and ``dp_epsilon``.
        """
        from sealroom.protocols import pjc

        params = pjc.PjcParams(
            min_intersection=min_intersection, max_value=max_value, dp_epsilon=dp_epsilon
        )
        mine = "b" if values is not None else "a"
        peer = _one_peer(start_with)
        met = self._meet(
            pjc.PROTOCOL,
            [(mine, self.party_id), ("a" if mine == "b" else "b", peer)]
            if peer is not None
            else None,
            session=session,
            expect=expect,
            join=join,
            timeout=timeout,
            on_start=on_start,
            on_join=on_join,
        )
        if met.me != mine:
            raise InvalidInput(
                f"this session has this party as {met.me!r}: "
                + ("the values belong to the other side" if met.me == "a" else "bring the values")
            )
        return run_pjc(
            self._client,
            met,
            ids=ids,
            values=values,
            params=params,
            workers=workers,
            inputs=inputs,
            timeout=timeout,
            on_exchange=on_exchange,
        )

    def train(
        self,
        method: Literal["federated", "he"],
        *,
        features: Sequence[str],
        data: tuple[NDArray[Any], NDArray[Any]] | None = None,
        start_with: Sequence[str] = (),
        join: bool = False,
        session: str | None = None,
        expect: Sequence[str] = (),
        model: Literal["logistic", "linear"] = "logistic",
        rounds: int = 20,
        learning_rate: str = "0.5",
        inputs: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
        dropout_timeout: float | None = None,
        on_start: Callable[[Session], None] | None = None,
        on_join: Callable[[Session], None] | None = None,
        on_exchange: Exchange | None = None,
    ) -> ProtocolRun:
        """Train a model on several owners' rows that never leave them.

        The starter (``start_with``: the owners) aggregates (``federated``: federated
        averaging over secure aggregation, logistic only) or trains (``he``: gradient
        descent on CKKS-encrypted weights) and brings no data; each owner joins with its
        ``data`` (features, labels). Everyone gives the same ``features`` (names, in
        order), ``rounds`` and ``learning_rate``. The trainer signs the model statement
        (:attr:`ProtocolRun.model`); every owner checks it and commits to it.
        ``dropout_timeout`` (federated; default ``timeout``): how long a round waits.
        """
        if method not in ("federated", "he"):
            raise InvalidInput("the training method must be federated or he")
        if model not in ("logistic", "linear"):
            raise InvalidInput("the model must be logistic or linear")
        if method == "federated" and model != "logistic":
            raise InvalidInput("federated training fits logistic regression only")
        if not features:
            raise InvalidInput("name the feature columns")
        if start_with and data is not None:
            raise InvalidInput("the starter aggregates or trains and brings no data")
        if join and data is None:
            raise InvalidInput("an owner joins with its training data (features, labels)")
        hub = "aggregator" if method == "federated" else "trainer"
        met = self._meet(
            "secagg" if method == "federated" else "he",
            [(hub, self.party_id)] + [(f"o{i + 1}", p) for i, p in enumerate(start_with)]
            if start_with
            else None,
            session=session,
            expect=expect,
            join=join,
            timeout=timeout,
            on_start=on_start,
            on_join=on_join,
        )
        owners = tuple(r for r in met.roles if r != met.roles[0])
        if method == "federated":
            from sealroom.protocols import fedavg

            try:
                rate = float(learning_rate)
            except ValueError:
                raise InvalidInput("the learning rate must be a decimal number") from None
            config = fedavg.FedAvgConfig(
                aggregator=met.roles[0],
                owners=owners,
                features=len(features),
                rounds=rounds,
                learning_rate=rate,
            )
            return run_federated(
                self._client,
                met,
                config=config,
                features=features,
                data=None if data is None else fedavg.OwnerData(*data),
                inputs=inputs,
                timeout=timeout,
                on_exchange=on_exchange,
                dropout_timeout=timeout if dropout_timeout is None else dropout_timeout,
            )
        from sealroom.protocols import he

        params = he.HeParams(
            model=model,
            features=len(features),
            rounds=rounds,
            learning_rate=learning_rate,
            owners=owners,
        )
        return run_he(
            self._client,
            met,
            params=params,
            features=features,
            data=data,
            inputs=inputs,
            timeout=timeout,
            on_exchange=on_exchange,
        )

    def _meet(
        self,
        protocol: str,
        roles: Sequence[tuple[str, str]] | None,
        *,
        session: str | None,
        expect: Sequence[str],
        join: bool,
        timeout: float,
        on_start: Callable[[Session], None] | None,
        on_join: Callable[[Session], None] | None = None,
    ) -> Session:
        """Open a session in ``roles`` (role, party id), or join one: exactly one of the two.

        ``on_join`` sees a joined session before any message is sent: raising there (a
        person did not confirm the inviter's fingerprint) leaves the run unjoined."""
        if join == (roles is not None):
            raise InvalidInput("either start a run with other parties or join one, not both")
        if roles is None:
            joined = join_session(
                self._client, protocol=protocol, session=session, expect=expect, wait=timeout
            )
            if on_join is not None:
                on_join(joined)
            return joined
        opened = open_session(self._client, protocol=protocol, roles=roles, wait=timeout)
        if on_start is not None:
            on_start(opened)
        return opened


def _one_peer(start_with: Sequence[str]) -> str | None:
    if len(start_with) > 1:
        raise InvalidInput("this protocol runs between exactly two parties")
    return start_with[0] if start_with else None


class PartyRooms:
    """Rooms as one party acts in them: every verb signed by it, timed by its clock."""

    __slots__ = ("_party",)

    def __init__(self, party: Party) -> None:
        self._party = party

    def create(
        self,
        *,
        name: str,
        purpose: str,
        template: str,
        k: int,
        expires_at: int,
        dp: Literal["required", "exact"] = "required",
        epsilon_per_run: str | None = "1",
        epsilon_total: str | None = "4",
        retention_seconds: int = 30 * 86400,
        region: str | None = None,
        max_parties: int = 5,
        approval: Literal["manual", "policy"] = "policy",
        protocols: bool = False,
    ) -> room_flows.VerifiedRoom:
        """Create a room from ``template`` (see ``sealroom.computations.templates``);
        ``protocols``: its runs may also execute as the template's no-trust protocols
        (exact releases, so ``dp="exact"``)."""
        from sealroom.computations.templates import RoomSettings

        p = self._party
        settings = RoomSettings(
            name=name,
            purpose=purpose,
            template=template,
            k=k,
            dp=dp,
            epsilon_per_run=epsilon_per_run,
            epsilon_total=epsilon_total,
            retention_seconds=retention_seconds,
            expires_at=expires_at,
            region=region,
            max_parties=max_parties,
            approval=approval,
            protocols=protocols,
        )
        return room_flows.create_room(
            p.client, p.identity, settings, now=p.now(), registry=p._registry
        )

    def list(self) -> tuple[RoomView, ...]:
        return self._party.client.rooms()

    def show(self, room: str) -> room_flows.VerifiedRoom:
        """One of this party's rooms, checked against its signed statements."""
        return room_flows.fetch_room(self._party.client, room)

    def invite(self, room: str, party: str) -> RoomView:
        p = self._party
        return room_flows.invite(p.client, p.identity, room, party, now=p.now())

    def precheck(
        self,
        room: str,
        dataset: str,
        *,
        key_column: str = "id",
        columns: Mapping[str, Literal["any", "numeric"]] | None = None,
        data: Path | Source | None = None,
    ) -> dict[str, Any]:
        """The local pre-check report for joining ``room`` with ``dataset`` (nothing is sent)."""
        p = self._party
        return room_flows.precheck(
            p.client,
            self.show(room),
            dataset,
            home=p.home,
            key_column=key_column,
            columns=columns,
            data=data,
        )

    def join(
        self,
        room: str,
        dataset: str,
        *,
        key_column: str = "id",
        columns: Mapping[str, Literal["any", "numeric"]] | None = None,
        data: Path | Source | None = None,
    ) -> room_flows.VerifiedRoom:
        """Pre-check ``dataset`` locally, then join ``room`` with the report."""
        verified = self.show(room)
        report = room_flows.precheck(
            self._party.client,
            verified,
            dataset,
            home=self._party.home,
            key_column=key_column,
            columns=columns,
            data=data,
        )
        return room_flows.join(self._party.client, verified, report)

    def consent(self, room: str) -> room_flows.VerifiedRoom:
        p = self._party
        return room_flows.consent(p.client, p.identity, room, now=p.now(), home=p.home)

    def withdraw_consent(self, room: str, *, reason: str = "") -> room_flows.VerifiedRoom:
        p = self._party
        return room_flows.consent(
            p.client,
            p.identity,
            room,
            decision="withdraw",
            reason=reason,
            now=p.now(),
            home=p.home,
        )

    def run(
        self, room: str, computation: str, datasets: Sequence[str], params: Mapping[str, Any]
    ) -> RequestView:
        p = self._party
        return room_flows.run(
            p.client,
            p.identity,
            room,
            computation,
            datasets,
            params,
            now=p.now(),
            home=p.home,
            registry=p._registry,
        )

    # --- runs as no-trust protocols (sealroom.client.room_protocols) -------------------

    def request_protocol(
        self, room: str, protocol: str, datasets: Sequence[str], params: Mapping[str, Any]
    ) -> RequestView:
        """As the host: request a run of ``protocol`` (psi, pjc, he, secagg) on ``datasets``."""
        from sealroom.client import room_protocols

        p = self._party
        return room_protocols.request_run(
            p.client, p.identity, room, protocol, datasets, params, now=p.now(), home=p.home
        )

    def approve_protocol(self, request: str) -> RequestView:
        """As a data owner: approve, by hand, your inputs of a protocol run (checked first)."""
        from sealroom.client import room_protocols

        p = self._party
        return room_protocols.approve_run(p.client, p.identity, request, home=p.home, now=p.now())

    def run_protocol(
        self,
        request: str,
        *,
        key_column: str | None = None,
        value_column: str | None = None,
        features: Sequence[str] = (),
        label: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> ProtocolRun:
        """Take part in an approved protocol run with your attested data (the host starts
        it, the others join; see :class:`~sealroom.client.room_protocols.RunData`)."""
        from sealroom.client import room_protocols

        p = self._party
        data = room_protocols.RunData(
            key_column=key_column, value_column=value_column, features=tuple(features), label=label
        )
        return room_protocols.run(
            p.client, p.identity, request, data, home=p.home, now=p.now(), timeout=timeout
        )

    def approve_run(
        self,
        room: str,
        request: str,
        *,
        org: str,
        decision: Literal["approve", "reject"] = "approve",
        reason: str = "",
    ) -> RoomView:
        """As a person of ``org``: approve (or reject) one run."""
        p = self._party
        return room_flows.approve_run(
            p.client,
            p.identity,
            room,
            request,
            org=org,
            decision=decision,
            reason=reason,
            now=p.now(),
        )

    def add_member(
        self,
        member: str,
        role: Literal["admin", "approver", "analyst", "auditor"],
        *,
        active: bool = True,
    ) -> OrgMemberView:
        """As an organisation: name a person (a party with its own key) and its role."""
        p = self._party
        return room_flows.add_org_member(
            p.client, p.identity, member, role, active=active, now=p.now()
        )

    def summary(self, room: str) -> PolicySummary:
        """The room's one-page policy summary (render it with ``sealroom.audit.render``):
        drawn from the room's signed snapshot, checked here; its digest is what
        :meth:`consent` signs."""
        from sealroom.client.audit import room_summary

        return room_summary(self._party.client, room)

    def pack(
        self,
        room: str,
        out: Path,
        *,
        valid_for: int,
        audience: str | None = None,
        purpose: str = "room audit disclosure",
    ) -> AuditPack:
        """Issue an auditor pack of the room to the new directory ``out``: its snapshot,
        every completed run's bundle and deletions, its consents and approvals (with log
        proofs), signed by this party and valid for ``valid_for`` seconds."""
        from sealroom.client.audit import issue_room_pack

        p = self._party
        return issue_room_pack(
            p.client,
            p.identity,
            room,
            out,
            now=p.now(),
            valid_for=valid_for,
            audience=audience,
            purpose=purpose,
        )
