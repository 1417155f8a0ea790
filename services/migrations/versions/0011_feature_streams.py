"""The declared features' streams (SPEC §10) the deployment tracks, and since which ruleset
activation without a gap: a customer's track started under an earlier activation than its
stream's `since_activation` missed events and is restarted (services/scorer/core/declared.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE feature_streams (
            key text PRIMARY KEY,
            since_activation bigint NOT NULL,
            tracked boolean NOT NULL
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE feature_streams")
