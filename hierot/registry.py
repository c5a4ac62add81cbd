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

Every choice a spec or a command makes is one of these registries, each with its own contract
(what the factory is called with and returns, in :mod:`hierot.components` or the module named):

==================== ======================================= ==================================
registry             built-ins                               entry-point group
==================== ======================================= ==================================
``networks``         :mod:`hierot.networks`                  ``hierot.networks``
``costs``            :mod:`hierot.costs`                     ``hierot.costs``
``divergences``      :mod:`hierot.divergences`               ``hierot.divergences``
``penalties``        :mod:`hierot.penalties`                 ``hierot.penalties``
``datasets``         :mod:`hierot.datasets`                  ``hierot.datasets``
``objectives``       :mod:`hierot.objectives`                ``hierot.objectives``
``callbacks``        :mod:`hierot.callbacks`                 ``hierot.callbacks``
``optimizers``       :mod:`hierot.optimizers`                ``hierot.optimizers``
``lr_schedules``     :mod:`hierot.schedules`                 ``hierot.lr_schedules``
``lambda_schedules`` :mod:`hierot.objectives.weights`        ``hierot.lambda_schedules``
``samplers``         :mod:`hierot.samplers`                  ``hierot.samplers``
``presets``          ``hierot/spec/presets/*.yaml``          ``hierot.presets``
``sweeps``           ``hierot/sweeps/presets/*.yaml``        ``hierot.sweeps``
==================== ======================================= ==================================
"""

from hierot._registry import Entry, Registry, choice
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
optimizers = Registry("optimizer", builtins="hierot.optimizers", group="hierot.optimizers")
lr_schedules = Registry("lr schedule", builtins="hierot.schedules", group="hierot.lr_schedules")
lambda_schedules = Registry(
    "lambda schedule", builtins="hierot.objectives.weights", group="hierot.lambda_schedules",
    key="schedule",
)
samplers = Registry("sampler", builtins="hierot.samplers", group="hierot.samplers")
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
    "optimizers": optimizers,
    "lr_schedules": lr_schedules,
    "lambda_schedules": lambda_schedules,
    "samplers": samplers,
    "features": features,
}

__all__ = [
    "ALL",
    "ComponentOptions",
    "Entry",
    "NoOptions",
    "Registry",
    "callbacks",
    "choice",
    "costs",
    "datasets",
    "divergences",
    "features",
    "lambda_schedules",
    "lr_schedules",
    "networks",
    "objectives",
    "optimizers",
    "penalties",
    "presets",
    "samplers",
    "sweeps",
]
