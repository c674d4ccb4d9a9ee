"""ReLU activation patterns: extraction, a pattern database, and abstract patterns over input boxes.

The pattern of a ReLU node on input x is the bit vector ``p_j = [z_j(x) > 0]`` of its
pre-activations z. A trained network uses few distinct patterns, so the normalised Hamming
distance to the nearest pattern seen in training (for the predicted class) measures how
familiar an input is (Cheng, Nührenberg, Ruess, "Runtime monitoring neuron activation
patterns", DATE 2019). Patterns are bit-packed into uint64 words (``kernels.patterns``).

An abstract pattern labels each neuron over a whole input box from sound pre-activation
bounds [l, u] (``absint.analyze``): stable-active (l > 0), stable-inactive (u <= 0) or
unstable. Every concrete pattern in the box agrees with the stable labels; when few neurons
are unstable, the 2^k completions can be checked against the database.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from kernels.patterns import hamming_nearest, hamming_nearest_grouped, n_words, pack_positive, popcount_rows

from .network import NETWORK_INPUT, Network, ReLU

__all__ = ["relu_nodes", "pack", "extract_patterns", "LayerDB", "PatternDB", "AbstractPattern", "abstract_patterns",
           "Coverage", "CoverageStatus", "coverage", "ENUMERATION_CAP", "certain_class"]

#: largest number of candidate patterns ``coverage`` enumerates (2^16 completions of unstable neurons)
ENUMERATION_CAP = 1 << 16
#: rows per forward pass in ``extract_patterns`` (bounds the memory of the activations)
BATCH_ROWS = 4096


def relu_nodes(net: Network) -> list[int]:
    """Indices of the ReLU nodes of ``net``, in order."""
    return [k for k, node in enumerate(net.nodes) if isinstance(node.layer, ReLU)]


def pack(values: np.ndarray) -> np.ndarray:
    """Bit-packed pattern ``[v > 0]`` of a batch of (pre- or post-)activations (n, ...) -> uint64 (n, words).

    Post-activations give the same bits as pre-activations: relu(z) > 0 iff z > 0.
    """
    values = np.asarray(values, dtype=np.float64)
    v = np.ascontiguousarray(values.reshape(len(values), int(np.prod(values.shape[1:], dtype=np.int64))))
    return pack_positive(v, np.zeros((v.shape[0], n_words(v.shape[1])), dtype=np.uint64))


def extract_patterns(net: Network, x, batch_rows: int = BATCH_ROWS) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Patterns of every ReLU node (name -> uint64 (n, words)) and the outputs (n, n_out) of a batch.

    Bits come from the ReLU's input node of one forward pass (``Network.activations``), in blocks of
    ``batch_rows`` inputs.
    """
    x = net._as_batch(x)
    relus = relu_nodes(net)
    parts: dict[str, list[np.ndarray]] = {net.nodes[k].name: [] for k in relus}
    outputs = []
    for start in range(0, max(len(x), 1), batch_rows):
        chunk = x[start:start + batch_rows]
        values = net.activations(chunk)
        for k in relus:
            src = net.nodes[k].inputs[0]
            pre = chunk if src == NETWORK_INPUT else values[src]
            parts[net.nodes[k].name].append(pack(pre))
        outputs.append(values[-1].reshape(len(chunk), net.output_size))
    return {name: np.concatenate(p) for name, p in parts.items()}, np.concatenate(outputs)


