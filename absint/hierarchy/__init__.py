"""Hierarchical ("abstract") safety of classifiers: misclassifications provably stay inside the
true class's super-class.

* ``format``: the JSON file format (schema ``data/hierarchy.schema.json``), ``load_hierarchy``,
  ``Hierarchy`` (levels: 0 = the exact class, 1 = top-level groups, deeper = nested groups; a
  class without a group at some depth is its own group there), bundled examples.
* ``schema``: the small JSON-Schema validator that enforces the shipped schema.
* ``safety``: ``verify(net, x, label, eps | box, hierarchy=...)`` -> ``HierarchyResult`` with a
  ``Status`` (robust / safe / unsafe / unknown) per level.
* ``images``: image CSV files (label, pixels) and input normalisation, for the CLI and case studies.
"""

from .format import (BUNDLED, Group, Hierarchy, HierarchyError, bundled, bundled_path, load_hierarchy,
                     parse_hierarchy, schema, schema_path)
from .safety import (HierarchyOptions, HierarchyResult, LevelBounds, LevelResult, Status, attack_levels,
                     bound_levels, classify, level_region, margin_rows, verify)

__all__ = ["BUNDLED", "Group", "Hierarchy", "HierarchyError", "bundled", "bundled_path", "load_hierarchy",
           "parse_hierarchy", "schema", "schema_path", "HierarchyOptions", "HierarchyResult", "LevelBounds",
           "LevelResult", "Status", "attack_levels", "bound_levels", "classify", "level_region", "margin_rows",
           "verify"]
