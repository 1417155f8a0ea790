"""The scorer's time and rulesets: each customer's partition and due day, each partition's
clock and what it has applied, and the rulesets (the active one is the last activated).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE customers
            ADD COLUMN partition int  NOT NULL DEFAULT 0,
            ADD COLUMN due_day   int  NOT NULL DEFAULT 0,
            ADD COLUMN change_id text,
            -- main-window figures at the last evaluation, for the population thresholds
            ADD COLUMN frequency         int    NOT NULL DEFAULT 0,
            ADD COLUMN monetary          bigint NOT NULL DEFAULT 0,
            ADD COLUMN last_purchase_day int
    """)
    op.execute("CREATE INDEX customers_due ON customers (partition, due_day)")
    # changes of one customer may share an instant (a fixed or event clock): keep their order
    op.execute("ALTER TABLE tier_history ADD COLUMN seq bigserial")
    op.execute("CREATE INDEX customers_by_partition ON customers (partition, customer_id)")
    op.execute("""
        CREATE TABLE scorer_partitions (
            topic           text        NOT NULL,
            partition       int         NOT NULL,
            clock           timestamptz,
            swept_day       int,
            applied         text,
            last_event_time timestamptz,
            processed_at    timestamptz,
            PRIMARY KEY (topic, partition)
        )
    """)
    op.execute("""
        CREATE TABLE rulesets (
            version      text        PRIMARY KEY,
            body         text        NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            activated_at timestamptz
        )
    """)
    op.execute("""
        CREATE TABLE population_thresholds (
            id           int         PRIMARY KEY CHECK (id = 1),
            recency_days int         NOT NULL,
            frequency    int         NOT NULL,
            monetary     bigint      NOT NULL,
            computed_at  timestamptz NOT NULL
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE population_thresholds")
    op.execute("DROP TABLE rulesets")
    op.execute("DROP TABLE scorer_partitions")
    op.execute("DROP INDEX customers_by_partition")
    op.execute("ALTER TABLE tier_history DROP COLUMN seq")
    op.execute("DROP INDEX customers_due")
    op.execute(
        "ALTER TABLE customers DROP COLUMN last_purchase_day, DROP COLUMN monetary, "
        "DROP COLUMN frequency, DROP COLUMN change_id, DROP COLUMN due_day, DROP COLUMN partition"
    )
