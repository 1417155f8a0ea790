"""Dead letters (SPEC §5): the original record unchanged, the reason in `dlq_*` headers."""

from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

HEADER_PREFIX: Final = "dlq_"

Reason = Literal[
    "undecodable",  # not CloudEvents binary mode / not JSON
    "invalid_event",  # decodes, but breaks the event contract
    "unsupported_type",  # a type this consumer does not know
    "conflicting_duplicate",  # same (source, id) as an applied event, different content
    "unknown_currency",  # an amount in a currency with no configured exchange rate
]


class DeadLetterV1(BaseModel):
    """Why a record could not be processed and where it came from; carried as headers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: Reason
    error: str = Field(max_length=2000, description="What exactly was wrong, for a person.")
    service: str = Field(description="The consumer that gave up on it, e.g. scorer.")
    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    failed_at: AwareDatetime

    def to_headers(self) -> list[tuple[str, bytes]]:
        return [
            (HEADER_PREFIX + name, str(value).encode())
            for name, value in self.model_dump(mode="json").items()
        ]

    @classmethod
    def from_headers(cls, headers: list[tuple[str, bytes]]) -> "DeadLetterV1":
        fields = {
            name.removeprefix(HEADER_PREFIX): value.decode()
            for name, value in headers
            if name.startswith(HEADER_PREFIX)
        }
        return cls.model_validate(fields)
