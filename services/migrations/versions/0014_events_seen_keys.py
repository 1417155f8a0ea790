"""The events seen kept as fixed-size keys (issue 16: dedupe storage whose cost per event is
small and stated): `scorer_seen` holds, per event, 16 bytes of SHA-256 over its source's
UTF-8 length (4 bytes, big-endian), source and id, and the first 8 bytes of its content
digest, with the time it was seen under a BRIN index (rows arrive in time order), instead of
`scorer_events`' source, id and 32-byte digest under two B-tree indexes. The events seen so
far are carried over with the same keys the services compute
(services/scorer/store/seen.py). Downgrading keeps the table but cannot give the sources
and ids back: the events seen are forgotten, so a duplicate of an earlier event would count
again.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE scorer_seen (
            key     bytea       PRIMARY KEY,
            digest  bytea       NOT NULL,
            seen_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("""
        INSERT INTO scorer_seen (key, digest, seen_at)
        SELECT substr(sha256(int4send(octet_length(convert_to(source, 'UTF8')))
                             || convert_to(source, 'UTF8') || convert_to(id, 'UTF8')), 1, 16),
               substr(digest, 1, 8), seen_at
        FROM scorer_events ORDER BY seen_at
    """)
    # small ranges, summarized as they fill: the forgetting's scan reads the unsummarized
    # tail, which stays a range or two (32 pages each)
    op.execute(
        "CREATE INDEX scorer_seen_by_age ON scorer_seen USING brin (seen_at) "
        "WITH (pages_per_range = 32, autosummarize = on)"
    )
    op.execute("DROP TABLE scorer_events")


def downgrade() -> None:
    op.execute("""
        CREATE TABLE scorer_events (
            source  text        NOT NULL,
            id      text        NOT NULL,
            digest  bytea       NOT NULL,
            seen_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, id)
        )
    """)
    op.execute("CREATE INDEX scorer_events_by_age ON scorer_events (seen_at)")
    op.execute("DROP TABLE scorer_seen")
