"""The rulesets' lifecycle (SPEC §11): who stored each version, every activation with who
made it and why (`ruleset_activation_log`; the activations made before this revision are
kept with their latest time, by "unknown"), scheduled activations (`ruleset_schedules`, one
pending per version), the audit log (`ruleset_audit`), and how many customers a partition's
re-tier in progress has examined (`scorer_partitions.retier_done`, for its progress). A
schedule fails (state `failed`, with an audit entry naming the problems) when the version is
no longer valid under the deployment's settings at its instant.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE rulesets ADD COLUMN stored_by text NOT NULL DEFAULT 'unknown'")
    op.execute("""
        CREATE TABLE ruleset_activation_log (
            activation bigint      PRIMARY KEY,
            version    text        NOT NULL REFERENCES rulesets (version),
            at         timestamptz NOT NULL,
            actor      text        NOT NULL,
            cause      text        NOT NULL
        )
    """)
    op.execute("""
        INSERT INTO ruleset_activation_log (activation, version, at, actor, cause)
        SELECT activation, version, activated_at, 'unknown', 'activate'
        FROM rulesets WHERE activation IS NOT NULL
    """)
    op.execute("""
        CREATE TABLE ruleset_schedules (
            id         bigserial   PRIMARY KEY,
            version    text        NOT NULL REFERENCES rulesets (version),
            at         timestamptz NOT NULL,
            state      text        NOT NULL DEFAULT 'pending'
                                   CHECK (state IN ('pending', 'done', 'cancelled', 'failed')),
            actor      text        NOT NULL,
            note       text        NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            done_at    timestamptz,
            activation bigint
        )
    """)
    op.execute("""
        CREATE UNIQUE INDEX ruleset_schedules_pending ON ruleset_schedules (version)
        WHERE state = 'pending'
    """)
    op.execute("""
        CREATE TABLE ruleset_audit (
            id      bigserial   PRIMARY KEY,
            at      timestamptz NOT NULL DEFAULT clock_timestamp(),
            actor   text        NOT NULL,
            action  text        NOT NULL,
            version text,
            note    text        NOT NULL DEFAULT '',
            detail  jsonb       NOT NULL DEFAULT '{}'
        )
    """)
    op.execute("CREATE INDEX ruleset_audit_by_version ON ruleset_audit (version, id)")
    op.execute("ALTER TABLE scorer_partitions ADD COLUMN retier_done bigint NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE scorer_partitions DROP COLUMN retier_done")
    op.execute("DROP TABLE ruleset_audit")
    op.execute("DROP TABLE ruleset_schedules")
    op.execute("DROP TABLE ruleset_activation_log")
    op.execute("ALTER TABLE rulesets DROP COLUMN stored_by")
