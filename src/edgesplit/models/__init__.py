"""Model zoo and user-model loading: ``build(name)`` returns a model and its default input."""

from edgesplit.models.zoo import (
    SMALL_INPUT_SHAPES,
    ZOO,
    ModelSpec,
    build,
    input_shape_from_text,
    load_weights,
    resolve,
)

__all__ = [
    "SMALL_INPUT_SHAPES",
    "ZOO",
    "ModelSpec",
    "build",
    "input_shape_from_text",
    "load_weights",
    "resolve",
]
