"""VNN-LIB reader: streams a property file into a ``Spec`` (semantics in ``absint.spec``).

The file describes the UNSAFE set: all top-level asserts form one conjunction; its DNF is
grouped by input box into regions, each with a disjunction of output conjunctions.

Design notes
------------
* Streaming: the byte stream is cut into pieces (``SEGMENT_SIZE``) at line ends (never
  inside a token or comment); each piece is lexed with one compiled token regex and fed
  to an iterative s-expression parser that hands every top-level command over as soon as
  its ``)`` arrives. Neither the whole text nor the whole token list is ever held.
* Positions: every token is identified by its ordinal (index among non-comment tokens);
  list nodes are ``[ordinal of '(', child, ...]`` and leaves are ``bytes``. An ordinal is
  turned into an absolute offset, then a line and column, only when an error is raised,
  by re-lexing the one piece that holds it (the piece table has one entry per piece).
* Fast path: ``(assert (<= X_i c))`` style bounds (any of ``<= >= < >``, either side)
  write straight into growable bound arrays; everything else goes through the DNF path.
* Strict input bounds (``<``, ``>`` on X) are read as their closure; output rows keep
  their strictness. A disjunct with an empty box is dropped; if all are, the ``Spec``
  has no regions (the property holds trivially).
"""

from __future__ import annotations

import bisect
import gzip
import io
import math
import os
import re
from array import array
from fractions import Fraction

import numpy as np

from .errors import ShapeError, VnnlibError, VnnlibSyntaxError
from .spec import LinearConstraints, Region, Spec

__all__ = ["load_vnnlib", "parse_vnnlib", "SEGMENT_SIZE", "MAX_DISJUNCTS"]

#: bytes read and lexed at a time (pieces are cut at the last line end inside).
SEGMENT_SIZE = 1 << 15
#: largest number of disjuncts the DNF of a property may have.
MAX_DISJUNCTS = 100_000

# comment | paren | one-line string | symbol or number | lone quote (an unterminated string)
_TOKEN = re.compile(rb';[^\n\r]*|[()]|"[^"\n\r]*"|[^\s();"]+|"')
_NUMBER = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_EOL = re.compile(rb"[\n\r]")
_DELIMS = (b" ", b"\t", b"\n", b"\r", b"\f", b"\v", b"(", b")")

_INF = math.inf
_FREE = (-_INF, _INF)
_IGNORED = frozenset([b"set-logic", b"set-info", b"set-option", b"check-sat", b"get-model",
                      b"get-value", b"get-info", b"exit"])
_COMMANDS = _IGNORED | {b"assert", b"declare-const", b"declare-fun"}
# fast path: op -> True when "var op const" bounds var from above
_BOUND_OPS = {b"<=": True, b"<": True, b">=": False, b">": False}
_RELATIONS = frozenset([b"<=", b"<", b">=", b">", b"="])


class _At(Exception):
    """Internal: an error located at child ``k`` of list node ``parent`` (resolved lazily)."""

    def __init__(self, cls: type[VnnlibError], message: str, parent: list, k: int):
        super().__init__(message)
        self.cls, self.message, self.parent, self.k = cls, message, parent, k


def _show(t) -> str:
    if type(t) is not bytes:
        return "(...)"
    s = t.decode("utf-8", "replace")
    return s if len(s) <= 40 else s[:37] + "..."


def _ntokens(t) -> int:
    """Number of tokens of a leaf or list node (its parentheses included)."""
    n, todo = 0, [t]
    while todo:
        t = todo.pop()
        if type(t) is bytes:
            n += 1
        else:
            n += 2
            todo.extend(t[1:])
    return n


