"""Abstract domains: each module registers its transformers in ``registry.TRANSFORMERS``."""

from .deeppoly import DeepPoly
from .interval import Interval
from .registry import TRANSFORMERS, Context, MissingTransformerError, Options, TransformerRegistry
from .zonotope import Zonotope

#: public domain names -> element types (the only string dispatch: at the API boundary)
DOMAINS: dict[str, type] = {"interval": Interval, "zonotope": Zonotope, "deeppoly": DeepPoly}

__all__ = ["DOMAINS", "DeepPoly", "TRANSFORMERS", "Context", "Interval", "MissingTransformerError", "Options",
           "TransformerRegistry", "Zonotope"]
