"""Error classes of absint: each names the culprit (operator, file position, layer, sizes)."""

from __future__ import annotations

from collections.abc import Iterable


class AbsintError(Exception):
    """Base class of every error absint raises on purpose."""


class ModelFormatError(AbsintError):
    """A network file that cannot be read: missing, truncated, corrupt or not ONNX."""


class UnsupportedOperatorError(AbsintError):
    """An ONNX operator (or an attribute of it) that absint cannot represent."""

    def __init__(self, op_type: str, node_name: str, supported: Iterable[str], detail: str = ""):
        self.op_type = op_type
        self.node_name = node_name
        self.supported = sorted(supported)
        what = f"unsupported operator {op_type!r} (node {node_name!r})"
        if detail:
            what += f": {detail}"
        super().__init__(f"{what}; supported operators: {', '.join(self.supported)}")


class ShapeError(AbsintError):
    """Tensor shapes that do not fit together (layer inputs, property size, input arrays)."""


class VnnlibError(AbsintError):
    """A VNN-LIB property that cannot be used; carries the file position when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None,
                 source: str | None = None):
        self.line = line
        self.column = column
        self.source = source
        where = source or "<vnnlib>"
        if line is not None:
            where += f":{line}:{column}"
        super().__init__(f"{where}: {message}")


class VnnlibSyntaxError(VnnlibError):
    """Malformed VNN-LIB text (parentheses, tokens, unknown variables or commands)."""


class MemoryBudgetError(AbsintError):
    """No storage plan fits the RAM budget."""

    def __init__(self, layer: str, needed: int, given: int):
        self.layer = layer
        self.needed = needed
        self.given = given
        from .tables import format_bytes

        super().__init__(f"memory budget too small at layer {layer!r}: needs {format_bytes(needed)} "
                         f"({needed} bytes), budget is {format_bytes(given)} ({given} bytes)")


class AnalysisTimeout(AbsintError, TimeoutError):
    """An analysis passed the deadline it was given (checked between layers)."""


# storage/ cannot import absint, so its errors live there; they are part of absint's error API
from storage.errors import DiskSpaceError, StorageError  # noqa: E402
