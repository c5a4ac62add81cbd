"""Random streams of a data-parallel step: each rank's own until the gather, then shared."""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor


class NoiseStreams:
    """The default generators of the CPU (and of the device) during one data-parallel step.

    Outside a step they are the *shared* stream, in the same state on every rank. :meth:`own`
    saves that state and reseeds them from a hash of it and the rank; :meth:`share` puts the
    shared state back; :meth:`end` does too, and advances any generator the step left untouched
    (so the next step's own streams differ).
    """

    def __init__(self, device: torch.device, rank: int):
        self.generators = [torch.default_generator]
        if device.type == "cuda":
            self.generators.append(torch.cuda.default_generators[device.index])
        self.rank = rank
        self._start: list[Tensor] | None = None
        self._shared: list[Tensor] | None = None

    def own(self) -> None:
        states = [g.get_state() for g in self.generators]
        digest = hashlib.blake2b(digest_size=8, person=b"hierot-ddp-rank")
        for state in states:
            digest.update(state.numpy().tobytes())
        digest.update(self.rank.to_bytes(8, "little"))
        seed = int.from_bytes(digest.digest(), "little") & (2**63 - 1)
        for generator in self.generators:
            generator.manual_seed(seed)
        self._start = self._shared = states

    def share(self) -> None:
        if self._shared is not None:
            for generator, state in zip(self.generators, self._shared):
                generator.set_state(state)
            self._shared = None

    def end(self) -> None:
        self.share()
        for generator, state in zip(self.generators, self._start or []):
            if torch.equal(generator.get_state(), state):
                torch.empty((), device=generator.device).uniform_(generator=generator)
        self._start = None
