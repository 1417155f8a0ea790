"""The standard a partition's re-tier in progress is for (`scorer_partitions.retier_for`):
a re-tier continues after its cursor only under the standard it started with. Before, an
activation landing while a re-tier was under way continued the old cursor under the new
standard, and the customers before it kept the tiers of the one in between. A row without
it (a re-tier in progress during the upgrade) starts its re-tier again from the first
customer: re-tiering a customer twice under one standard moves nothing the second time.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE scorer_partitions ADD COLUMN retier_for text")


def downgrade() -> None:
    op.execute("ALTER TABLE scorer_partitions DROP COLUMN retier_for")
