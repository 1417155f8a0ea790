"""The customers due, indexed in the order the day-boundary sweep reads them (issue 16):
`customers_due` on (partition, due_day, customer_id) instead of (partition, due_day). The
sweep's pages follow the index, by due day then id, so a page reads its own rows and no
more; ordered by id alone, every page read and sorted all the partition's customers still
due (at 1,000,000 customers, all due, the sweep did ~8 times the work of one pass). The
index holds the id too: about 20 bytes more per customer.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DROP INDEX customers_due")
    op.execute("CREATE INDEX customers_due ON customers (partition, due_day, customer_id)")


def downgrade() -> None:
    op.execute("DROP INDEX customers_due")
    op.execute("CREATE INDEX customers_due ON customers (partition, due_day)")
