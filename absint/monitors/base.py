"""The monitor protocol, the registry of monitor types, and internal-layer activations of a batch.

A runtime monitor reads the activations of one or more layers of a network on an input and
returns a score: higher means less trustworthy. Every monitor is fitted on data the network
was trained on (activations, true labels, the network's predictions) and scores new inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import numpy as np

from ..network import Network, ReLU

__all__ = ["Monitor", "MonitorType", "MonitorRegistry", "MONITORS", "Activations", "collect_activations",
           "hidden_layers", "output_layer", "BATCH_ROWS"]

#: rows per forward pass when collecting activations
BATCH_ROWS = 4096

Activations = Mapping[str, np.ndarray]   # layer (node) name -> (n, features) float64


@runtime_checkable
class Monitor(Protocol):
    """fit on the fitting split, then score: (n,) float64, higher = less trustworthy."""

    name: str                 # monitor type, e.g. "mahalanobis"
    layers: tuple[str, ...]   # node names it reads

    def fit(self, activations: Activations, labels: np.ndarray, predictions: np.ndarray) -> "Monitor": ...

    def score(self, activations: Activations, predictions: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class MonitorType:
    """A registered monitor: ``build(layer, options)``; ``per_layer`` types get one instance per hidden
    ReLU layer, the others read the network output (logits)."""

    name: str
    cls: Callable[..., Monitor]
    options: type
    per_layer: bool
    summary: str

    def build(self, layer: str, options: Any = None) -> Monitor:
        return self.cls(layer, options if options is not None else self.options())


@dataclass
class MonitorRegistry:
    """Monitor types by name (the CLI and the benchmark look them up here)."""

    types: dict[str, MonitorType] = field(default_factory=dict)

    def register(self, name: str, options: type, per_layer: bool, summary: str):
        def deco(cls):
            if name in self.types:
                raise ValueError(f"monitor type {name!r} registered twice")
            self.types[name] = MonitorType(name, cls, options, per_layer, summary)
            cls.name = name
            return cls
        return deco

    def get(self, name: str) -> MonitorType:
        try:
            return self.types[name]
        except KeyError:
            raise ValueError(f"unknown monitor {name!r}; available: {', '.join(self.types)}") from None

    def __iter__(self):
        return iter(self.types)


MONITORS = MonitorRegistry()


def hidden_layers(net: Network) -> list[str]:
    """Names of the ReLU nodes: the internal layers monitors read (post-activation values)."""
    return [node.name for node in net.nodes if isinstance(node.layer, ReLU)]


def output_layer(net: Network) -> str:
    """Name of the output node (logits)."""
    return net.nodes[-1].name


def collect_activations(net: Network, x, layers: list[str] | None = None,
                        batch_rows: int = BATCH_ROWS) -> dict[str, np.ndarray]:
    """Flattened values (n, features) of the named nodes (default: every ReLU node and the output) for a
    batch, computed in blocks of ``batch_rows`` inputs."""
    x = net._as_batch(x)
    layers = list(layers) if layers is not None else hidden_layers(net) + [output_layer(net)]
    index = {node.name: k for k, node in enumerate(net.nodes)}
    missing = [name for name in layers if name not in index]
    if missing:
        raise ValueError(f"no node named {', '.join(map(repr, missing))}; nodes: {', '.join(index)}")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    for start in range(0, max(len(x), 1), batch_rows):
        chunk = x[start:start + batch_rows]
        values = net.activations(chunk)
        for name in layers:
            node = net.nodes[index[name]]
            parts[name].append(values[index[name]].reshape(len(chunk), node.size))
    return {name: np.concatenate(p) for name, p in parts.items()}
