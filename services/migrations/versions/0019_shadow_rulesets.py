"""A shadow ruleset (SPEC §11): at most one, evaluated beside the active one and emitting
nothing (`ruleset_shadow`); each customer's pair of tiers as last counted, active and
shadow (`shadow_tiers`, keyed like the customers: (customer_id, partition)); the agreement
matrix kept as counters per partition like `tier_counts` (`shadow_counts`), both by run (a
transaction of a stopped run that commits after the stop counts only for that run); and each
partition's pass over its customers (`scorer_partitions.shadow_key`: the shadow, standard
and day its pass is complete for; `shadow_after`: the cursor of a pass under way).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE ruleset_shadow (
            id         int         PRIMARY KEY CHECK (id = 1),
            version    text        NOT NULL REFERENCES rulesets (version),
            run        bigint      NOT NULL,
            started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            actor      text        NOT NULL
        )
    """)
    op.execute("CREATE SEQUENCE shadow_runs")
    op.execute("""
        CREATE TABLE shadow_tiers (
            customer_id text   NOT NULL,
            partition   int    NOT NULL,
            run         bigint NOT NULL,
            active_tier text   NOT NULL,
            shadow_tier text   NOT NULL,
            PRIMARY KEY (customer_id, partition)
        ) WITH (fillfactor = 70)
    """)
    # a few customers of each cell where the two disagree, without reading them all
    op.execute("""
        CREATE INDEX shadow_tiers_disagreeing ON shadow_tiers (run, active_tier, shadow_tier)
        WHERE active_tier <> shadow_tier
    """)
    op.execute("""
        CREATE TABLE shadow_counts (
            run         bigint NOT NULL,
            partition   int    NOT NULL,
            active_tier text   NOT NULL,
            shadow_tier text   NOT NULL,
            customers   bigint NOT NULL,
            PRIMARY KEY (run, partition, active_tier, shadow_tier)
        )
    """)
    op.execute("ALTER TABLE scorer_partitions ADD COLUMN shadow_key text")
    op.execute("ALTER TABLE scorer_partitions ADD COLUMN shadow_after text")


def downgrade() -> None:
    op.execute("ALTER TABLE scorer_partitions DROP COLUMN shadow_after")
    op.execute("ALTER TABLE scorer_partitions DROP COLUMN shadow_key")
    op.execute("DROP TABLE shadow_counts")
    op.execute("DROP TABLE shadow_tiers")
    op.execute("DROP SEQUENCE shadow_runs")
    op.execute("DROP TABLE ruleset_shadow")