def _segments(f, size: int):
    """Yield (offset, piece): consecutive pieces of the byte stream cut only between tokens.

    Pieces end at a line end; a line longer than ``size`` is cut at its last delimiter,
    and a comment that does not fit is dropped up to its line end."""
    offset, carry, skip = 0, b"", False
    while True:
        data = f.read(size)
        if not data:
            if carry:
                yield offset, carry
            return
        if skip:                                   # inside an over-long comment
            m = _EOL.search(data)
            if m is None:
                offset += len(data)
                continue
            offset += m.start()
            data, skip = data[m.start():], False
        buf = carry + data if carry else data
        cut = max(buf.rfind(b"\n"), buf.rfind(b"\r")) + 1
        if cut == 0:                               # no line end in the whole buffer
            semi = buf.find(b";")
            if semi >= 0:
                yield offset, buf[:semi]
                offset, carry, skip = offset + len(buf), b"", True
                continue
            cut = max(buf.rfind(c) for c in _DELIMS) + 1
            if cut == 0:                           # one token longer than a piece
                carry = buf
                continue
        yield offset, buf[:cut]
        offset += cut
        carry = buf[cut:]


class _Conj:
    """A conjunction: input bounds {i: (lo, hi)} and output rows [(coefs {j: a}, rhs, strict)]."""

    __slots__ = ("xb", "rows")

    def __init__(self, xb: dict | None = None, rows: list | None = None):
        self.xb = {} if xb is None else xb
        self.rows = [] if rows is None else rows

    def bound(self, i: int, value: float, upper: bool) -> bool:
        lo, hi = self.xb.get(i, _FREE)
        if upper:
            hi = min(hi, value)
        else:
            lo = max(lo, value)
        self.xb[i] = (lo, hi)
        return lo <= hi

    def absorb(self, other: "_Conj") -> bool:
        ok = True
        for i, (lo, hi) in other.xb.items():
            ok = self.bound(i, lo, False) & self.bound(i, hi, True) & ok
        self.rows.extend(other.rows)
        return ok

    def conjoined(self, other: "_Conj") -> "_Conj | None":
        c = _Conj(dict(self.xb), list(self.rows))
        return c if c.absorb(other) else None


# linear expressions: (x coefs {i: a}, y coefs {j: a}, constant)
def _lin_sum(terms):
    """Sum of (sign, expression) pairs."""
    xc, yc, c = {}, {}, 0.0
    for sign, (tx, ty, tc) in terms:
        for src, dst in ((tx, xc), (ty, yc)):
            for i, v in src.items():
                dst[i] = dst.get(i, 0.0) + sign * v
        c += sign * tc
    return xc, yc, c


def _lin_scale(a, s: float):
    return ({i: v * s for i, v in a[0].items()}, {j: v * s for j, v in a[1].items()}, a[2] * s)


def _solve_bound(a: float, c: float) -> tuple[float, bool]:
    """The bound on X from ``a X + c <= 0``: (value, is_upper), rounded outward if inexact."""
    q = (0.0 - c) / a
    upper = a > 0
    if a != 1.0 and a != -1.0 and Fraction(q) * Fraction(a) != -Fraction(c):
        q = math.nextafter(q, _INF if upper else -_INF)
    return q, upper


