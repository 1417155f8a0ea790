"""Room on the customers' pages for heap-only updates: most events rewrite a customer's state
and snapshot but none of its indexed columns (tier, partition, due day), and with free space
on the row's page PostgreSQL then writes no index entry for the new version (a HOT update)
instead of one in each of the table's four indexes. Pages written from now on keep 30% free;
existing pages take it as they are rewritten.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE customers SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE customers RESET (fillfactor)")
