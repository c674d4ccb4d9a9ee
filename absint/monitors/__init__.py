"""Runtime monitors of internal layers, their combination, and the monitor benchmark.

``MONITORS`` registers the monitor types (importing this package registers them all):
``msp``, ``energy`` (output baselines), ``mahalanobis``, ``knn``, ``box``, ``hamming`` (one per
hidden ReLU layer). ``Fusion`` combines fitted monitors after normalising them on a validation
split; ``run_bench`` evaluates everything on a ``MonitorCase``.
"""

from .base import MONITORS, Monitor, MonitorRegistry, MonitorType, collect_activations, hidden_layers, output_layer
from .boxes import BoxMonitor, BoxOptions
from .fusion import FUSION_RULES, Fusion, LogisticRule, MaxRule, MeanRule, ZScore
from .hamming import HammingMonitor, HammingOptions
from .knn import KNearest, KNNOptions
from .mahalanobis import Mahalanobis, MahalanobisOptions
from .output import Energy, EnergyOptions, MaxSoftmax, MSPOptions
from .bench import BenchOptions, BenchResult, run_bench  # noqa: E402  (after the registrations)
from .cases import CASES, MonitorCase, Split, csv_case, digits_case

__all__ = ["MONITORS", "Monitor", "MonitorRegistry", "MonitorType", "collect_activations", "hidden_layers",
           "output_layer", "BoxMonitor", "BoxOptions", "FUSION_RULES", "Fusion", "LogisticRule", "MaxRule", "MeanRule",
           "ZScore", "HammingMonitor", "HammingOptions", "KNearest", "KNNOptions", "Mahalanobis", "MahalanobisOptions",
           "Energy", "EnergyOptions", "MaxSoftmax", "MSPOptions", "BenchOptions", "BenchResult", "run_bench", "CASES",
           "MonitorCase", "Split", "csv_case", "digits_case"]
