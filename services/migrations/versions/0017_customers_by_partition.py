"""The customers stored by Kafka partition (issue 16): `customers` becomes a table
partitioned by LIST on `partition`, one table for each of the partitions 0-63
(`customers_p0` ... `customers_p63`) and a default one for any later partition
(`customers_rest`), keyed (customer_id, partition).

A partition's re-tier and sweep read its customers page after page; stored in one table,
a partition's rows lay spread over the whole of it (customers arrive in the order of their
first event, from every partition at once), so reading them visited a different page for
nearly every row: measured alone at 300,000 customers, 4.5 us of PostgreSQL CPU a row
read, 1.17 once the partition's rows are a table of their own. The key leads with the id:
a customer is found by id alone in every partition's own key (the read API, which does not
know the partition), and by (id, partition) in one (the scorer, which always does); a
partition's pages follow the same key, so `customers_by_partition` goes (one index fewer
for every new customer). A partition of 64 and above shares `customers_rest`: correct,
with its pages filtered out of the others' rows.

A customer is now looked for in its partition only, so the topic's partition count must
not change under the scorer (it never could without breaking each key's order; before, a
customer's row followed it to its new partition): `consumer_layouts` records the count a
consumer's state is kept for, and a consumer that finds another one stops with an error
that says so (services/effectively_once/offsets.py, `PartitionsChanged`).

The rows are copied in (partition, customer_id) order: the upgrade rewrites the table
(about 1 s per 100,000 customers here, under an exclusive lock: the scorers stopped).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWN_TABLES = 64  # partitions 0..63 get a table of their own

_COLUMNS = """
    customer_id       text        NOT NULL,
    state             bytea       NOT NULL,
    tier              text,
    tier_since        timestamptz,
    ruleset_version   text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    partition         integer     NOT NULL DEFAULT 0,
    due_day           integer     NOT NULL DEFAULT 0,
    change_id         text,
    frequency         integer     NOT NULL DEFAULT 0,
    monetary          bigint      NOT NULL DEFAULT 0,
    last_purchase_day integer,
    frequency_short   integer     NOT NULL DEFAULT 0,
    monetary_short    bigint      NOT NULL DEFAULT 0,
    interactions      integer     NOT NULL DEFAULT 0,
    first_day         integer     NOT NULL DEFAULT 0,
    scored_day        integer     NOT NULL DEFAULT 0,
    stable_until      integer     NOT NULL DEFAULT 0
"""
_NAMES = """customer_id, state, tier, tier_since, ruleset_version, updated_at, partition,
    due_day, change_id, frequency, monetary, last_purchase_day, frequency_short,
    monetary_short, interactions, first_day, scored_day, stable_until"""


def upgrade() -> None:
    op.execute("ALTER TABLE customers RENAME TO customers_flat")
    op.execute(
        f"CREATE TABLE customers ({_COLUMNS}, PRIMARY KEY (customer_id, partition)) "
        "PARTITION BY LIST (partition)"
    )
    for partition in range(OWN_TABLES):
        op.execute(
            f"CREATE TABLE customers_p{partition} PARTITION OF customers "
            f"FOR VALUES IN ({partition}) WITH (fillfactor = 70)"
        )
    op.execute("CREATE TABLE customers_rest PARTITION OF customers DEFAULT WITH (fillfactor = 70)")
    op.execute(
        f"INSERT INTO customers ({_NAMES}) SELECT {_NAMES} FROM customers_flat "  # noqa: S608
        "ORDER BY partition, customer_id"
    )
    op.execute("DROP TABLE customers_flat")
    op.execute("CREATE INDEX customers_by_tier ON customers (tier, customer_id)")
    op.execute("CREATE INDEX customers_due ON customers (partition, due_day, customer_id)")
    op.execute("ANALYZE customers")
    op.execute("""
        CREATE TABLE consumer_layouts (
            consumer   text    NOT NULL,
            topic      text    NOT NULL,
            partitions integer NOT NULL,
            PRIMARY KEY (consumer, topic)
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE consumer_layouts")
    op.execute("ALTER TABLE customers RENAME TO customers_parted")
    op.execute(f"CREATE TABLE customers ({_COLUMNS}) WITH (fillfactor = 70)")
    op.execute(
        f"INSERT INTO customers ({_NAMES}) SELECT {_NAMES} FROM customers_parted "  # noqa: S608
        "ORDER BY customer_id"
    )
    op.execute("DROP TABLE customers_parted")
    op.execute("ALTER TABLE customers ADD PRIMARY KEY (customer_id)")
    op.execute("CREATE INDEX customers_by_tier ON customers (tier, customer_id)")
    op.execute("CREATE INDEX customers_by_partition ON customers (partition, customer_id)")
    op.execute("CREATE INDEX customers_due ON customers (partition, due_day, customer_id)")
