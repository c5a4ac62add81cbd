"""The spec: what a hierarchy is and how to train it, validated whole before anything is built.

============ ======================================================================================
``schema``   the pydantic :class:`Spec` and its sections; its component unions over the registries
``loading``  YAML files and presets, ``--set`` overrides, ``path: message`` errors
``_checks``  what ``train`` would refuse and the spec tells (batch vs data, fp16 on the CPU)
``presets``  the built-in presets, plain YAML files shipped in the package
============ ======================================================================================
"""

from hierot._yaml import parse_yaml
from hierot.objectives.weights import (  # the WAE objectives' options, once top-level fields
    ExplicitWeights,
    PaperMnistWeights,
    PaperSvhnWeights,
    Weights,
)
from hierot.optimizers import OptimizerOptions
from hierot.spec.loading import apply_overrides, dump_spec, load_spec, read_raw, read_text
from hierot.spec.schema import (
    DistributedSpec,
    LayerSpec,
    Spec,
    TrainSpec,
    spec_model,
    validate_spec,
)

__all__ = [
    "DistributedSpec", "ExplicitWeights", "LayerSpec", "OptimizerOptions", "PaperMnistWeights",
    "PaperSvhnWeights", "Spec", "TrainSpec", "Weights", "apply_overrides", "dump_spec",
    "load_spec", "parse_yaml", "read_raw", "read_text", "spec_model", "validate_spec",
]
