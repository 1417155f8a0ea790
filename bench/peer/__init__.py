"""The quix-streams peer (issue 16): the scorer's default-ruleset work done the way a Python
stream processor would do it, to compare the scorer's throughput and CPU per event with.

- `app`: the application, run as its own process with its own interpreter (the peer's
  virtualenv, `make bench-peer`: quixstreams caps pydantic below the version the product
  pins, so it cannot share the product's virtualenv). It imports nothing of the project.
- `run`: starts it on a pre-filled topic and measures it (events/s, CPU per event).

Nothing is imported here: the peer's interpreter imports this package to reach `app`.
"""
