"""A transaction's tier changes numbered in their partitions: each takes the partition's next
number (`PartitionState.history_seq`, saved with the batch, so that numbers follow commit
order: only the holder of a partition's claim writes its changes), goes into the history
with it, and its records are kept for the relay to publish from memory once the
transaction has committed (services/scorer/history_relay.py)."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.effectively_once.record import Record
from services.scorer.store.control import PartitionState


@dataclass(frozen=True, slots=True)
class Numbered:
    seq: int
    changed: Record  # on the tier-changes topic
    latest: Record  # on the compacted customer-tiers topic


@dataclass(frozen=True, slots=True)
class Run:
    """A partition's changes of one transaction: numbered `base` + 1 onwards."""

    base: int
    changes: list[Numbered]


@dataclass
class Numbering:
    parts: Mapping[int, PartitionState]
    runs: dict[int, Run] = field(default_factory=dict)

    def next(self, partition: int, changed: Record, latest: Record) -> int:
        """The change's number in its partition (the partition must be in the batch)."""
        part = self.parts[partition]
        run = self.runs.get(partition)
        if run is None:
            run = self.runs[partition] = Run(part.history_seq, [])
        part.history_seq += 1
        run.changes.append(Numbered(part.history_seq, changed, latest))
        return part.history_seq
