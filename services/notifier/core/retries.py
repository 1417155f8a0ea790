"""When to try a failed delivery again (pure): capped exponential backoff with "equal jitter"
(half the delay fixed, half random), never sooner than the receiver asked (Retry-After)."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 5.0
    cap_s: float = 3600.0
    max_attempts: int = 8

    def delay(self, attempt: int, jitter: float, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based); `jitter` is a
        uniform draw in [0, 1)."""
        full = min(self.cap_s, self.base_s * 2.0 ** (attempt - 1))
        wait = full / 2 + jitter * full / 2
        return max(wait, retry_after or 0.0)

    def exhausted(self, attempt: int, permanent: bool) -> bool:
        return permanent or attempt >= self.max_attempts
