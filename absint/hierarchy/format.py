"""Class hierarchies: the JSON file format, its checks, and the group of a class at each level.

A file (schema: ``data/hierarchy.schema.json``) lists the class names in the network's output
order and a tree of named groups whose members are class names or nested groups::

    {"classes": ["airplane", "automobile", "bird", ...],
     "groups": [{"name": "vehicle", "members": ["airplane", "automobile", "ship", "truck"]},
                {"name": "animal", "members": [{"name": "mammal", "members": ["cat", "deer", ...]},
                                               {"name": "non-mammal", "members": ["bird", "frog"]}]}]}

Levels: level 0 is the exact class; level 1 the top-level groups; level k the groups nested k - 1
deep. A class that sits directly in a group of depth d < k is its own (singleton) group at level k,
so every level is a partition of the classes and each level refines the one before it (level 1 is
the coarsest, then 2, 3, ..., ``depth``, and level 0 the finest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import AbsintError

__all__ = ["Group", "Hierarchy", "HierarchyError", "load_hierarchy", "parse_hierarchy", "schema", "schema_path",
           "bundled", "bundled_path", "BUNDLED"]

SCHEMA_FILE = "hierarchy.schema.json"
#: hierarchy files shipped in absint/hierarchy/data (name -> file)
BUNDLED = {"cifar10": "cifar10.json", "cifar10_deep": "cifar10_deep.json", "digits_shapes": "digits_shapes.json"}


class HierarchyError(AbsintError):
    """A hierarchy file that cannot be used; the message names the file and the JSON path."""


@dataclass(frozen=True)
class Group:
    """A named group: members are class names or nested groups."""

    name: str
    members: tuple[Union[str, "Group"], ...]

    def classes(self) -> tuple[str, ...]:
        """Every class name inside the group, in the order of the file."""
        out: list[str] = []
        for m in self.members:
            out.extend(m.classes() if isinstance(m, Group) else (m,))
        return tuple(out)

    @property
    def depth(self) -> int:
        """1 for a group of classes only, 1 + the deepest nested group otherwise."""
        return 1 + max((m.depth for m in self.members if isinstance(m, Group)), default=0)


@dataclass(frozen=True)
class Hierarchy:
    """Class names in output order and the tree of groups (see the module docstring for levels)."""

    classes: tuple[str, ...]
    groups: tuple[Group, ...]
    name: str = ""
    _paths: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        paths: dict[str, tuple[str, ...]] = {}

        def walk(group: Group, above: tuple[str, ...]) -> None:
            for m in group.members:
                if isinstance(m, Group):
                    walk(m, above + (group.name,))
                else:
                    paths[m] = above + (group.name,)
        for g in self.groups:
            walk(g, ())
        object.__setattr__(self, "_paths", paths)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def depth(self) -> int:
        """Number of group levels (levels are 0 .. depth)."""
        return max(g.depth for g in self.groups)

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(range(self.depth + 1))

    def coarse_to_fine(self) -> tuple[int, ...]:
        """Levels from the coarsest to the finest: 1, 2, ..., depth, 0."""
        return tuple(range(1, self.depth + 1)) + (0,)

    def group_name(self, label: int, level: int) -> str:
        """Name of the group holding class ``label`` at ``level`` (the class name itself when it is its own group)."""
        cls = self.classes[label]
        path = self._paths[cls]
        return cls if level == 0 or level > len(path) else path[level - 1]

    def group_members(self, label: int, level: int) -> np.ndarray:
        """Output indices of the classes sharing the group of ``label`` at ``level`` (sorted)."""
        self._check_level(level)
        name = self.group_name(label, level)
        return np.array([k for k in range(self.n_classes) if self.group_name(k, level) == name], dtype=np.int64)

    def partition(self, level: int) -> dict[str, np.ndarray]:
        """Group name -> output indices, for every group of ``level`` (in output order of first members)."""
        self._check_level(level)
        out: dict[str, list[int]] = {}
        for k in range(self.n_classes):
            out.setdefault(self.group_name(k, level), []).append(k)
        return {name: np.array(ks, dtype=np.int64) for name, ks in out.items()}

    def check_outputs(self, n_outputs: int) -> None:
        """``HierarchyError`` unless the network has one output per class."""
        if n_outputs != self.n_classes:
            raise HierarchyError(f"hierarchy {self.name or '<unnamed>'!r} has {self.n_classes} classes, "
                                 f"the network has {n_outputs} outputs")

    def _check_level(self, level: int) -> None:
        if not 0 <= level <= self.depth:
            raise ValueError(f"level {level} out of range: hierarchy {self.name!r} has levels 0..{self.depth}")


# ------------------------------------------------------------------------------ files
def _data(name: str) -> Path:
    res = resources.files(__package__) / "data" / name
    if not isinstance(res, Path):  # pragma: no cover - zipped installs are not supported
        raise RuntimeError(f"absint.hierarchy data is not on the file system: {res}")
    return res


def schema_path() -> Path:
    """Location of the shipped JSON Schema of hierarchy files."""
    return _data(SCHEMA_FILE)


def schema() -> dict:
    """The JSON Schema of hierarchy files (what ``parse_hierarchy`` enforces, plus the checks below)."""
    return json.loads(schema_path().read_text(encoding="utf-8"))


def bundled_path(name: str) -> Path:
    """Path of a bundled hierarchy (``"cifar10"``, ``"cifar10_deep"``, ``"digits_shapes"``)."""
    if name not in BUNDLED:
        raise KeyError(f"no bundled hierarchy {name!r}; bundled: {', '.join(BUNDLED)}")
    return _data(BUNDLED[name])


def bundled(name: str) -> Hierarchy:
    """A bundled hierarchy by name."""
    return load_hierarchy(bundled_path(name))


def _group(obj: dict) -> Group:
    return Group(obj["name"], tuple(_group(m) if isinstance(m, dict) else m for m in obj["members"]))


def _semantic_problem(doc: dict) -> str | None:
    """Unknown, repeated or missing classes and repeated group names, with JSON paths."""
    classes = doc["classes"]
    known = set(classes)
    where: dict[str, str] = {}
    group_at: dict[str, str] = {}

    def walk(obj: dict, path: str) -> str | None:
        if obj["name"] in group_at:
            return f"{path}.name: duplicate group name {obj['name']!r} (first at {group_at[obj['name']]})"
        group_at[obj["name"]] = f"{path}.name"
        for i, m in enumerate(obj["members"]):
            here = f"{path}.members[{i}]"
            if isinstance(m, dict):
                found = walk(m, here)
                if found:
                    return found
            elif m not in known:
                return f"{here}: unknown class {m!r} (not in $.classes: {', '.join(classes)})"
            elif m in where:
                return f"{here}: class {m!r} appears twice (first at {where[m]}); each class belongs in one place"
            else:
                where[m] = here
        return None

    for i, g in enumerate(doc["groups"]):
        found = walk(g, f"$.groups[{i}]")
        if found:
            return found
    missing = [f"{c!r} (output {k})" for k, c in enumerate(classes) if c not in where]
    if missing:
        return f"$.groups: class{'es' if len(missing) > 1 else ''} {', '.join(missing)} in no group"
    return None


def parse_hierarchy(doc, source: str = "<hierarchy>", n_outputs: int | None = None) -> Hierarchy:
    """A ``Hierarchy`` from parsed JSON, checked against the schema and for unknown, duplicate and missing
    classes (and, with ``n_outputs``, the network's output count); ``HierarchyError`` names the JSON path."""
    from .schema import validate

    problem = validate(doc, schema())
    if problem is not None:
        raise HierarchyError(f"{source}: {problem}")
    message = _semantic_problem(doc)
    if message:
        raise HierarchyError(f"{source}: {message}")
    h = Hierarchy(tuple(doc["classes"]), tuple(_group(g) for g in doc["groups"]), doc.get("name", ""))
    if n_outputs is not None:
        try:
            h.check_outputs(n_outputs)
        except HierarchyError as exc:
            raise HierarchyError(f"{source}: {exc}") from None
    return h


def load_hierarchy(path, n_outputs: int | None = None) -> Hierarchy:
    """Read and check a hierarchy file (see ``parse_hierarchy``); bad JSON names the line and column."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HierarchyError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    h = parse_hierarchy(doc, str(path), n_outputs)
    if not h.name:
        h = Hierarchy(h.classes, h.groups, path.stem)
    return h
