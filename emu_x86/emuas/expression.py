"""Expressions as GNU as evaluates them (as/expr.c): tokens, precedence, 64-bit arithmetic.

Nodes are tuples: ("num", value), ("sym", name), ("dot", frag, offset),
("unary", op, node), ("binary", op, left, right).  Precedence is GNU as's,
not C's: * / % << >> bind tightest, then | & ^ !, then + -, then the
comparisons, then &&, then ||.  A true comparison is -1, as in GNU as.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from emu_x86.emuas.source import unescape


class ExpressionError(Exception):
    pass


# GNU as keeps bignums of any length and truncates them where they are used;
# values here are Python integers, so a number is refused beyond what any
# field can hold in binary (.octa: 128 bits, plus a prefix) rather than have
# int() work on a megabyte of digits.
MAX_NUMBER_CHARACTERS = 160
NUMBER_KINDS = frozenset(("hex", "bin", "intelhex", "dec"))


_EXPRESSION_TOKEN = re.compile(r"""\s*(?:
      (?P<hex>0[xX][0-9a-fA-F]+)
    | (?P<bin>0[bB][01]+)(?![\w$])
    | (?P<local>\d+[bf])(?![\w$])
    | (?P<intelhex>\d[0-9a-fA-F]*[hH])(?![\w$])
    | (?P<dec>\d+)
    | (?P<char>'(?:\\(?:[0-7]{1,3}|[xX][0-9a-fA-F]+|.)|[^\\])'?)
    | (?P<name>[A-Za-z_.\x02][\w.$\x02]*(?:@[A-Za-z]+)?)
    | (?P<op><<|>>|<=|>=|==|!=|<>|&&|\|\||[-+*/%&|^~!<>()])
    )""", re.VERBOSE)

_BINARY_RANK = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<>": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
                "+": 4, "-": 4, "|": 5, "&": 5, "^": 5, "!": 5,
                "*": 6, "/": 6, "%": 6, "<<": 6, ">>": 6}


def tokenize(text: str, intel: bool) -> list[tuple[str, object]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _EXPRESSION_TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ExpressionError(f"junk in expression: '{text[position:].strip()}'")
        position = match.end()
        kind = match.lastgroup
        value = match.group(kind)
        if kind in NUMBER_KINDS and len(value) > MAX_NUMBER_CHARACTERS:
            raise ExpressionError(f"number too large ({len(value)} digits)")
        if kind == "hex":
            tokens.append(("num", int(value, 16)))
        elif kind == "bin":
            tokens.append(("num", int(value[2:], 2)))
        elif kind == "intelhex":
            if not intel:
                raise ExpressionError(f"bad number '{value}'")
            tokens.append(("num", int(value[:-1], 16)))
        elif kind == "dec":
            # GNU as: a leading zero means octal.
            if len(value) > 1 and value[0] == "0":
                if not all(c in "01234567" for c in value):
                    raise ExpressionError(f"bad octal number '{value}'")
                tokens.append(("num", int(value, 8)))
            else:
                tokens.append(("num", int(value)))
        elif kind == "local":
            tokens.append(("local", value))
        elif kind == "char":
            body = value[1:-1] if len(value) > 2 and value.endswith("'") and value[1:-1] else value[1:]
            tokens.append(("num", unescape(body)[0] if body else 0))
        elif kind == "name":
            tokens.append(("name", value))
        else:
            tokens.append(("op", value))
    return tokens


class ExpressionParser:
    """Precedence climbing over tokens; ``leaf`` turns names into nodes."""

    def __init__(self, tokens, leaf: Callable[[str, str], tuple]):
        self.tokens = tokens
        self.position = 0
        self.leaf = leaf

    def parse(self) -> tuple:
        if not self.tokens:
            raise ExpressionError("missing expression")
        node = self._binary(1)
        if self.position != len(self.tokens):
            raise ExpressionError(f"junk at end of expression: '{self._describe()}'")
        return node

    def _describe(self) -> str:
        return " ".join(str(value) for _kind, value in self.tokens[self.position:])

    def _peek(self):
        return self.tokens[self.position] if self.position < len(self.tokens) else (None, None)

    def _binary(self, min_rank: int) -> tuple:
        left = self._unary()
        while True:
            kind, value = self._peek()
            rank = _BINARY_RANK.get(value) if kind == "op" else None
            if rank is None or rank < min_rank:
                return left
            self.position += 1
            right = self._binary(rank + 1)
            left = ("binary", value, left, right)

    def _unary(self) -> tuple:
        kind, value = self._peek()
        if kind is None:
            raise ExpressionError("missing operand in expression")
        self.position += 1
        if kind == "num":
            return ("num", value)
        if kind in ("name", "local"):
            return self.leaf(kind, value)
        if value == "(":
            node = self._binary(1)
            if self._peek() != ("op", ")"):
                raise ExpressionError("missing ')' in expression")
            self.position += 1
            return node
        if value in ("-", "+", "~", "!"):
            return ("unary", value, self._unary())
        raise ExpressionError(f"unexpected '{value}' in expression")


_MASK64 = (1 << 64) - 1


def signed64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


def apply_unary(op: str, value: int) -> int:
    if op == "-":
        return signed64(-value)
    if op == "+":
        return value
    if op == "~":
        return signed64(~value)
    return 0 if value else 1                                     # "!"


def apply_binary(op: str, left: int, right: int) -> int:
    if op in ("/", "%"):
        if right == 0:
            raise ExpressionError("division by zero")
        quotient = abs(left) // abs(right) * (1 if (left < 0) == (right < 0) else -1)   # C truncation
        return signed64(quotient if op == "/" else left - quotient * right)
    comparisons = {"==": left == right, "!=": left != right, "<>": left != right, "<": left < right,
                   "<=": left <= right, ">": left > right, ">=": left >= right}
    if op in comparisons:
        return -1 if comparisons[op] else 0
    if op == "&&":
        return 1 if left and right else 0
    if op == "||":
        return 1 if left or right else 0
    if op == "<<":
        return signed64(left << right) if 0 <= right < 64 else 0
    if op == ">>":
        return signed64((left & _MASK64) >> right) if 0 <= right < 64 else 0
    results = {"+": lambda: left + right, "-": lambda: left - right, "*": lambda: left * right,
               "|": lambda: left | right, "&": lambda: left & right, "^": lambda: left ^ right,
               "!": lambda: left | ~right}
    return signed64(results[op]())
