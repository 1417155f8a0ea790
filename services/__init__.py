"""The product: the three services (ingest, scorer, notifier), the domain-free kits they build
on (effectively_once, db, web), and what they share (shared_settings, clock, logs,
event_codec, topology, rejections, loop_metrics, migrations); `cli` and `demo` for operators.
"""
