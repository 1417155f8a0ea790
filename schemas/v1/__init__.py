"""Version 1 of the tierstream contracts (SPEC §2 and §5)."""
