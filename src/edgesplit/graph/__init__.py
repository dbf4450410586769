"""Model graphs: tracing, nodes, tensors and cuts."""

from edgesplit.graph.trace import trace
from edgesplit.graph.types import KINDS, Cut, Granularity, Graph, Node, Tensor

__all__ = ["KINDS", "Cut", "Granularity", "Graph", "Node", "Tensor", "trace"]
