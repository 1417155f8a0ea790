"""All of the notifier's SQL: what the consumers and the escalator write (`notifications`:
profiles, tier changes seen, tasks, timers, new deliveries), tasks as people read and act on
them (`tasks`), and the delivery worker's claims and outcomes (`deliveries`). Repositories
take the caller's session and never commit."""
