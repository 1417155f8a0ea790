"""Domain-free kit for effectively-once work between Kafka and PostgreSQL.

- `loop`: the careful consumer loop (auto-commit off, one transaction per batch);
- `offsets`: partition positions stored with the state they produced, fenced by claims;
- `outbox` and `relay`: outgoing records as rows in that transaction, published afterwards;
- `record` and `dead_letters`: records as plain data, and a poison record set aside;
- `producer`: acks=all, idempotent, bounded sends; `topics`: creating topics;
- `rounds`: background tasks supervised, and rounds that sleep until woken.

It knows no topic, event type or table of the product other than its own (offsets, outbox):
the services give it their names. It builds on the database kit (services/db).
"""
