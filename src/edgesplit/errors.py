"""The one error hierarchy of edgesplit.

::

    EdgesplitError                  base; the CLI prints str(err) on one line, exit 2
    ├── InputError                  a user-supplied value or file is wrong
    │   ├── UnknownModelError       a model name is not in the zoo and not importable
    │   ├── ShapeError              an input shape cannot be parsed or does not fit
    │   ├── UnitError               a quantity such as "7.2mbit" cannot be parsed
    │   └── ProfileError            a profile file is missing, corrupt or of another version
    ├── TraceError                  neither torch.fx nor torch.export could trace a module
    ├── PartitionError              an assignment of nodes to parts cannot be executed
    ├── InfeasiblePlanError         no plan satisfies the problem's constraints
    ├── SolverError                 an optimisation solver failed (not a time limit)
    ├── NotFittedError              a predictor was used before ``fit``
    └── TransportError              a remote tier could not be reached or answered badly

Every message names the offending field, node, layer or device and says how to fix it,
in the spirit of ``torch.fx.Graph.lint``.
"""

from __future__ import annotations


class EdgesplitError(Exception):
    """Base class of every error edgesplit raises on purpose."""


class InputError(EdgesplitError, ValueError):
    """A user-supplied value or file is invalid."""


class UnknownModelError(InputError):
    """A model name is neither a zoo entry nor an importable ``package.module:callable``."""


class ShapeError(InputError):
    """An input shape is malformed or does not fit the model."""


class UnitError(InputError):
    """A quantity with a unit (bandwidth, time, frequency) cannot be parsed."""


class ProfileError(InputError):
    """A profile file is missing, corrupt, or of an unsupported version."""


class TraceError(EdgesplitError):
    """Neither torch.fx nor torch.export could trace the module."""


class PartitionError(EdgesplitError):
    """An assignment of nodes to parts is not executable."""


class InfeasiblePlanError(EdgesplitError):
    """No plan satisfies the problem's constraints."""


class SolverError(EdgesplitError):
    """An optimisation solver failed or returned an unusable status."""


class NotFittedError(EdgesplitError, AttributeError):
    """A fitted estimator was used before ``fit`` was called."""


class TransportError(EdgesplitError):
    """A remote tier was unreachable or answered with an error."""
