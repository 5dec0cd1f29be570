"""``allowedPattern`` as AWS evaluates it: a Java regular expression (java.util.regex), run by ``regex``.

The ``regex`` package in its VERSION1 mode already reads most of Java's syntax the Java way: ``\\p{L}``
and other Unicode properties, scripts (``\\p{IsLatin}``) and blocks (``\\p{InGreek}``), possessive
quantifiers, atomic groups, nested classes (``[a-d[m-p]]``) and intersections (``[a-z&&[^aeiou]]``),
``(?<name>...)``, and a ``-`` after a class escape as a literal (``[\\w-\\/]``). ``translate`` rewrites the
few Java constructs it lacks or reads differently (java.util.regex.Pattern, "Summary of regular-expression
constructs"):

- ``\\Q...\\E`` quoting, ``\\x{h...h}``, ``\\0ooo`` octal, ``\\cX`` control, ``\\e`` escape, ``\\k<name>``,
  and escaped surrogate pairs (``\\uD83D\\uDE00`` is one code point);
- the POSIX classes, which Java defines over US-ASCII only (``\\p{Lower}`` is ``[a-z]``, not Unicode);
- the ``java.lang.Character`` classes (``\\p{javaLowerCase}`` ...);
- ``\\Z`` (Java: before a final line terminator; ``regex``: only at the very end);
- inside a class, ``||``, ``--`` and ``~~`` are literal characters in Java but set operators in VERSION1.

Matching uses a time limit, so a catastrophically backtracking pattern is a clear error, never a hang.
"""

from __future__ import annotations

from functools import lru_cache

import regex

#: How long one allowedPattern may take on one value before we give up (seconds).
MATCH_TIMEOUT = 0.5
#: A pattern longer than this is refused before compiling (AWS's own patterns are under 1,000 characters).
MAX_PATTERN_CHARS = 10_000

_POSIX = {  # java.util.regex.Pattern, "POSIX character classes (US-ASCII only)"
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": "\\x00-\\x7F",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": "!-/:-@\\[-`{-~",
    "Graph": "!-~",
    "Print": " -~",
    "Blank": " \\t",
    "Cntrl": "\\x00-\\x1F\\x7F",
    "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0B\\f\\r",
}
_JAVA_CHARACTER = {  # java.util.regex.Pattern, "java.lang.Character classes"
    "javaLowerCase": "\\p{Lowercase}",
    "javaUpperCase": "\\p{Uppercase}",
    "javaWhitespace": "\\t\\n\\x0B\\f\\r\\x1C-\\x1F\\p{Zs}\\p{Zl}\\p{Zp}",
    "javaMirrored": "\\p{Bidi_Mirrored}",
    "javaLetter": "\\p{L}",
    "javaDigit": "\\p{Nd}",
    "javaLetterOrDigit": "\\p{L}\\p{Nd}",
    "javaAlphabetic": "\\p{Alphabetic}",
    "javaIdeographic": "\\p{Ideographic}",
    "javaTitleCase": "\\p{Lt}",
    "javaSpaceChar": "\\p{Z}",
    "javaISOControl": "\\x00-\\x1F\\x7F-\\x9F",
    "javaDefined": "\\P{Cn}",
}
_SET_OPERATORS = frozenset({"|", "-", "~"})


class PatternError(ValueError):
    """The pattern cannot be evaluated; the message says where and why."""


def _char(code: int) -> str:
    """One code point as an escape ``regex`` reads the same inside and outside a class."""
    return f"\\U{code:08x}" if code > 0xFFFF else f"\\u{code:04x}"


def _property(name: str, negated: bool) -> str | None:
    """A Java property the ``regex`` package lacks or reads differently, as a class; None to keep it."""
    body = _POSIX.get(name) or _JAVA_CHARACTER.get(name)
    if body is None:
        return None
    return f"[{'^' if negated else ''}{body}]"


def _quoted(pattern: str, start: int) -> tuple[str, int]:
    """``\\Q...\\E`` from ``start`` (just after ``\\Q``): the escaped text and the index after ``\\E``."""
    end = pattern.find("\\E", start)
    text = pattern[start:] if end < 0 else pattern[start:end]
    return "".join(_char(ord(c)) if not c.isalnum() else c for c in text), (
        len(pattern) if end < 0 else end + 2
    )


def _hex4(pattern: str, i: int) -> int | None:
    """The code unit of a ``\\uhhhh`` escape at ``pattern[i]``, or None when there is none."""
    digits = pattern[i + 2 : i + 6]
    if (
        pattern.startswith("\\u", i)
        and len(digits) == 4
        and all(c in "0123456789abcdefABCDEF" for c in digits)
    ):
        return int(digits, 16)
    return None


