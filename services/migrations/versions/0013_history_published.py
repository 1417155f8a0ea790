"""Tier changes are published from the history itself, not copied into the outbox: each
change takes the next number of its customer's partition (`tier_history.pseq`, counted in
`scorer_partitions.history_seq` by the batch that holds the partition's claim, so numbers
are in commit order), and `tier_history_published` keeps, per partition, the last number
whose records are on the topics. Rows written before this revision have no number: their
records went through the outbox.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE tier_history ADD COLUMN partition int, ADD COLUMN pseq bigint")
    op.execute(
        "CREATE UNIQUE INDEX tier_history_by_partition ON tier_history (partition, pseq) "
        "WHERE pseq IS NOT NULL"
    )
    op.execute("ALTER TABLE scorer_partitions ADD COLUMN history_seq bigint NOT NULL DEFAULT 0")
    op.execute("""
        CREATE TABLE tier_history_published (
            partition int    PRIMARY KEY,
            seq       bigint NOT NULL
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE tier_history_published")
    op.execute("ALTER TABLE scorer_partitions DROP COLUMN history_seq")
    op.execute("DROP INDEX tier_history_by_partition")
    op.execute("ALTER TABLE tier_history DROP COLUMN partition, DROP COLUMN pseq")
