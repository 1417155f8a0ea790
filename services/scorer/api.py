"""HTTP entry point of the scorer (SPEC §3): customers with the "why", tiers, history, status,
for a configured token (services/scorer/access.py); the ruleset lifecycle for an admin's."""

import base64
import binascii
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import Depends, FastAPI, Query, Request
from prometheus_client import CollectorRegistry
from pydantic import AwareDatetime

from services.scorer import access, lifecycle_api
from services.scorer.answers import CustomerAnswer, CustomerPage, Status
from services.scorer.lifecycle_api import lifecycle_router
from services.scorer.read_side import AsOfOutOfRange, Queries
from services.web import problems
from services.web.health import health_router
from services.web.problems import Problem
from services.web.responses import count_responses
from services.web.tokens import Token

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(
    *,
    registry: CollectorRegistry,
    tokens: Sequence[Token] = (),
    lifespan: Lifespan | None = None,
) -> FastAPI:
    """The queries, the lifecycle and the consumer are put on `app.state` by the lifespan
    (main wires them); `tokens`: who may use the ruleset lifecycle."""
    app = FastAPI(title="tierstream scorer", version="1.0.0", lifespan=lifespan)
    problems.install(app)
    count_responses(app, registry, "scorer")
    app.include_router(
        health_router(registry, {"database": _database(app), "consumer": _assigned(app)})
    )
    read = [Depends(access.reader(tokens))]

    @app.get(
        "/v1/customers/{customer_id}",
        summary="A customer's tier and why",
        responses=problems.responses(401, 404, 422),
        dependencies=read,
    )
    async def customer(
        request: Request,
        customer_id: str,
        as_of: Annotated[AwareDatetime | None, Query(description="RFC 3339, with offset")] = None,
    ) -> CustomerAnswer:
        try:
            found = await _queries(request).customer(customer_id, as_of)
        except AsOfOutOfRange as error:
            raise Problem(422, "as-of-out-of-range", "as_of is out of range", str(error)) from error
        if found is None:
            raise _unknown(customer_id)
        return found

    @app.get(
        "/v1/customers",
        summary="Customers in a tier, a page at a time",
        responses=problems.responses(400, 401),
        dependencies=read,
    )
    async def in_tier(
        request: Request,
        tier: Annotated[str, Query(min_length=1)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> CustomerPage:
        after = _decode_cursor(cursor)
        rows = await _queries(request).in_tier(tier, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return CustomerPage(
            tier=tier,
            customers=[{"customer_id": c, "since": since} for c, since in rows],
            next_cursor=_encode_cursor(rows[-1][0]) if more else None,
        )

    @app.get(
        "/v1/customers/{customer_id}/tier-history",
        summary="Every tier change of a customer, oldest first",
        responses=problems.responses(401, 404),
        dependencies=read,
    )
    async def history(request: Request, customer_id: str) -> dict[str, Any]:
        changes = await _queries(request).history(customer_id)
        if changes is None:
            raise _unknown(customer_id)
        return {"customer_id": customer_id, "changes": changes}

    @app.get(
        "/v1/tiers",
        summary="How many customers are in each tier now",
        responses=problems.responses(401),
        dependencies=read,
    )
    async def tiers(request: Request) -> dict[str, dict[str, int]]:
        return {"tiers": await _queries(request).tier_counts()}

    @app.get(
        "/v1/status",
        summary="Consumer lag per partition, last event time, ruleset, re-tier progress",
        responses=problems.responses(401),
        dependencies=read,
    )
    async def status(request: Request) -> Status:
        consumer: AIOKafkaConsumer = request.app.state.consumer
        topic = _queries(request).topic
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        return await _queries(request).status({tp.partition: end for tp, end in ends.items()})

    app.include_router(lifecycle_router(tokens))
    lifecycle_api.install(app)
    return app


def _queries(request: Request) -> Queries:
    queries: Queries = request.app.state.queries
    return queries


def _unknown(customer_id: str) -> Problem:
    return Problem(404, "unknown-customer", "No such customer", f"no events for {customer_id!r}")


def _encode_cursor(customer_id: str) -> str:
    return base64.urlsafe_b64encode(customer_id.encode()).decode()


def _decode_cursor(cursor: str | None) -> str:
    if cursor is None:
        return ""
    bad = Problem(400, "bad-cursor", "Bad cursor", "cursor is not one this API gave")
    try:
        found = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise bad from error
    if not found or _encode_cursor(found) != cursor:
        raise bad
    return found


def _database(app: FastAPI) -> Callable[[], Any]:
    async def check() -> str | None:
        queries: Queries | None = getattr(app.state, "queries", None)
        if queries is None:
            return "not started"
        return await queries.ping()

    return check


def _assigned(app: FastAPI) -> Callable[[], Any]:
    async def check() -> str | None:
        consumer: AIOKafkaConsumer | None = getattr(app.state, "consumer", None)
        if consumer is None:
            return "not started"
        return None if consumer.assignment() else "no partitions assigned yet"

    return check
