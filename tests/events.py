"""Valid events to start from; tests change one thing at a time."""

import copy
import uuid
from typing import Any


def transaction(
    *,
    customer: str = "C-10023",
    amount: str = "1299.00",
    kind: str = "purchase",
    source: str = "erp/sap-prod",
    time: str = "2026-11-20T10:00:00+08:00",
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or f"SO-{uuid.uuid4().hex[:10]}",
        "source": source,
        "type": "tierstream.transaction",
        "subject": customer,
        "time": time,
        "data": {"kind": kind, "amount": amount, "currency": "CNY", "order_id": "SO-88123"},
    }


def interaction(customer: str = "C-10023", source: str = "crm/main") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"IA-{uuid.uuid4().hex[:10]}",
        "source": source,
        "type": "tierstream.interaction",
        "subject": customer,
        "time": "2026-11-20T11:30:00Z",
        "data": {"channel": "call", "action": "quarterly review"},
    }


def customer(customer_id: str = "C-10023", source: str = "crm/main") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"CU-{uuid.uuid4().hex[:10]}",
        "source": source,
        "type": "tierstream.customer",
        "subject": customer_id,
        "time": "2026-11-01T09:00:00+08:00",
        "data": {
            "name": "华东精密",
            "owner_id": "p-li",
            "team": "east",
            "attributes": {"industry": "manufacturing", "size": 1200, "key_account": True},
        },
    }


def changed(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy with one field set (dotted path); `...` as value deletes it."""
    result = copy.deepcopy(event)
    *parents, last = path.split(".")
    target = result
    for part in parents:
        target = target[part]
    if value is ...:
        target.pop(last, None)
    else:
        target[last] = value
    return result
