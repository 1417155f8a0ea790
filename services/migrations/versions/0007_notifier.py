"""The notifier's state: customer profiles (its own copy: owner and team), tier changes seen
(dedupe), tasks with their durable escalation timers and escalation steps, and alert
deliveries (the outbox of the delivery worker) with every attempt.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE notifier_profiles (
            customer_id text        PRIMARY KEY,
            name        text,
            owner_id    text,
            team        text,
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("""
        CREATE TABLE notifier_changes (
            change_id   text        PRIMARY KEY,
            customer_id text        NOT NULL,
            seen_at     timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("CREATE INDEX notifier_changes_by_age ON notifier_changes (seen_at)")
    op.execute("""
        CREATE TABLE tasks (
            id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
            change_id          text        NOT NULL,
            rule               text        NOT NULL,
            customer_id        text        NOT NULL,
            customer_name      text,
            title_zh           text        NOT NULL,
            title_en           text        NOT NULL,
            priority           text        NOT NULL
                CHECK (priority IN ('urgent', 'high', 'normal', 'low')),
            status             text        NOT NULL DEFAULT 'open'
                CHECK (status IN ('open', 'acknowledged', 'completed', 'cancelled')),
            assignee           text        NOT NULL,
            open_while         jsonb       NOT NULL,
            due_at             timestamptz,
            ack_sla_seconds    integer,
            escalation_level   integer     NOT NULL DEFAULT 0,
            next_escalation_at timestamptz,
            change             jsonb       NOT NULL,
            created_at         timestamptz NOT NULL,
            acknowledged_at    timestamptz,
            acknowledged_by    text,
            completed_at       timestamptz,
            completed_by       text,
            note               text,
            cancelled_at       timestamptz,
            cancel_reason      text,
            UNIQUE (change_id, rule)
        )
    """)
    op.execute("CREATE INDEX tasks_open_by_customer ON tasks (customer_id) WHERE status = 'open'")
    op.execute("CREATE INDEX tasks_by_assignee ON tasks (assignee, created_at)")
    op.execute(
        "CREATE INDEX tasks_escalation_due ON tasks (next_escalation_at) "
        "WHERE next_escalation_at IS NOT NULL"
    )
    op.execute("""
        CREATE TABLE task_escalations (
            task_id      uuid        NOT NULL REFERENCES tasks (id),
            level        integer     NOT NULL,
            escalated_to text        NOT NULL,
            escalated_at timestamptz NOT NULL,
            PRIMARY KEY (task_id, level)
        )
    """)
    op.execute("""
        CREATE TABLE deliveries (
            id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
            key             text        NOT NULL UNIQUE,
            task_id         uuid        REFERENCES tasks (id),
            purpose         text        NOT NULL,
            recipient       text        NOT NULL,
            channel         text        NOT NULL,
            target          text        NOT NULL,
            language        text        NOT NULL,
            message         jsonb       NOT NULL,
            status          text        NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'delivered', 'failed')),
            attempts        integer     NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL,
            leased_until    timestamptz,
            last_error      text,
            created_at      timestamptz NOT NULL,
            delivered_at    timestamptz
        )
    """)
    op.execute(
        "CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending'"
    )
    op.execute("CREATE INDEX deliveries_by_task ON deliveries (task_id)")
    op.execute("""
        CREATE TABLE delivery_attempts (
            delivery_id uuid        NOT NULL REFERENCES deliveries (id),
            attempt     integer     NOT NULL,
            target      text        NOT NULL,
            started_at  timestamptz NOT NULL,
            finished_at timestamptz,
            outcome     text CHECK (outcome IN ('delivered', 'failed')),
            error       text,
            PRIMARY KEY (delivery_id, attempt)
        )
    """)
    op.execute("CREATE INDEX delivery_attempts_by_target ON delivery_attempts (target, started_at)")


def downgrade() -> None:
    op.execute("DROP TABLE delivery_attempts")
    op.execute("DROP TABLE deliveries")
    op.execute("DROP TABLE task_escalations")
    op.execute("DROP TABLE tasks")
    op.execute("DROP TABLE notifier_changes")
    op.execute("DROP TABLE notifier_profiles")
