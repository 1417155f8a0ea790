"""Consumer offsets with a claim epoch, stored beside the state they produced.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE consumer_offsets (
            consumer    text        NOT NULL,
            topic       text        NOT NULL,
            partition   integer     NOT NULL CHECK (partition >= 0),
            epoch       bigint      NOT NULL CHECK (epoch > 0),
            next_offset bigint      CHECK (next_offset >= 0),
            claimed_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer, topic, partition)
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE consumer_offsets")
