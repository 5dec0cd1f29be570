"""allowedPattern with Java's meaning (java.util.regex.Pattern), and never a crash or a hang."""

from __future__ import annotations

import time

import pytest

from airflow_ssm_delegate.documents.javaregex import MATCH_TIMEOUT, PatternError, java_search, translate
from airflow_ssm_delegate.documents.parameters import pattern_problem


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        (r"^\p{L}+$", "Ünïcödé", "abc1"),  # Unicode letter category
        (r"^[\w-\/]+$", "a-b/c_d", "a.b"),  # '-' after a class escape is a literal in Java
        (r"^a++a$", None, "aaa"),  # possessive: gives nothing back, so never matches
        (r"^(?>a+)a$", None, "aaa"),  # atomic group
        (r"^\p{Lower}+$", "abc", "é"),  # POSIX classes are US-ASCII only in Java
        (r"^\p{javaLowerCase}+$", "é", "A"),  # java.lang.Character classes are Unicode
        (r"^\P{Upper}$", "a", "A"),
        (r"^[\p{Punct}]$", "!", "a"),
        (r"^\Qa.b\E$", "a.b", "axb"),  # quoting
        (r"^\x{41}\0101\cA\e$", "AA\x01\x1b", "AA"),
        (r"^[a-z&&[^aeiou]]+$", "bcd", "bad"),  # intersection
        (r"^[a-d[m-p]]+$", "amp", "az"),  # union
        (r"^[a||b]$", "|", "c"),  # '||' is two literal bars in a Java class
        (r"^(?<n>a)\k<n>$", "aa", "ab"),  # named group and back reference
        (r"ab\Z", "ab\n", "abc"),  # \Z: before a final line terminator
        (r"ab\z", "ab", "ab\n"),  # \z: only at the very end
        (r"^\u0041\u00e9$", "Aé", "Ae"),
        # an escaped surrogate pair is one supplementary code point, in a class range too
        (r"^[\u0020-\uD7FF\uD800\uDC00-\uDBFF\uDFFF]+$", "asg \U0001f600", "\t"),
        (r"^\uD83D\uDE00$", "\U0001f600", "\ud83d"),
    ],
)
def test_java_constructs_mean_what_java_means(pattern: str, matching: str | None, not_matching: str) -> None:
    if matching is not None:
        assert java_search(pattern, matching)
    assert not java_search(pattern, not_matching)


def test_patterns_are_found_anywhere_unless_anchored() -> None:
    assert java_search("ami-", "xx-ami-1")
    assert not java_search("^ami-", "xx-ami-1")


@pytest.mark.parametrize(
    ("pattern", "said"),
    [
        ("(", "missing )"),
        ("^[a-z+$", "unterminated character set"),
        ("abc\\", "lone backslash"),
        (r"\x{zz}", "hexadecimal digits"),
        (r"\0", "octal digit"),
        (r"\u00g1", "4 hexadecimal digits"),
        (r"\k<name", "not closed"),
        ("a" * 20_000, "more than 10000"),
        (r"\p{NoSuchProperty}", "unknown property"),
    ],
)
def test_a_pattern_that_cannot_compile_is_a_clear_problem(pattern: str, said: str) -> None:
    problem = pattern_problem(pattern)
    assert problem is not None and said in problem
    with pytest.raises(PatternError):
        java_search(pattern, "x")


def test_catastrophic_backtracking_is_a_clear_error_not_a_hang() -> None:
    started = time.monotonic()
    with pytest.raises(PatternError, match="took over"):
        java_search(r"^(a|aa)+$", "a" * 60 + "b")
    # regex checks its limit coarsely (and this machine is shared): bounded, not exact
    assert time.monotonic() - started < MATCH_TIMEOUT * 30


def test_translation_leaves_plain_patterns_alone() -> None:
    pattern = r"^arn:(aws|aws-cn|aws-us-gov):iam::\d{12}:role/[\w+=,.@-]+$"
    assert translate(pattern) == pattern
