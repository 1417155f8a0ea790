"""scorer: incremental RFM state and tiering.

Built so far: the pure core (rfm.py: exact windowed state; facts.py: events to facts;
rules.py: CEL rulesets). Not yet: the consumer loop, storage, outbox, API; until then its
process serves only /healthz, /readyz (not ready) and /metrics.
"""
