"""Outbox headers as one value (msgpack list of [name, value]), so that a batch of records is
inserted by one statement over arrays; tier history payloads as the JSON bytes published
(jsonb parsed every payload on insert, and only the API reads them back); and a re-tier's
resume point per partition; an index to forget old events seen.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM outbox WHERE published_at IS NOT NULL")
    op.execute("ALTER TABLE outbox ADD COLUMN headers bytea NOT NULL DEFAULT '\\x90'")  # []
    op.execute("ALTER TABLE outbox DROP COLUMN header_names, DROP COLUMN header_values")
    op.execute(
        "ALTER TABLE tier_history ALTER COLUMN payload TYPE bytea "
        "USING convert_to(payload::text, 'UTF8')"
    )
    # a re-tier runs in bounded transactions and continues after this customer
    op.execute("ALTER TABLE scorer_partitions ADD COLUMN retier_after text")
    # events seen are forgotten after the dedupe retention
    op.execute("CREATE INDEX scorer_events_by_age ON scorer_events (seen_at)")


def downgrade() -> None:
    op.execute("DROP INDEX scorer_events_by_age")
    op.execute("ALTER TABLE scorer_partitions DROP COLUMN retier_after")
    op.execute(
        "ALTER TABLE tier_history ALTER COLUMN payload TYPE jsonb "
        "USING convert_from(payload, 'UTF8')::jsonb"
    )
    op.execute("DELETE FROM outbox")
    op.execute("ALTER TABLE outbox DROP COLUMN headers")
    op.execute(
        "ALTER TABLE outbox ADD COLUMN header_names text[] NOT NULL DEFAULT '{}', "
        "ADD COLUMN header_values bytea[] NOT NULL DEFAULT '{}'"
    )
