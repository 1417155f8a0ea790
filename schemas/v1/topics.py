"""Kafka topic names of SPEC §5."""

from typing import Final

CUSTOMER_EVENTS: Final = "tierstream.customer-events.v1"
TIER_CHANGES: Final = "tierstream.tier-changes.v1"
CUSTOMER_TIERS: Final = "tierstream.customer-tiers.v1"
DEAD_LETTERS: Final = "tierstream.dead-letters.v1"
