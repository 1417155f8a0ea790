"""notifier: tier changes turned into work for people (SPEC §6): tasks for the account
owner, alerts to the manager, escalations up the chain when a task waits past its SLA.

Three rooms:
- `core/`: the pure core (policy, escalation, retries, messages, routing, directory);
- `store/`: all of its SQL (notifications, tasks, deliveries);
- the shell: `handlers` (tier changes and profiles, each in the careful loop), the
  `escalator` and `delivery` workers, `channels` (webhook, Slack, DingTalk, WeCom, email),
  `api`, `metrics`, `settings` and `main`.
"""