class _Parser:
    def __init__(self, f, source: str | None, segment_size: int = SEGMENT_SIZE):
        self.f, self.source, self.segment_size = f, source, segment_size
        self.piece_ord: list[int] = []             # ordinal of the first token of each piece
        self.piece_at: list[tuple[int, int]] = []  # (offset, length) of each piece
        self.xdecl, self.ydecl = bytearray(), bytearray()
        self.lower, self.upper = array("d"), array("d")
        self.rows: list = []                       # output rows shared by every disjunct
        self.disjuncts: list[_Conj] = [_Conj()]
        self.n_tokens = 0                          # tokens read (comments excluded)

    # ------------------------------------------------------------------ reading
    def parse(self) -> None:
        try:
            self._read()
        except _At as e:
            raise self._error(e.cls, e.message, self._ordinal(e.parent, e.k)) from None
        except RecursionError:
            raise VnnlibError("formula nested too deeply", source=self.source) from None

    def _read(self) -> None:
        stack: list[list] = []                     # enclosing open lists, outermost first
        cur = None                                 # the list being filled; None at top level
        n = 0
        findall, bound, declare = _TOKEN.findall, self._fast_bound, self._fast_declare
        for offset, piece in _segments(self.f, self.segment_size):
            toks = findall(piece)
            if b";" in piece:
                toks = [t for t in toks if t[0] != 59]   # drop comments (59 = ';')
            self.piece_ord.append(n)
            self.piece_at.append((offset, len(piece)))
            j, end, fast_end = 0, len(toks), len(toks) - 7
            while j < end:
                t = toks[j]
                if t == b"(":
                    if cur is None and j < fast_end:       # fast paths for one-line commands
                        h = toks[j + 1]
                        if h == b"assert":
                            if (toks[j + 2] == b"(" and toks[j + 6] == b")" and toks[j + 7] == b")"
                                    and bound(toks[j + 3], toks[j + 4], toks[j + 5])):
                                j += 8
                                continue
                        elif h == b"declare-const":
                            if toks[j + 4] == b")" and toks[j + 3] == b"Real" and declare(toks[j + 2]):
                                j += 5
                                continue
                    if cur is not None:
                        stack.append(cur)
                    cur = [n + j]
                elif t == b")":
                    if cur is None:
                        raise self._error(VnnlibSyntaxError, "unbalanced ')': nothing to close", n + j)
                    if stack:
                        parent = stack.pop()
                        parent.append(cur)
                        if not stack and len(cur) > 1 and type(cur[1]) is bytes and cur[1] in _COMMANDS:
                            raise self._error(VnnlibSyntaxError, f"unclosed '(': missing ')' before the "
                                              f"nested command {_show(cur[1])!r}", parent[0])
                        cur = parent
                    else:
                        self._command(cur)
                        cur = None
                elif cur is None:
                    raise self._error(VnnlibSyntaxError, f"unexpected {_show(t)!r} outside parentheses", n + j)
                else:
                    cur.append(t)
                j += 1
            n += len(toks)
        self.n_tokens = n
        if cur is not None:
            outer = stack[0] if stack else cur
            raise self._error(VnnlibSyntaxError, f"unclosed '(': {len(stack) + 1} parenthes"
                              f"{'es' if stack else 'is'} still open at the end of the input", outer[0])

    # ------------------------------------------------------------------ commands
    def _command(self, node: list) -> None:
        if len(node) < 2:
            raise self._error(VnnlibSyntaxError, "empty command '()'", node[0])
        if type(node[1]) is not bytes:
            raise _At(VnnlibSyntaxError, "expected a command name after '('", node, 1)
        head = node[1]
        if head == b"assert":
            if len(node) != 3:
                raise _At(VnnlibSyntaxError, f"'assert' takes one formula, got {len(node) - 2}", node, 1)
            self._assert(node, 2)
        elif head == b"declare-const":
            if len(node) != 4:
                raise _At(VnnlibSyntaxError, "expected (declare-const NAME Real)", node, 1)
            self._declare(node, 2, 3)
        elif head == b"declare-fun":
            if len(node) != 5 or type(node[3]) is not list or len(node[3]) != 1:
                raise _At(VnnlibSyntaxError, "expected (declare-fun NAME () Real)", node, 1)
            self._declare(node, 2, 4)
        elif head in _IGNORED:
            self._check_strings(node)
        else:
            raise _At(VnnlibSyntaxError, f"unknown command {_show(head)!r}", node, 1)

    def _check_strings(self, node: list) -> None:
        for j in range(1, len(node)):
            if node[j] == b'"':
                raise _At(VnnlibSyntaxError, "unterminated string literal", node, j)
            if type(node[j]) is list:
                self._check_strings(node[j])

    def _declare(self, node: list, k: int, sort_k: int) -> None:
        name, sort = node[k], node[sort_k]
        if sort != b"Real":
            raise _At(VnnlibSyntaxError, f"unsupported sort {_show(sort)!r} (only Real)", node, sort_k)
        ok = type(name) is bytes and name[:2] in (b"X_", b"Y_")
        s = name[2:] if ok else b""
        if not ok or not s.isdigit() or (len(s) > 1 and s[0] == 48):
            raise _At(VnnlibSyntaxError, f"variable names must be X_<i> (inputs) or Y_<i> (outputs), "
                      f"got {_show(name)!r}", node, k)
        i, is_x = int(s), name[0] == 88                  # 88 = 'X'
        flags = self.xdecl if is_x else self.ydecl
        if i < len(flags):
            if flags[i]:
                raise _At(VnnlibSyntaxError, f"variable {_show(name)} declared twice", node, k)
            flags[i] = 1
            return
        if i > 2 * len(flags) + 65536:
            raise _At(VnnlibSyntaxError, f"{_show(name)} declared when only {len(flags)} "
                      f"{'X' if is_x else 'Y'} variables exist: declare variables in order", node, k)
        grow = i + 1 - len(flags)
        flags.extend(bytes(grow - 1))
        flags.append(1)
        if is_x:
            self.lower.extend(array("d", [-_INF]) * grow)
            self.upper.extend(array("d", [_INF]) * grow)

    def _fast_declare(self, name: bytes) -> bool:
        """Declare the next variable in order (X_n or Y_n); False to leave it to ``_declare``."""
        is_x = name[:2] == b"X_"
        if not is_x and name[:2] != b"Y_":
            return False
        flags, s = (self.xdecl if is_x else self.ydecl), name[2:]
        if not s.isdigit() or (s[0] == 48 and len(s) > 1) or int(s) != len(flags):
            return False
        flags.append(1)
        if is_x:
            self.lower.append(-_INF)
            self.upper.append(_INF)
        return True

    def _fast_bound(self, op: bytes, a: bytes, b: bytes) -> bool:
        """Apply ``(op X_i c)`` or ``(op c X_i)`` to the bound arrays; False to leave it to the DNF path."""
        up = _BOUND_OPS.get(op)
        if up is None:
            return False
        if a[:2] == b"X_":
            var, num = a, b
        else:
            var, num, up = b, a, not up
        s = var[2:]
        if var[:2] != b"X_" or not s.isdigit() or (s[0] == 48 and len(s) > 1) or not _NUMBER.fullmatch(num):
            return False
        i = int(s)
        if i >= len(self.xdecl) or not self.xdecl[i]:
            return False
        c = float(num)
        if up:
            if c < self.upper[i]:
                self.upper[i] = c
        elif c > self.lower[i]:
            self.lower[i] = c
        return True

    def _assert(self, parent: list, k: int) -> None:
        f = parent[k]
        if (type(f) is list and len(f) == 4 and type(f[1]) is bytes and type(f[2]) is bytes
                and type(f[3]) is bytes and self._fast_bound(f[1], f[2], f[3])):
            return
        if type(f) is list and len(f) > 1 and f[1] == b"and":   # (assert (and A B)) = A, B
            for j in range(2, len(f)):
                self._assert(f, j)
            return
        d = self._dnf(parent, k, False)
        if len(d) == 1:
            for i, (lo, hi) in d[0].xb.items():
                if lo > self.lower[i]:
                    self.lower[i] = lo
                if hi < self.upper[i]:
                    self.upper[i] = hi
            self.rows.extend(d[0].rows)
        else:
            self.disjuncts = self._product([self.disjuncts, d], parent, k)

    # ------------------------------------------------------------------ formulas
    def _product(self, dnfs: list[list[_Conj]], parent: list, k: int) -> list[_Conj]:
        acc = [_Conj()]
        for d in dnfs:
            if len(acc) == 1 and len(d) == 1:
                if not acc[0].absorb(d[0]):
                    acc = []
            elif acc and d:
                if len(acc) * len(d) > MAX_DISJUNCTS:
                    raise _At(VnnlibError, f"the property's disjunctive normal form exceeds "
                              f"{MAX_DISJUNCTS} disjuncts ({len(acc)} x {len(d)})", parent, k)
                acc = [c for c in (a.conjoined(b) for a in acc for b in d) if c is not None]
            else:
                acc = []
        return acc

    def _dnf(self, parent: list, k: int, neg: bool) -> list[_Conj]:
        """The formula ``parent[k]`` (negated if ``neg``) as a list of feasible conjunctions."""
        f = parent[k]
        if type(f) is bytes:
            if f in (b"true", b"false"):
                return [_Conj()] if (f == b"true") != neg else []
            raise _At(VnnlibSyntaxError, f"expected a formula, got {_show(f)!r}", parent, k)
        if len(f) < 2 or type(f[1]) is not bytes:
            raise _At(VnnlibSyntaxError, "expected an operator after '('", parent, k)
        op = f[1]
        if op == b"and" or op == b"or":
            parts = [self._dnf(f, j, neg) for j in range(2, len(f))]
            if (op == b"and") != neg:
                return self._product(parts, parent, k)
            out = [c for p in parts for c in p]
            if len(out) > MAX_DISJUNCTS:
                raise _At(VnnlibError, f"the property's disjunctive normal form exceeds "
                          f"{MAX_DISJUNCTS} disjuncts", parent, k)
            return out
        if op == b"not":
            if len(f) != 3:
                raise _At(VnnlibSyntaxError, "'not' takes one formula", f, 1)
            return self._dnf(f, 2, not neg)
        if op in _RELATIONS:
            return self._atom(parent, k, neg)
        raise _At(VnnlibSyntaxError, f"unknown operator {_show(op)!r} in a formula", f, 1)

    def _atom(self, parent: list, k: int, neg: bool) -> list[_Conj]:
        f = parent[k]
        op = f[1]
        if len(f) < 4:
            raise _At(VnnlibSyntaxError, f"{_show(op)!r} needs at least two arguments", f, 1)
        exprs = [self._linear(f, j) for j in range(2, len(f))]
        rels = []                                   # (d, strict): d <= 0 or d < 0
        for a, b in zip(exprs, exprs[1:]):
            if op == b"<=" or op == b"<" or op == b"=":
                rels.append((_lin_sum([(1.0, a), (-1.0, b)]), op == b"<"))
            if op == b">=" or op == b">" or op == b"=":
                rels.append((_lin_sum([(1.0, b), (-1.0, a)]), op == b">"))
        if neg:                                     # not(d <= 0) = -d < 0 ; one disjunct each
            rels = [(_lin_scale(d, -1.0), not s) for d, s in rels]
            out = []
            for d, s in rels:
                c = _Conj()
                if self._constrain(c, d, s, parent, k):
                    out.append(c)
            return out
        c = _Conj()
        ok = True
        for d, s in rels:
            ok = self._constrain(c, d, s, parent, k) & ok
        return [c] if ok else []

    def _constrain(self, conj: _Conj, d, strict: bool, parent: list, k: int) -> bool:
        xc = {i: a for i, a in d[0].items() if a != 0.0}
        yc = {j: a for j, a in d[1].items() if a != 0.0}
        c = d[2]
        if xc and yc:
            raise _At(VnnlibError, "constraint mixes input (X) and output (Y) variables, which VNN-LIB "
                      "properties must keep apart", parent, k)
        if len(xc) > 1:
            names = ", ".join(f"X_{i}" for i in sorted(xc)[:4])
            raise _At(VnnlibError, f"unsupported: linear constraint over several input variables "
                      f"({names}); only box input constraints are supported", parent, k)
        if xc:
            (i, a), = xc.items()
            value, upper = _solve_bound(a, c)
            return conj.bound(i, value, upper)
        if yc:
            conj.rows.append((yc, 0.0 - c + 0.0, strict))
            return True
        return c < 0 if strict else c <= 0

    def _linear(self, parent: list, k: int):
        t = parent[k]
        if type(t) is bytes:
            return self._leaf(parent, k)
        if len(t) < 2 or type(t[1]) is not bytes:
            raise _At(VnnlibSyntaxError, "expected an operator after '('", parent, k)
        op, n = t[1], len(t) - 2
        if op not in (b"+", b"-", b"*", b"/"):
            raise _At(VnnlibSyntaxError, f"unknown operator {_show(op)!r} in a linear expression", t, 1)
        if n == 0 or (op == b"/" and n != 2):
            raise _At(VnnlibSyntaxError, f"wrong number of arguments ({n}) for {_show(op)!r}", t, 1)
        args = [self._linear(t, j) for j in range(2, len(t))]
        if op == b"+" or op == b"-":
            if op == b"-" and n == 1:
                return _lin_scale(args[0], -1.0)
            rest = 1.0 if op == b"+" else -1.0
            return _lin_sum([(1.0, args[0])] + [(rest, a) for a in args[1:]])
        if op == b"/":
            if args[1][0] or args[1][1] or args[1][2] == 0.0:
                raise _At(VnnlibError, "unsupported: division by a variable or by zero", t, 3)
            den = args[1][2]
            a = args[0]
            return ({i: v / den for i, v in a[0].items()}, {j: v / den for j, v in a[1].items()}, a[2] / den)
        var = [j for j, a in enumerate(args) if a[0] or a[1]]
        if len(var) > 1:
            raise _At(VnnlibError, "unsupported: product of variables (non-linear)", t, 2 + var[1])
        scale = 1.0
        for j, a in enumerate(args):
            if not var or j != var[0]:
                scale *= a[2]
        return _lin_scale(args[var[0]], scale) if var else ({}, {}, scale)

    def _leaf(self, parent: list, k: int):
        t = parent[k]
        if _NUMBER.fullmatch(t):
            return {}, {}, float(t)
        if t[:2] in (b"X_", b"Y_"):
            s = t[2:]
            is_x = t[0] == 88
            flags = self.xdecl if is_x else self.ydecl
            if s.isdigit() and (len(s) == 1 or s[0] != 48):
                i = int(s)
                if i < len(flags) and flags[i]:
                    return ({i: 1.0}, {}, 0.0) if is_x else ({}, {i: 1.0}, 0.0)
            raise _At(VnnlibSyntaxError, f"unknown variable {_show(t)!r}: not declared ({len(flags)} "
                      f"{'X' if is_x else 'Y'} variables declared before this point)", parent, k)
        if t[:1] == b'"':
            msg = "unterminated string literal" if t == b'"' else f"unexpected string {_show(t)}"
            raise _At(VnnlibSyntaxError, msg, parent, k)
        if t[:1].isdigit() or (len(t) > 1 and t[:1] in (b"+", b"-", b".")):
            raise _At(VnnlibSyntaxError, f"bad number {_show(t)!r}", parent, k)
        raise _At(VnnlibSyntaxError, f"unknown variable or symbol {_show(t)!r}", parent, k)

    # ------------------------------------------------------------------ result
    def _count(self, flags: bytearray, letter: str) -> int:
        missing = flags.find(0)
        if missing >= 0:
            raise VnnlibError(f"{letter} variables must be {letter}_0..{letter}_{len(flags) - 1} without gaps: "
                              f"{letter}_{missing} is not declared", source=self.source)
        if not flags:
            raise VnnlibError(f"no {letter} variables declared", source=self.source)
        return len(flags)

    def spec(self, net, input_shape) -> Spec:
        n_in, n_out = self._count(self.xdecl, "X"), self._count(self.ydecl, "Y")
        where = self.source or "<vnnlib>"
        if net is not None:
            if n_in != net.input_size:
                raise ShapeError(f"{where}: the property declares {n_in} inputs (X_0..X_{n_in - 1}) but the "
                                 f"network has {net.input_size} inputs (shape {tuple(net.input_shape)})")
            if n_out != net.output_size:
                raise ShapeError(f"{where}: the property declares {n_out} outputs (Y_0..Y_{n_out - 1}) but "
                                 f"the network has {net.output_size} outputs")
            if input_shape is None:
                input_shape = net.input_shape
        shape = (n_in,) if input_shape is None else tuple(int(s) for s in input_shape)
        if math.prod(shape) != n_in:
            raise ShapeError(f"{where}: the property declares {n_in} inputs but the input shape {shape} "
                             f"has {math.prod(shape)} elements")
        lo = np.frombuffer(self.lower, dtype=np.float64)
        hi = np.frombuffer(self.upper, dtype=np.float64)
        groups: dict[tuple, list] = {}
        if not (lo > hi).any():
            for conj in self.disjuncts:
                key = []
                for i, (l, h) in conj.xb.items():
                    bl, bh = float(lo[i]), float(hi[i])
                    l, h = max(l, bl), min(h, bh)
                    if l > h:
                        break
                    if l != bl or h != bh:
                        key.append((i, l, h))
                else:
                    groups.setdefault(tuple(sorted(key)), []).append(conj.rows)
        regions = []
        for r, (key, row_lists) in enumerate(groups.items()):
            rlo, rhi = (lo, hi) if not key else (lo.copy(), hi.copy())   # the base box is used as is
            for i, l, h in key:
                rlo[i], rhi[i] = l, h
            for arr, what in ((rlo, "lower"), (rhi, "upper")):
                bad = np.flatnonzero(~np.isfinite(arr))
                if bad.size:
                    region = f" in region {r}" if len(groups) > 1 else ""
                    raise VnnlibError(f"input X_{int(bad[0])} has no {what} bound{region} "
                                      f"({bad.size} inputs unbounded)", source=self.source)
            unsafe = tuple(_constraints(self.rows + rows, n_out) for rows in row_lists)
            regions.append(Region(_frozen(rlo.reshape(shape)), _frozen(rhi.reshape(shape)), unsafe))
        return Spec(regions, n_in, n_out, shape, self.source)

    # ------------------------------------------------------------------ errors
    def _ordinal(self, parent: list, k: int) -> int:
        return parent[0] + 1 + sum(_ntokens(parent[j]) for j in range(1, k))

    def _error(self, cls: type[VnnlibError], message: str, ordinal: int) -> VnnlibError:
        line, col = self._position(self._offset(ordinal))
        return cls(message, line, col, self.source)

    def _offset(self, ordinal: int) -> int:
        """Absolute byte offset of the token with this ordinal (re-lexes the piece holding it)."""
        p = bisect.bisect_right(self.piece_ord, ordinal) - 1
        if p < 0:
            return 0
        start, length = self.piece_at[p]
        self.f.seek(start)
        n = self.piece_ord[p]
        for m in _TOKEN.finditer(self.f.read(length)):
            if m.group()[0] == 59:
                continue
            if n == ordinal:
                return start + m.start()
            n += 1
        return start + length

    def _position(self, offset: int) -> tuple[int, int]:
        """1-based line and column (in characters) of a byte offset."""
        self.f.seek(0)
        line, line_start, pos = 1, 0, 0
        while pos < offset:
            block = self.f.read(min(1 << 20, offset - pos))
            if not block:
                break
            nl = block.count(b"\n")
            if nl:
                line += nl
                line_start = pos + block.rfind(b"\n") + 1
            pos += len(block)
        self.f.seek(line_start)
        prefix = self.f.read(offset - line_start)
        return line, len(prefix.decode("utf-8", "replace")) + 1


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _constraints(rows: list, n_out: int) -> LinearConstraints:
    A = np.zeros((len(rows), n_out))
    for r, (coefs, _, _) in enumerate(rows):
        for j, a in coefs.items():
            A[r, j] = a
    b = np.array([row[1] for row in rows], dtype=np.float64)
    strict = np.array([row[2] for row in rows], dtype=bool)
    return LinearConstraints(_frozen(A), _frozen(b), _frozen(strict))


def _parse_stream(f, source, net, input_shape, segment_size) -> Spec:
    parser = _Parser(f, source, segment_size)
    parser.parse()
    return parser.spec(net, input_shape)


def load_vnnlib(path: str | os.PathLike, net=None, *, input_shape=None,
                segment_size: int = SEGMENT_SIZE) -> Spec:
    """Read a VNN-LIB file (``.gz`` too) as a ``Spec``; checks sizes against ``net`` if given.

    Bounds take ``input_shape`` (default ``net.input_shape``, else flat)."""
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        f = opener(path, "rb")
    except FileNotFoundError:
        if "(" in path:
            raise FileNotFoundError("load_vnnlib takes a path; use absint.parse_vnnlib for VNN-LIB text") from None
        raise
    with f:
        return _parse_stream(f, path, net, input_shape, segment_size)


def parse_vnnlib(text: str | bytes, net=None, *, input_shape=None, source: str | None = None,
                 segment_size: int = SEGMENT_SIZE) -> Spec:
    """``load_vnnlib`` for VNN-LIB text held in memory; ``source`` names it in error messages."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return _parse_stream(io.BytesIO(data), source, net, input_shape, segment_size)
