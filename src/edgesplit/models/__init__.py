"""Models and their inputs: the zoo, timm:/hf: names, user callables, example inputs.

``ModelRequest(name, inputs, ...).load()`` returns a module and its example ``(args, kwargs)``;
``build(name)`` is the one-float-input shorthand. Importing this package imports no torch.
"""

from edgesplit.models.inputs import DTYPES, Example, InputSpec, build_example
from edgesplit.models.loader import ModelRequest, check_trusted
from edgesplit.models.zoo import (
    SMALL_INPUT_SHAPES,
    ZOO,
    ModelSpec,
    build,
    input_shape_from_text,
    is_code_name,
    load_weights,
    resolve,
)

__all__ = [
    "DTYPES",
    "SMALL_INPUT_SHAPES",
    "ZOO",
    "Example",
    "InputSpec",
    "ModelRequest",
    "ModelSpec",
    "build",
    "build_example",
    "check_trusted",
    "input_shape_from_text",
    "is_code_name",
    "load_weights",
    "resolve",
]
