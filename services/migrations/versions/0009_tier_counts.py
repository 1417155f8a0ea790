"""Customers per tier, kept as the tiers change: per (partition, tier), so that the instances,
each writing only the partitions it owns, never wait on each other's counters. The
customers-per-tier gauge and /v1/tiers read these few rows instead of counting the whole
customers table (a scan of every customer, every few seconds, in every instance).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE tier_counts (
            partition int    NOT NULL,
            tier      text   NOT NULL,
            customers bigint NOT NULL,
            PRIMARY KEY (partition, tier)
        )
    """)
    op.execute("""
        INSERT INTO tier_counts (partition, tier, customers)
        SELECT partition, tier, count(*) FROM customers
        WHERE tier IS NOT NULL GROUP BY partition, tier
    """)


def downgrade() -> None:
    op.execute("DROP TABLE tier_counts")
