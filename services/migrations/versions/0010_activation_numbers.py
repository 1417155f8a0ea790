"""Every ruleset activation and every change of the population thresholds gets a number of
its own, so that the standard customers are scored with never has the key of an earlier
one: re-activating a version (v1 -> v2 -> v1 -> v2) or thresholds moving back to earlier
values makes changes with new ids (SPEC §11: every activation is its own cause).

The rulesets activated before this revision are numbered in the order of their latest
activation; the thresholds stored so far are generation 1.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE ruleset_activations")
    op.execute("ALTER TABLE rulesets ADD COLUMN activation bigint UNIQUE")
    op.execute("""
        UPDATE rulesets SET activation = numbered.n
        FROM (SELECT version, row_number() OVER (ORDER BY activated_at, version) AS n
              FROM rulesets WHERE activated_at IS NOT NULL) AS numbered
        WHERE rulesets.version = numbered.version
    """)
    op.execute("""
        SELECT setval('ruleset_activations', (SELECT max(activation) FROM rulesets))
        WHERE EXISTS (SELECT 1 FROM rulesets WHERE activation IS NOT NULL)
    """)
    op.execute("ALTER TABLE population_thresholds ADD COLUMN generation bigint NOT NULL DEFAULT 1")


def downgrade() -> None:
    op.execute("ALTER TABLE population_thresholds DROP COLUMN generation")
    op.execute("ALTER TABLE rulesets DROP COLUMN activation")
    op.execute("DROP SEQUENCE ruleset_activations")
