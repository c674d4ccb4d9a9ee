"""Transformers registered per (domain element type, layer type), and what they share.

A transformer is a free function ``fn(element, layer, ctx) -> element``; ``ctx.operands`` holds
every input element (two for Add). Lookup walks the layer's MRO so subclasses inherit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..network import Layer, Node

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Options:
    """Analysis options; travel with the context, never module globals."""

    #: add rigorous float64 rounding-error bounds (see absint.fp)
    sound_fp: bool = True
    #: rows of coefficients back-substituted at once by DeepPoly
    block_size: int = 512
    #: zonotope: intersect each neuron's bounds with interval bounds when tighter
    intersect_interval: bool = True
    #: DeepPoly: back-substitute stable neurons read only by ReLUs too (tighter reported bounds, slower)
    refine_stable: bool = False
    #: zonotope order reduction (opt-in, loosens bounds): when a layer leaves more than this many
    #: symbols, the smallest are folded into the per-neuron box term; None = never
    reduce_symbols: int | None = None
    #: DeepPoly: back-substitute conv neurons on their receptive-field windows (same bounds, less work)
    conv_windows: bool = True


@dataclass
class Context:
    """What a transformer may read besides its element and layer."""

    options: Options
    node: Node
    index: int
    input_shapes: tuple[Shape, ...]
    operands: tuple[Any, ...] = ()
    #: concrete (lower, upper) of every node analysed so far, flat arrays
    bounds: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    #: concrete (lower, upper) of the network input, flat
    input_bounds: tuple[np.ndarray, np.ndarray] | None = None
    #: per operand: True when this node is its last reader (the transformer may modify it in place)
    owns_operand: tuple[bool, ...] = ()
    #: analysis-wide mutable state shared by all nodes (e.g. the global noise-symbol count)
    shared: dict = field(default_factory=dict)
    #: the network being analysed (for transformers that look at a node's consumers)
    network: Any = None
    #: the storage format (storage.StoreFormat) chosen for this node's noise symbols; None = dense
    storage: Any = None
    #: True when no element other than this node's operands is still alive (symbols may be renumbered)
    exclusive: bool = False

    def operand_bounds(self, k: int = 0) -> tuple[np.ndarray, np.ndarray]:
        i = self.node.inputs[k]
        return self.input_bounds if i < 0 else self.bounds[i]


Transformer = Callable[[Any, Layer, Context], Any]


class MissingTransformerError(NotImplementedError):
    """No transformer is registered for this (element, layer) pair."""


class TransformerRegistry:
    """Maps (element type, layer type) to a transformer."""

    def __init__(self) -> None:
        self._table: dict[tuple[type, type], Transformer] = {}

    def register(self, element: type, *layers: type[Layer]) -> Callable[[Transformer], Transformer]:
        def add(fn: Transformer) -> Transformer:
            for layer in layers:
                self._table[(element, layer)] = fn
            return fn
        return add

    def lookup(self, element: type, layer: type[Layer]) -> Transformer:
        for cls in layer.__mro__:
            fn = self._table.get((element, cls))
            if fn is not None:
                return fn
        raise MissingTransformerError(f"the {element.__name__} domain has no transformer for "
                                      f"{layer.__name__} layers")

    def layers_of(self, element: type) -> list[type]:
        return sorted({l for e, l in self._table if e is element}, key=lambda c: c.__name__)


TRANSFORMERS = TransformerRegistry()
