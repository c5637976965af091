"""Reconnect delays: short at first (an agent restart should show quickly), capped so a
dead node is retried every few seconds, with jitter so two consoles do not sync up."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial_s: float = 0.5
    maximum_s: float = 5.0
    factor: float = 2.0
    jitter: float = 0.2  # +-20 %
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        base = min(self.maximum_s, self.initial_s * self.factor**self.attempt)
        self.attempt += 1
        return base * (1.0 + self.rng.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self.attempt = 0
