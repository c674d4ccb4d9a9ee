"""A small JSON-Schema validator: the subset of draft 2020-12 that the shipped schemas use.

``validate(instance, schema)`` returns the first violation as a ``SchemaViolation`` (a JSON path
such as ``$.groups[1].members[0]`` and a message), or None. Keywords: ``type``, ``properties``,
``required``, ``additionalProperties`` (bool or schema), ``items``, ``minItems``, ``maxItems``,
``uniqueItems``, ``minLength``, ``enum``, ``const``, ``anyOf``, ``oneOf`` and local ``$ref``
(``#/$defs/name``); annotations (``title``, ``description``, ``$schema``, ``$id``) are ignored.
Any other keyword raises ``ValueError`` so the schema cannot silently say more than is checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["SchemaViolation", "validate", "json_type"]


class SchemaViolation(NamedTuple):
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


#: JSON type name -> predicate on the Python value json.load produced
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_ANNOTATIONS = frozenset({"title", "description", "$schema", "$id", "$comment", "$defs", "default", "examples"})


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value (integer before number)."""
    return next((name for name, test in _TYPES.items() if test(value)), type(value).__name__)


def _show(value: Any, limit: int = 40) -> str:
    text = json.dumps(value) if json_type(value) in _TYPES else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Validator:
    def __init__(self, root: dict):
        self.root = root

    def resolve(self, ref: str) -> dict:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref are supported, got {ref!r}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def check(self, value: Any, schema: dict, path: str) -> SchemaViolation | None:
        for key in schema:
            if key not in _KEYWORDS and key not in _ANNOTATIONS:
                raise ValueError(f"schema keyword {key!r} at {path} is not supported by absint's validator")
        for key, rule in _KEYWORDS.items():
            if key in schema:
                found = rule(self, value, schema, path)
                if found is not None:
                    return found
        return None


def _ref(v: _Validator, value, schema, path):
    return v.check(value, v.resolve(schema["$ref"]), path)


def _type(v: _Validator, value, schema, path):
    wanted = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if not any(_TYPES[t](value) for t in wanted):
        return SchemaViolation(path, f"expected {' or '.join(wanted)}, got {json_type(value)} {_show(value)}")
    return None


def _enum(v: _Validator, value, schema, path):
    if value not in schema["enum"]:
        return SchemaViolation(path, f"{_show(value)} is not one of {', '.join(map(_show, schema['enum']))}")
    return None


def _const(v: _Validator, value, schema, path):
    if value != schema["const"]:
        return SchemaViolation(path, f"expected {_show(schema['const'])}, got {_show(value)}")
    return None


def _required(v: _Validator, value, schema, path):
    if isinstance(value, dict):
        missing = [k for k in schema["required"] if k not in value]
        if missing:
            return SchemaViolation(path, f"missing required key{'s' if len(missing) > 1 else ''} "
                                         f"{', '.join(map(repr, missing))}")
    return None


def _properties(v: _Validator, value, schema, path):
    if isinstance(value, dict):
        for key, sub in schema["properties"].items():
            if key in value:
                found = v.check(value[key], sub, f"{path}.{key}")
                if found is not None:
                    return found
    return None


def _additional(v: _Validator, value, schema, path):
    if not isinstance(value, dict):
        return None
    extra = [k for k in value if k not in schema.get("properties", {})]
    rule = schema["additionalProperties"]
    for key in extra:
        if rule is False:
            allowed = ", ".join(map(repr, schema.get("properties", {})))
            return SchemaViolation(f"{path}.{key}", f"unexpected key {key!r} (allowed: {allowed})")
        if isinstance(rule, dict):
            found = v.check(value[key], rule, f"{path}.{key}")
            if found is not None:
                return found
    return None


def _items(v: _Validator, value, schema, path):
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = v.check(item, schema["items"], f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _min_items(v: _Validator, value, schema, path):
    if isinstance(value, list) and len(value) < schema["minItems"]:
        return SchemaViolation(path, f"needs at least {schema['minItems']} item(s), got {len(value)}")
    return None


def _max_items(v: _Validator, value, schema, path):
    if isinstance(value, list) and len(value) > schema["maxItems"]:
        return SchemaViolation(path, f"allows at most {schema['maxItems']} item(s), got {len(value)}")
    return None


def _unique(v: _Validator, value, schema, path):
    if isinstance(value, list) and schema["uniqueItems"]:
        seen: dict[str, int] = {}
        for i, item in enumerate(value):
            key = json.dumps(item, sort_keys=True)
            if key in seen:
                return SchemaViolation(f"{path}[{i}]", f"duplicate {_show(item)} (first at {path}[{seen[key]}])")
            seen[key] = i
    return None


def _min_length(v: _Validator, value, schema, path):
    if isinstance(value, str) and len(value) < schema["minLength"]:
        return SchemaViolation(path, "must not be empty" if schema["minLength"] == 1
                               else f"needs at least {schema['minLength']} characters")
    return None


def _branches(v: _Validator, value, schema, path, key: str):
    errors = [v.check(value, branch, path) for branch in schema[key]]
    return errors, [e is None for e in errors]


def _any_of(v: _Validator, value, schema, path):
    errors, ok = _branches(v, value, schema, path, "anyOf")
    return None if any(ok) else _best(v, value, schema["anyOf"], errors, path)


def _one_of(v: _Validator, value, schema, path):
    errors, ok = _branches(v, value, schema, path, "oneOf")
    if sum(ok) == 1:
        return None
    if sum(ok) > 1:
        return SchemaViolation(path, f"{_show(value)} matches more than one alternative")
    return _best(v, value, schema["oneOf"], errors, path)


def _branch_types(v: _Validator, branch: dict) -> list[str]:
    while "$ref" in branch and "type" not in branch:
        branch = v.resolve(branch["$ref"])
    t = branch.get("type", [])
    return t if isinstance(t, list) else [t]


def _best(v: _Validator, value, branches, errors, path) -> SchemaViolation:
    """The error of the alternative whose type fits the value, else a list of the accepted types."""
    fitting = [e for b, e in zip(branches, errors) if any(_TYPES[t](value) for t in _branch_types(v, b))]
    if len(fitting) == 1:
        return fitting[0]
    kinds = sorted({t for b in branches for t in _branch_types(v, b)})
    return SchemaViolation(path, f"expected {' or '.join(kinds)}, got {json_type(value)} {_show(value)}")


#: keyword -> rule, checked in this order (type first, so later rules see the right kind of value)
_KEYWORDS: dict[str, Callable[[_Validator, Any, dict, str], SchemaViolation | None]] = {
    "$ref": _ref, "type": _type, "enum": _enum, "const": _const, "minLength": _min_length,
    "required": _required, "additionalProperties": _additional, "properties": _properties,
    "minItems": _min_items, "maxItems": _max_items, "uniqueItems": _unique, "items": _items,
    "anyOf": _any_of, "oneOf": _one_of,
}


def validate(instance: Any, schema: dict) -> SchemaViolation | None:
    """The first place where ``instance`` (parsed JSON) breaks ``schema``, or None if it conforms."""
    return _Validator(schema).check(instance, schema, "$")
