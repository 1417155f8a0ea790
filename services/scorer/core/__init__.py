"""The scorer's pure core: plain functions over frozen data, `now` and `today` parameters.

- `state`: the per-customer RFM state at day granularity, exact rolling windows;
- `facts`: a contract event to a fact (local day, money in minor units of the base currency);
- `rules` and `ruleset_format`: rulesets (YAML, CEL conditions) loaded, checked, evaluated;
- `scoring`: one fact or one day in, the new standing and (maybe) one tier change out;
- `snapshot`: what a customer's features are made of, for as long as time alone leaves them;
- `codec`: the state to bytes and back; `config`: the core's configuration.

Nothing here imports SQLAlchemy, aiokafka, asyncpg, FastAPI, settings or logging (an
import-linter contract in pyproject.toml holds it).
"""
