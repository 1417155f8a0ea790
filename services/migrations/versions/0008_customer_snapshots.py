"""Each customer's snapshot (services/scorer/core/snapshot.py): the window totals at the day it
was last evaluated and the first day a retained day leaves a window, so the re-tier and the
day-boundary sweep read features without decoding the state. stable_until = 0 (rows from
before this revision) means "no snapshot": those customers are decoded once, then stored
with one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE customers
            ADD COLUMN frequency_short int    NOT NULL DEFAULT 0,
            ADD COLUMN monetary_short  bigint NOT NULL DEFAULT 0,
            ADD COLUMN interactions    int    NOT NULL DEFAULT 0,
            ADD COLUMN first_day       int    NOT NULL DEFAULT 0,
            ADD COLUMN scored_day      int    NOT NULL DEFAULT 0,
            ADD COLUMN stable_until    int    NOT NULL DEFAULT 0
    """)


def downgrade() -> None:
    op.execute(
        "ALTER TABLE customers DROP COLUMN stable_until, DROP COLUMN scored_day, "
        "DROP COLUMN first_day, DROP COLUMN interactions, DROP COLUMN monetary_short, "
        "DROP COLUMN frequency_short"
    )
