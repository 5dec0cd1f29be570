"""Read runbook text (YAML or JSON — JSON is YAML) keeping the source line of every key and item.

Lint reports ``file:line``; the model keeps each step's line. One parse gives both the data and a map
from a path such as ``("mainSteps", 2, "onFailure")`` to its 1-based line.
"""

from __future__ import annotations

from typing import Any

import yaml

Path = tuple[str | int, ...]


class SourceError(ValueError):
    """The text is not YAML/JSON; ``line`` is where the parser gave up (1-based) when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _index_lines(node: yaml.Node, path: Path, lines: dict[Path, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines)


def load_with_lines(content: str | bytes) -> tuple[Any, dict[Path, int]]:
    """Parse ``content``; returns (data, {path: line}). Raises ``SourceError`` on a syntax error."""
    try:
        text = content.decode("utf-8") if isinstance(content, bytes) else content
    except UnicodeDecodeError as exc:
        raise SourceError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = mark.line + 1 if mark is not None else None
        raise SourceError(f"not valid YAML/JSON: {exc.problem or exc}", where) from exc
    except yaml.YAMLError as exc:
        raise SourceError(f"not valid YAML/JSON: {exc}") from exc
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    _index_lines(node, (), lines)
    return data, lines


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path``, or of its nearest ancestor present in the source."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None
