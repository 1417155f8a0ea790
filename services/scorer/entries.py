"""A customer as the work set holds it between loading and saving (services/scorer/workset.py),
and its conversions from and to the stored row."""

from dataclasses import dataclass

from services.scorer.core import codec
from services.scorer.core.config import Scoring
from services.scorer.core.scoring import Standard, Standing, due_beyond, due_from
from services.scorer.core.snapshot import Snapshot, of_state
from services.scorer.core.state import CustomerState, Windows
from services.scorer.rescoring import Place, TierLookup, standing_of
from services.scorer.store.customers import StoredCustomer


@dataclass(slots=True)
class Entry:
    partition: int
    state: CustomerState
    encoded: bytes | None  # the stored bytes while the state is unchanged
    standing: Standing | None
    change_id: str | None
    due: int | None  # None: to be computed (once per batch, not once per event)
    day: int  # the day it was last evaluated at
    dirty: bool
    saved: Place | None  # its row's partition and tier; None: no row yet


def loaded(
    stored: StoredCustomer, windows: Windows, standard: Standard, tiers: TierLookup
) -> Entry:
    if stored.state is None:
        raise ValueError(f"customer {stored.customer_id} was loaded without its state")
    state = codec.decode(stored.state, windows)
    return Entry(
        stored.partition,
        state,
        stored.state,
        standing_of(stored, standard, tiers),
        stored.change_id,
        stored.due_day,
        state.anchor,
        dirty=False,
        saved=(stored.partition, stored.tier),
    )


def due_day(
    state: CustomerState,
    today: int,
    scoring: Scoring,
    standard: Standard,
    *,
    standing: Standing | None,
    snap: Snapshot | None = None,
) -> int:
    """The first day the customer's tier may change with no new event."""
    if snap is None:
        snap = of_state(state, today, scoring.windows)
    today = max(today, state.anchor)
    ruleset = standard.ruleset
    due = due_from(snap, today, ruleset=ruleset, thresholds=standard.thresholds)
    if ruleset.plan.features or ruleset.min_days_in_tier:
        due = due_beyond(due, state, today, ruleset=ruleset, standing=standing, zone=scoring.zone)
    return due


def to_store(
    customer_id: str, entry: Entry, scoring: Scoring, standard: Standard
) -> StoredCustomer:
    encoded = entry.encoded or codec.encode(entry.state)
    entry.encoded = encoded
    snap = of_state(entry.state, entry.day, scoring.windows)
    if entry.due is None:
        entry.due = due_day(
            entry.state, entry.day, scoring, standard, standing=entry.standing, snap=snap
        )
    standing = entry.standing
    return StoredCustomer(
        customer_id,
        encoded,
        None if standing is None else standing.tier.id,
        None if standing is None else standing.since,
        None if standing is None else standing.ruleset_version,
        entry.partition,
        entry.due,
        entry.change_id,
        snap,
    )