def _unicode(pattern: str, i: int) -> tuple[str, int]:
    """``\\uhhhh``; a high surrogate escaped right before a low one is one supplementary code point,
    as Java's Pattern reads it: ``[\\uD800\\uDC00-\\uDBFF\\uDFFF]`` (AWSDocs-ScaleLoadBalanced) is
    U+10000-U+10FFFF, where read one unit at a time it is a bad range."""
    high = _hex4(pattern, i)
    if high is None:
        raise PatternError(f"\\u at position {i} needs 4 hexadecimal digits")
    low = _hex4(pattern, i + 6) if 0xD800 <= high <= 0xDBFF else None
    if low is not None and 0xDC00 <= low <= 0xDFFF:
        return _char(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), i + 12
    return _char(high), i + 6


def _escape(pattern: str, i: int) -> tuple[str, int]:
    """The escape at ``pattern[i]`` (a backslash) translated, and the index after it."""
    if i + 1 >= len(pattern):
        raise PatternError(f"the pattern ends with a lone backslash at position {i}")
    letter = pattern[i + 1]
    if letter == "Q":
        return _quoted(pattern, i + 2)
    if letter == "e":
        return _char(0x1B), i + 2
    if letter == "c" and i + 2 < len(pattern):
        return _char(ord(pattern[i + 2]) ^ 0x40), i + 3
    if letter == "Z":
        return "(?=(?:\\r\\n|[\\n\\r\\u0085\\u2028\\u2029])?\\z)", i + 2
    if letter == "x" and pattern.startswith("{", i + 2):
        end = pattern.find("}", i + 3)
        digits = pattern[i + 3 : end] if end > 0 else ""
        if not digits or len(digits) > 6 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise PatternError(f"\\x{{...}} at position {i} needs 1-6 hexadecimal digits")
        return _char(int(digits, 16)), end + 1
    if letter == "u":
        return _unicode(pattern, i)
    if letter == "0":
        digits = ""
        for c in pattern[i + 2 : i + 5]:
            if c not in "01234567":
                break
            digits += c
        if len(digits) == 3 and digits[0] > "3":  # Java: \0mnn with m <= 3, else two digits
            digits = digits[:2]
        if not digits:
            raise PatternError(f"\\0 at position {i} needs an octal digit (Java: \\0n, \\0nn, \\0mnn)")
        return _char(int(digits, 8)), i + 2 + len(digits)
    if letter == "k" and pattern.startswith("<", i + 2):
        end = pattern.find(">", i + 3)
        if end < 0:
            raise PatternError(f"\\k<name> at position {i} is not closed with '>'")
        return f"(?P={pattern[i + 3 : end]})", end + 1
    if letter in "pP" and pattern.startswith("{", i + 2):
        end = pattern.find("}", i + 3)
        if end > 0:
            replaced = _property(pattern[i + 3 : end], negated=letter == "P")
            if replaced is not None:
                return replaced, end + 1
    return pattern[i : i + 2], i + 2


def translate(pattern: str) -> str:
    """The Java ``pattern`` in the syntax of ``regex`` VERSION1 (see the module docstring)."""
    out: list[str] = []
    depth = 0  # nesting of character classes
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            text, i = _escape(pattern, i)
            out.append(text)
            continue
        if c == "[":
            depth += 1
            out.append(c)
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            continue
        if c == "]" and depth:
            depth -= 1
        elif depth and c in _SET_OPERATORS and i + 1 < len(pattern) and pattern[i + 1] == c:
            out.append("\\" + c)  # literal in Java; an operator (||, --, ~~) in VERSION1
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


@lru_cache(maxsize=512)
def compile_java(pattern: str) -> regex.Pattern[str]:
    """Compile a Java regular expression; raises ``PatternError`` (never ``regex.error``) when it can't."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"the pattern has {len(pattern)} characters, more than {MAX_PATTERN_CHARS}")
    try:
        return regex.compile(translate(pattern), regex.VERSION1)
    except regex.error as exc:
        raise PatternError(str(exc)) from exc
    except (ValueError, OverflowError, RecursionError, MemoryError) as exc:
        raise PatternError(f"{type(exc).__name__}: {exc}") from exc


def java_search(pattern: str, value: str) -> bool:
    """Does ``pattern`` find a match in ``value`` (Java ``Matcher.find``)? Raises ``PatternError``.

    Patterns carry their own ``^``/``$`` anchors, as every AWS-published runbook writes them; an
    unanchored pattern matches anywhere, the lenient reading (we never refuse a value AWS accepts).
    """
    compiled = compile_java(pattern)
    try:
        return compiled.search(value, timeout=MATCH_TIMEOUT) is not None
    except TimeoutError as exc:
        raise PatternError(
            f"matching took over {MATCH_TIMEOUT:g} s (catastrophic backtracking); simplify the pattern"
        ) from exc
