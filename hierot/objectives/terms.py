"""What an objective returns: every term, before and after its weight."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from hierot.components import LayerOutputs


@dataclass
class Terms:
    """Every term of an objective, before and after its weight, and their weighted sum.

    Term names: ``rec_x`` and ``rec_z{n}`` for the reconstruction costs c_n, ``match_z{N}`` for the
    divergence on the matched latent, ``kl_z{n}`` for the KL terms of the VAE objectives,
    ``pen_{name}`` for penalties.
    """

    unweighted: dict[str, Tensor] = field(default_factory=dict)
    weighted: dict[str, Tensor] = field(default_factory=dict)
    outputs: LayerOutputs = field(default_factory=LayerOutputs)

    def add(self, name: str, value: Tensor, weight: float | Tensor) -> None:
        self.unweighted[name] = value
        self.weighted[name] = weight * value

    @property
    def total(self) -> Tensor:
        return sum(self.weighted.values())  # type: ignore[return-value]

    def detached(self) -> dict[str, Tensor]:
        """Every term without its graph: unweighted, ``w_``-prefixed weighted, and ``total``."""
        row = {name: v.detach() for name, v in self.unweighted.items()}
        row.update({f"w_{name}": v.detach() for name, v in self.weighted.items()})
        row["total"] = self.total.detach()
        return row

    def scalars(self) -> dict[str, float]:
        """:meth:`detached` as plain floats, for logging."""
        return {name: float(v) for name, v in self.detached().items()}