# ------------------------------------------------------------------------------------------ database
@dataclass(frozen=True, eq=False)
class LayerDB:
    """Distinct patterns of one layer per class: rows of ``patterns`` sorted by class, class c owning
    rows ``class_ptr[c]:class_ptr[c + 1]``, each seen ``counts`` times in the fitting data."""

    name: str
    n_bits: int
    patterns: np.ndarray      # (u, words) uint64
    counts: np.ndarray        # (u,) int64
    class_ptr: np.ndarray     # (n_classes + 1,) int64

    def __post_init__(self):
        # word-major copy (words, u) for the search kernels: one contiguous vector per word
        object.__setattr__(self, "_by_word", np.ascontiguousarray(np.asarray(self.patterns, np.uint64).T))

    @property
    def n_classes(self) -> int:
        return len(self.class_ptr) - 1

    @property
    def n_unique(self) -> int:
        """Distinct patterns over all classes."""
        return len(np.unique(self.patterns, axis=0)) if len(self.patterns) else 0

    def per_class(self) -> np.ndarray:
        """Distinct patterns of each class (n_classes,)."""
        return np.diff(self.class_ptr)

    def nearest(self, P: np.ndarray, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Hamming distance of each row of P to the nearest stored pattern (of its class when ``classes``
        is given; over every class otherwise) and that row's index; -1, -1 when there is none."""
        P = np.ascontiguousarray(P, dtype=np.uint64)
        dist, idx = np.zeros(len(P), np.int64), np.zeros(len(P), np.int64)
        if len(P) and P.shape[1] != self._by_word.shape[0]:
            raise ValueError(f"layer {self.name!r}: patterns of {P.shape[1]} words, the database holds "
                             f"{self._by_word.shape[0]}")
        if classes is None:
            return hamming_nearest(P, self._by_word, dist, idx)
        classes = np.ascontiguousarray(classes, dtype=np.int64)
        return hamming_nearest_grouped(P, classes, self._by_word, self.class_ptr, dist, idx)

    def distance(self, P: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
        """Normalised Hamming distance d / n_bits to the nearest known pattern; 1.0 when none is known."""
        dist, _ = self.nearest(P, classes)
        out = dist.astype(np.float64) / max(self.n_bits, 1)
        out[dist < 0] = 1.0
        return out

    def contains(self, P: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
        """Whether each row of P is a stored pattern (of its class, when given)."""
        return self.nearest(P, classes)[0] == 0


def _layer_db(name: str, n_bits: int, P: np.ndarray, classes: np.ndarray, n_classes: int) -> LayerDB:
    keyed = np.concatenate([classes.astype(np.uint64)[:, None], P], axis=1)
    if len(keyed):
        rows, counts = np.unique(keyed, axis=0, return_counts=True)   # lexicographic: by class first
    else:
        rows, counts = keyed, np.zeros(0, np.int64)
    ptr = np.searchsorted(rows[:, 0].astype(np.int64), np.arange(n_classes + 1), side="left").astype(np.int64)
    return LayerDB(name, int(n_bits), np.ascontiguousarray(rows[:, 1:]), counts.astype(np.int64), ptr)


@dataclass(frozen=True, eq=False)
class PatternDB:
    """Known patterns per ReLU layer and predicted class, fitted on training data.

    ``score`` = normalised Hamming distance to the nearest known pattern of the predicted class,
    per layer, and combined as total distance over total bits.
    """

    layers: dict[str, LayerDB]
    n_samples: int

    @classmethod
    def fit(cls, patterns: Mapping[str, np.ndarray], n_bits: Mapping[str, int], predictions: np.ndarray,
            n_classes: int | None = None) -> "PatternDB":
        """Build from packed patterns (name -> (n, words)), neurons per layer and predicted classes (n,)."""
        predictions = np.asarray(predictions, dtype=np.int64)
        if len(predictions) and predictions.min() < 0:
            raise ValueError("predicted classes must be >= 0")
        n_classes = int(n_classes if n_classes is not None else (predictions.max() + 1 if len(predictions) else 0))
        layers = {name: _layer_db(name, n_bits[name], np.asarray(P, np.uint64), predictions, n_classes)
                  for name, P in patterns.items()}
        return cls(layers, len(predictions))

    @classmethod
    def from_network(cls, net: Network, x, n_classes: int | None = None) -> "PatternDB":
        """Fit on the patterns of ``net`` on inputs ``x`` keyed by ``net``'s predicted classes."""
        patterns, outputs = extract_patterns(net, x)
        n_bits = {net.nodes[k].name: net.nodes[k].size for k in relu_nodes(net)}
        return cls.fit(patterns, n_bits, np.argmax(outputs, axis=1), n_classes or outputs.shape[1])

    def score(self, patterns: Mapping[str, np.ndarray], predictions: np.ndarray) -> dict[str, np.ndarray]:
        """Per layer (name -> (n,)) and ``"combined"``: normalised Hamming distance to the nearest known
        pattern of each input's predicted class (1.0 where the class has none)."""
        predictions = np.asarray(predictions, dtype=np.int64)
        out: dict[str, np.ndarray] = {}
        total = np.zeros(len(predictions))
        bits = 0
        for name, db in self.layers.items():
            out[name] = db.distance(patterns[name], predictions)
            total += out[name] * db.n_bits
            bits += db.n_bits
        out["combined"] = total / max(bits, 1)
        return out

    def summary(self) -> list[list[object]]:
        """Rows (layer, neurons, samples, distinct patterns, distinct (class, pattern) pairs, largest class share)."""
        rows = []
        for name, db in self.layers.items():
            top = db.counts.max() / max(self.n_samples, 1) if len(db.counts) else 0.0
            rows.append([name, db.n_bits, self.n_samples, db.n_unique, len(db.patterns), top])
        return rows


# ---------------------------------------------------------------------------------- abstract patterns
class CoverageStatus(enum.Enum):
    """Outcome of checking an abstract pattern against a database."""

    COVERED = "covered"              # every completion of the unstable neurons is a known pattern
    NOT_COVERED = "not covered"      # some completion is unknown (it may or may not be reachable)
    TOO_MANY = "too many"            # more unstable neurons than the enumeration cap allows


@dataclass(frozen=True, eq=False)
class AbstractPattern:
    """Per-neuron state of one ReLU layer over an input box: ``active`` (l > 0) and ``unstable``
    (l <= 0 < u) bit-packed; the remaining neurons are stable-inactive (u <= 0)."""

    name: str
    n_bits: int
    active: np.ndarray     # (words,) uint64
    unstable: np.ndarray   # (words,) uint64

    @classmethod
    def from_bounds(cls, name: str, lower: np.ndarray, upper: np.ndarray) -> "AbstractPattern":
        lower, upper = np.ravel(lower), np.ravel(upper)
        active = pack((lower > 0)[None].astype(np.float64))[0]
        unstable = pack(((lower <= 0) & (upper > 0) | np.isnan(lower) | np.isnan(upper))[None].astype(np.float64))[0]
        return cls(name, lower.size, active, unstable)

    @property
    def n_unstable(self) -> int:
        return int(popcount_rows(self.unstable[None], np.zeros(1, np.int64))[0])

    @property
    def n_active(self) -> int:
        return int(popcount_rows(self.active[None], np.zeros(1, np.int64))[0])

    @property
    def n_inactive(self) -> int:
        return self.n_bits - self.n_active - self.n_unstable

    def consistent(self, P: np.ndarray) -> np.ndarray:
        """Whether each concrete pattern (rows of P) agrees with every stable neuron's label."""
        diff = (np.asarray(P, np.uint64) ^ self.active[None]) & ~self.unstable[None]
        return ~np.any(diff, axis=1)

    def completions(self, cap: int = ENUMERATION_CAP) -> np.ndarray | None:
        """All 2^k patterns that fix the stable neurons and vary the k unstable ones, or None if 2^k > cap."""
        k = self.n_unstable
        if k >= 63 or (1 << k) > cap:
            return None
        bits = np.unpackbits(self.unstable.astype("<u8").view(np.uint8), bitorder="little")[:self.n_bits]
        positions = np.flatnonzero(bits)
        m = np.arange(1 << k, dtype=np.uint64)
        out = np.tile(self.active, (1 << k, 1))
        for t, j in enumerate(positions):
            out[:, j // 64] |= ((m >> np.uint64(t)) & np.uint64(1)) << np.uint64(j % 64)
        return out


def abstract_patterns(net: Network, box, domain: str = "deeppoly", **analyze_kwargs) -> dict[str, AbstractPattern]:
    """Abstract pattern of every ReLU node over ``box`` from ``absint.analyze``'s sound pre-activation bounds."""
    from .analysis import _as_box, analyze

    box = _as_box(net, box)
    res = analyze(net, box, domain=domain, **analyze_kwargs)
    return abstract_patterns_from_bounds(net, box, res.layer_bounds)


def abstract_patterns_from_bounds(net: Network, box, layer_bounds) -> dict[str, AbstractPattern]:
    """As ``abstract_patterns`` from an existing analysis's ``layer_bounds`` (one (lower, upper) per node)."""
    out = {}
    for k in relu_nodes(net):
        src = net.nodes[k].inputs[0]
        lo, hi = (box.lower, box.upper) if src == NETWORK_INPUT else layer_bounds[src]
        out[net.nodes[k].name] = AbstractPattern.from_bounds(net.nodes[k].name, lo, hi)
    return out


def certain_class(lower: np.ndarray, upper: np.ndarray) -> int | None:
    """The class c whose output lower bound exceeds every other output's upper bound, if any."""
    c = int(np.argmax(lower))
    others = np.delete(upper, c)
    return c if others.size == 0 or lower[c] > others.max() else None


@dataclass(frozen=True)
class Coverage:
    """Whether the patterns an input box can produce in one layer are all known to a ``PatternDB``."""

    layer: str
    status: CoverageStatus
    n_unstable: int
    n_candidates: int      # completions enumerated (0 when too many)
    n_missing: int         # completions absent from the database


def coverage(db: PatternDB, abstract: Mapping[str, AbstractPattern], label: int | None = None,
             cap: int = ENUMERATION_CAP) -> dict[str, Coverage]:
    """Per layer: enumerate the completions of the abstract pattern (up to ``cap``) and look each up in
    the database (patterns of class ``label``, or of any class). COVERED is sound: every concrete
    pattern of the box is one of the completions, hence known."""
    out = {}
    for name, ap in abstract.items():
        cand = ap.completions(cap)
        if cand is None:
            out[name] = Coverage(name, CoverageStatus.TOO_MANY, ap.n_unstable, 0, -1)
            continue
        classes = None if label is None else np.full(len(cand), int(label), np.int64)
        missing = int((~db.layers[name].contains(cand, classes)).sum())
        status = CoverageStatus.COVERED if missing == 0 else CoverageStatus.NOT_COVERED
        out[name] = Coverage(name, status, ap.n_unstable, len(cand), missing)
    return out
