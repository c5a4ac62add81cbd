"""The registries, one per kind of component.

Each is filled by importing its built-in package on first use, then by plug-ins from the
entry-point group named beside it. Register a component in your own code with its options model
(the one way to declare a component's options)::

    from hierot.registry import ComponentOptions, divergences

    class MyDivergenceOptions(ComponentOptions):
        scale: float = 1.0

    @divergences.register("my-divergence", options=MyDivergenceOptions)
    class MyDivergence:
        def __init__(self, options: MyDivergenceOptions): ...
        def __call__(self, z, prior_samples): ...
"""

from hierot._registry import Entry, Registry
from hierot.components import ComponentOptions, NoOptions

networks = Registry("network", builtins="hierot.networks", group="hierot.networks")
costs = Registry("cost", builtins="hierot.costs", group="hierot.costs")
divergences = Registry("divergence", builtins="hierot.divergences", group="hierot.divergences")
penalties = Registry("penalty", builtins="hierot.penalties", group="hierot.penalties")
datasets = Registry("dataset", builtins="hierot.datasets", group="hierot.datasets")
presets = Registry("preset", builtins="hierot.spec.presets", group="hierot.presets")
objectives = Registry("objective", builtins="hierot.objectives", group="hierot.objectives")
callbacks = Registry("callback", builtins="hierot.callbacks", group="hierot.callbacks")
sweeps = Registry("sweep", builtins="hierot.sweeps.presets", group="hierot.sweeps")
features = Registry("feature extractor", builtins="hierot.evaluation.features",
                    group="hierot.features")

ALL: dict[str, Registry] = {
    "networks": networks,
    "costs": costs,
    "divergences": divergences,
    "penalties": penalties,
    "datasets": datasets,
    "presets": presets,
    "objectives": objectives,
    "callbacks": callbacks,
    "sweeps": sweeps,
    "features": features,
}

__all__ = ["ALL", "ComponentOptions", "Entry", "NoOptions", "Registry", *ALL]
