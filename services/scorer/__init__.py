"""scorer: incremental RFM state per customer in PostgreSQL, tiers moved the moment the
numbers or the calendar say so, every change published through the outbox (SPEC §4, §5).

Three rooms:
- `core/`: the pure core (state, facts, rules and their file format, scoring, snapshot,
  codec, configuration): plain functions over frozen data;
- `store/`: all of its SQL (customers and events seen, tiers as a whole, control data, the
  rulesets' lifecycle and shadow);
- the shell: `handler` (the careful loop's handler), `decoding`, `workset`, `entries`,
  `rescoring` (the sweep and the re-tier from storage), `standards` (the ruleset and
  thresholds in force), `publisher`, `preview` (what a ruleset would do), `lifecycle`
  (SPEC §11: store, diff, shadow, schedule, activate, roll back, audit; its API in
  `lifecycle_api` and `lifecycle_answers`), `shadow` (the shadow ruleset's evaluation), the
  API's read side (`read_side`, `answers`, `api`), `metrics`, `settings` and `main`.
"""
