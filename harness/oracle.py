"""The batch oracle: a customer's features recomputed from the whole history, as SPEC §4
reads, for the incremental state and the workloads' expected tiers to be checked against."""

from services.scorer.core.state import Fact, Features, Windows

WINDOWS = Windows()


def oracle(facts: list[Fact], today: int, windows: Windows = WINDOWS) -> Features:
    """SPEC §4 read literally: an event on day d is inside a W-day window at t when
    t - W < d <= t."""

    def inside(fact: Fact, width: int) -> bool:
        return today - width < fact.day <= today

    purchases = [f for f in facts if f.kind == "purchase" and f.day <= today]
    money = [f for f in facts if f.kind in ("purchase", "refund")]

    def monetary(width: int) -> int:
        return sum(
            f.amount if f.kind == "purchase" else -f.amount for f in money if inside(f, width)
        )

    return Features(
        day=today,
        recency_days=today - max(f.day for f in purchases) if purchases else None,
        frequency=sum(1 for f in purchases if inside(f, windows.main)),
        monetary=monetary(windows.main),
        frequency_90d=sum(1 for f in purchases if inside(f, windows.short)),
        monetary_90d=monetary(windows.short),
        interactions_30d=sum(
            1 for f in facts if f.kind == "interaction" and inside(f, windows.interactions)
        ),
        tenure_days=today - min(f.day for f in facts),
    )
