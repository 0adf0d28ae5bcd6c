"""Source text -> statements: comments, line markers, ``;`` separators, quoting.

GNU as's lexical rules (as/app.c's scrubber): ``#`` and ``/* */`` comments,
``;`` between statements, cpp line markers carried so that every diagnostic
names the original file and line.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLine:
    """One statement: comments gone, ``;``-separated pieces apart."""
    filename: str
    line: int
    text: str


_LINE_MARKER = re.compile(r'#\s*(\d+)\s+"((?:[^"\\]|\\.)*)"')


def split_statements(text: str, filename: str, stdin_name: str | None = None) -> list[SourceLine]:
    """Statements of ``text`` with their original file and line.

    ``# N "file"`` lines (the C preprocessor's markers, which GNU as honours
    in any source) set the file and line of the next line.  ``#`` starts a
    comment, ``/* */`` comments may span lines, ``;`` separates statements;
    none of them count inside strings or character constants.
    """
    statements: list[SourceLine] = []
    current_file, next_line = filename, 1
    in_block_comment = False
    for raw in text.split("\n"):
        line_number = next_line
        next_line += 1
        if not in_block_comment and raw.startswith("#"):
            marker = _LINE_MARKER.match(raw)
            if marker:
                next_line = int(marker.group(1))
                name = marker.group(2)
                current_file = filename if name == (stdin_name or "<stdin>") else name
                continue
        if not in_block_comment and not any(ch in raw for ch in "\"'/"):
            # Fast path: nothing that needs a character scan.
            code = raw.split("#", 1)[0]
            pieces = code.split(";")
        else:
            pieces, in_block_comment = scan_line(raw, in_block_comment)
        for piece in pieces:
            piece = piece.strip()
            if piece:
                statements.append(SourceLine(current_file, line_number, piece))
    return statements


def scan_line(raw: str, in_block_comment: bool) -> tuple[list[str], bool]:
    pieces: list[str] = []
    current: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        if in_block_comment:
            end = raw.find("*/", i)
            if end < 0:
                break
            in_block_comment = False
            current.append(" ")
            i = end + 2
            continue
        ch = raw[i]
        if ch == '"':
            j = i + 1
            while j < n and raw[j] != '"':
                j += 2 if raw[j] == "\\" else 1
            current.append(raw[i:j + 1])
            i = j + 1
        elif ch == "'":
            # A character constant: 'c, 'c', '\n, '\'' (GNU as takes the
            # closing quote as optional).
            j = i + 1
            j += 2 if j < n and raw[j] == "\\" else 1
            if j < n and raw[j] == "'":
                j += 1
            current.append(raw[i:j])
            i = j
        elif raw.startswith("/*", i):
            in_block_comment = True
            i += 2
        elif ch == "#":
            break
        elif ch == ";":
            pieces.append("".join(current))
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    pieces.append("".join(current))
    return pieces, in_block_comment


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split at ``separator`` outside quotes and brackets (operands, arguments)."""
    parts, current, depth, i = [], [], 0, 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            current.append(text[i:j + 1])
            i = j + 1
            continue
        if ch == "'" and i + 1 < len(text):
            j = i + (3 if text[i + 1] == "\\" else 2)
            if j < len(text) and text[j] == "'":
                j += 1
            current.append(text[i:j])
            i = j
            continue
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


# GNU as 2.40's escapes (measured): no \a or \e -- an unknown escape is the character itself.
_ESCAPES = {"n": 10, "t": 9, "r": 13, "b": 8, "f": 12, "v": 11, "\\": 92, '"': 34, "'": 39}


def unescape(body: str) -> bytes:
    """The bytes of a GNU-as string body (C escapes, octal, ``\\x`` hex)."""
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\" or i + 1 >= len(body):
            out += ch.encode()
            i += 1
            continue
        ch = body[i + 1]
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
            i += 2
        elif ch in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i + 1:]).group(0)
            out.append(int(digits, 8) & 0xFF)
            i += 1 + len(digits)
        elif ch in "xX" and re.match(r"[0-9a-fA-F]", body[i + 2:i + 3]):
            digits = re.match(r"[0-9a-fA-F]+", body[i + 2:]).group(0)
            out.append(int(digits, 16) & 0xFF)          # GNU as reads every hex digit
            i += 2 + len(digits)
        else:
            out += ch.encode()
            i += 2
    return bytes(out)


def regular_file_size(path: str) -> int:
    """The size of ``path``, which must be a regular file (OSError otherwise).

    Opened with O_NONBLOCK and checked through the open file, so that a FIFO
    never blocks the assembler and a device such as /dev/zero is never read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        status = os.fstat(fd)
    finally:
        os.close(fd)
    if stat.S_ISDIR(status.st_mode):
        raise IsADirectoryError(21, "Is a directory")
    if not stat.S_ISREG(status.st_mode):
        raise OSError(0, "not a regular file")
    return status.st_size


def read_regular_file(path: str, offset: int, size_bytes: int) -> bytes:
    """``size_bytes`` from ``offset`` of a regular file, without reading the rest of it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        chunks, position, left = [], offset, size_bytes
        while left > 0:
            chunk = os.pread(fd, min(left, 1 << 20), position)
            if not chunk:
                raise OSError(0, "file shrank while being read")
            chunks.append(chunk)
            position += len(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
