"""What an objective returns, and what every objective shares."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from torch import Tensor, nn

from hierot._utils import identity
from hierot.components import Cost, Divergence, LayerOutputs, Penalty
from hierot.model import Hierarchy
from hierot.precision import float32_region, to_float32


@dataclass
class Terms:
    """Every term of an objective, before and after its weight, and their weighted sum.

    Term names: ``rec_x`` and ``rec_z{n}`` for the reconstruction costs c_n, ``match_z{N}`` for the
    divergence on the matched latent, ``pen_{name}`` for penalties.
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


class Objective(nn.Module):
    """Shared parts: the model, per-layer costs, top divergence, penalties and weights.

    Parameters
    ----------
    model:
        The hierarchy.
    costs:
        ``costs[n]`` is c_n on z_n (z_0 = x), n = 0..N-1.
    divergence:
        D between encoded samples of the matched latent and samples of its prior.
    penalties:
        Named penalties, each with its own per-layer weights.
    reconstruction_weights, match_weight:
        prod_{i<=n} lambda_i for each cost term, and the weight of the divergence.
    gather:
        Applied to the encoded samples before the divergence (the identity on one process; the
        all-gather of the global batch under data parallelism).
    prior_samples:
        How many prior samples to draw for the divergence (default: as many as encoded samples).
    """

    def __init__(
        self,
        model: Hierarchy,
        costs: Sequence[Cost],
        divergence: Divergence,
        penalties: dict[str, Penalty],
        reconstruction_weights: Sequence[float],
        match_weight: float,
        gather: Callable[[Tensor], Tensor] = identity,
        prior_samples: int | None = None,
    ):
        super().__init__()
        self.model = model
        self.costs = list(costs)
        self.divergence = divergence
        self.penalties = dict(penalties)
        self.reconstruction_weights = list(reconstruction_weights)
        self.match_weight = match_weight
        self.gather = gather
        self.prior_samples = prior_samples

    def _add_penalties(self, terms: Terms) -> None:
        for name, penalty in self.penalties.items():
            per_layer = to_float32(penalty(terms.outputs))
            weights = per_layer.new_tensor(penalty.weights)
            terms.unweighted[f"pen_{name}"] = per_layer.sum()
            terms.weighted[f"pen_{name}"] = (weights * per_layer).sum()

    def _match(self, terms: Terms, name: str, encoded: Tensor, prior: Callable[[int], Tensor]) -> None:
        encoded = self.gather(encoded)
        drawn = prior(self.prior_samples or encoded.shape[0])
        # in float32 under mixed precision (hierot.precision): kernel sums and log-sum-exps
        encoded, drawn = to_float32(encoded), to_float32(drawn)
        if drawn.dtype != encoded.dtype:  # a prior drawn under autocast (the implicit prior)
            drawn = drawn.to(encoded.dtype)
        with float32_region(encoded.device.type):
            terms.add(name, self.divergence(encoded, drawn), self.match_weight)

    def forward(self, x: Tensor) -> Terms:  # pragma: no cover - abstract
        raise NotImplementedError
