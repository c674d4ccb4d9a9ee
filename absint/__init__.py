"""absint: memory-bounded abstract interpretation of neural networks."""

from importlib.metadata import PackageNotFoundError, version as _version

from . import errors
from .analysis import Analysis, analyze
from .box import Box
from .errors import (AbsintError, DiskSpaceError, MemoryBudgetError, ModelFormatError, ShapeError, StorageError,
                     UnsupportedOperatorError, VnnlibError, VnnlibSyntaxError)
from .network import Network
from .onnx_import import load_onnx
from .planner import Plan, plan
from .verify import Verdict, verify
from .spec import LinearConstraints, Region, Spec
from .vnnlib import load_vnnlib, parse_vnnlib

try:
    __version__ = _version("absint")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["Analysis", "analyze", "Box", "Network", "load_onnx", "errors", "AbsintError", "MemoryBudgetError", "ModelFormatError",
           "ShapeError", "UnsupportedOperatorError", "DiskSpaceError", "StorageError", "Plan", "plan", "Verdict", "verify", "VnnlibError", "VnnlibSyntaxError", "__version__",
           "load_vnnlib", "parse_vnnlib", "Spec", "Region", "LinearConstraints"]
