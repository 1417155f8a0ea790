"""All of the scorer's SQL: customers and the events seen (`customers`), tiers as a whole
(`tiers`), partitions, rulesets and thresholds (`control`). Repositories take the caller's
session and never commit."""
