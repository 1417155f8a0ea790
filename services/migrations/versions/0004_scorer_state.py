"""The scorer's state: events seen (dedupe), customers (RFM state and tier), tier history.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE scorer_events (
            source  text        NOT NULL,
            id      text        NOT NULL,
            digest  bytea       NOT NULL,
            seen_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, id)
        )
    """)
    op.execute("""
        CREATE TABLE customers (
            customer_id     text        PRIMARY KEY,
            state           bytea       NOT NULL,
            tier            text,
            tier_since      timestamptz,
            ruleset_version text,
            updated_at      timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("CREATE INDEX customers_by_tier ON customers (tier, customer_id)")
    op.execute("""
        CREATE TABLE tier_history (
            change_id   text        PRIMARY KEY,
            customer_id text        NOT NULL,
            changed_at  timestamptz NOT NULL,
            payload     jsonb       NOT NULL
        )
    """)
    op.execute("CREATE INDEX tier_history_by_customer ON tier_history (customer_id, changed_at)")


def downgrade() -> None:
    op.execute("DROP TABLE tier_history")
    op.execute("DROP TABLE customers")
    op.execute("DROP TABLE scorer_events")
