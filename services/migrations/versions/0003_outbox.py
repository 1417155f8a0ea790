"""The transactional outbox: records written with the state, published by the relay.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE outbox (
            id            bigserial   PRIMARY KEY,
            topic         text        NOT NULL,
            key           bytea       NOT NULL,
            value         bytea,
            header_names  text[]      NOT NULL,
            header_values bytea[]     NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            published_at  timestamptz,
            CHECK (cardinality(header_names) = cardinality(header_values))
        )
    """)
    op.execute("CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL")


def downgrade() -> None:
    op.execute("DROP TABLE outbox")
