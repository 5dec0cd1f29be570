"""Read runbook text (YAML or JSON — JSON is YAML) keeping the source line of every key and item.

Lint reports ``file:line``; the model keeps each step's line. One parse gives both the data and a map
from a path such as ``("mainSteps", 2, "onFailure")`` to its 1-based line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]
#: Bounds on what a runbook can be (AWS's own runbooks have a few thousand values, nested < 20 deep).
MAX_NODES = 200_000
MAX_DEPTH = 100
MAX_CHARS = 5_000_000


class SourceError(ValueError):
    """The text is not YAML/JSON; ``line`` is where the parser gave up (1-based) when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Source:
    """Parsed text: the data, the line of every path, and keys written twice in one mapping.

    YAML loaders keep the last of two equal keys silently; an author who wrote ``inputs:`` twice loses
    the first block, so lint reports ``duplicates`` (path of the repeated key, its line).
    """

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    duplicates: list[tuple[Path, int]] = field(default_factory=list)

    def index(self, root: yaml.Node) -> None:
        """Record the line of every path, iteratively and within ``MAX_NODES``/``MAX_DEPTH``.

        YAML aliases make the node graph a DAG whose expansion can be exponential (a "billion laughs"
        document); counting expanded nodes bounds every later walk over the data too.
        """
        todo: list[tuple[yaml.Node, Path]] = [(root, ())]
        visited = 0
        while todo:
            node, path = todo.pop()
            visited += 1
            if visited > MAX_NODES:
                raise SourceError(
                    f"the document expands to more than {MAX_NODES} values (YAML aliases?); "
                    "a runbook is far smaller"
                )
            if len(path) > MAX_DEPTH:
                raise SourceError(
                    f"values are nested more than {MAX_DEPTH} levels deep", node.start_mark.line + 1
                )
            self.lines.setdefault(path, node.start_mark.line + 1)
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, value_node in node.value:
                    key = (
                        key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
                    )
                    if key in seen:
                        self.duplicates.append(((*path, key), key_node.start_mark.line + 1))
                    seen.add(key)
                    self.lines[(*path, key)] = key_node.start_mark.line + 1
                    todo.append((value_node, (*path, key)))
            elif isinstance(node, yaml.SequenceNode):
                todo.extend((item, (*path, number)) for number, item in enumerate(node.value))


def load_source(content: str | bytes) -> Source:
    """Parse ``content`` (YAML or JSON). Raises ``SourceError`` on a syntax error.

    JSON allows tabs as whitespace where YAML does not; a JSON document indented with tabs (AWS accepts
    those) is read again with each tab as a space, which keeps every line number. A tab inside a JSON
    string must be escaped, so no value changes.
    """
    try:
        text = content.decode("utf-8") if isinstance(content, bytes) else content
    except UnicodeDecodeError as exc:
        raise SourceError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    try:
        return _load(text)
    except SourceError:
        if "\t" in text and text.lstrip().startswith(("{", "[")):
            return _load(text.replace("\t", " "))
        raise


def _check_flow_depth(text: str) -> None:
    """Refuse ``[[[[...`` nesting before PyYAML's scanner, which is quadratic in it (seconds at 5,000).

    Brackets inside strings count too, so the bound is generous: net depth over ``2 * MAX_DEPTH``.
    """
    depth = 0
    for line_number, line in enumerate(text.splitlines(), start=1):
        for char in line:
            if char in "[{":
                depth += 1
                if depth > 2 * MAX_DEPTH:
                    raise SourceError(f"values are nested more than {MAX_DEPTH} levels deep", line_number)
            elif char in "]}":
                depth = max(0, depth - 1)


def _load(text: str) -> Source:
    if len(text) > MAX_CHARS:
        raise SourceError(
            f"the text has {len(text)} characters, more than {MAX_CHARS}; a runbook is far smaller"
        )
    _check_flow_depth(text)
    try:
        loader = yaml.SafeLoader(text)  # its reader refuses control characters right here
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise SourceError(f"not valid YAML/JSON: character {exc.character!r} is not allowed", line) from exc
    try:
        node = loader.get_single_node()
        if node is None:
            return Source(None)
        source = Source(None)
        source.index(node)  # bounds the size before anything walks the data
        source.data = loader.construct_document(node)
    except SourceError:
        raise
    except RecursionError as exc:
        raise SourceError("values are nested too deeply to read") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = mark.line + 1 if mark is not None else None
        raise SourceError(f"not valid YAML/JSON: {exc.problem or exc}", where) from exc
    except yaml.YAMLError as exc:
        raise SourceError(f"not valid YAML/JSON: {exc}") from exc
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a timestamp such as 2021-13-45
        raise SourceError(f"not valid YAML/JSON: a value cannot be read ({exc})") from exc
    finally:
        loader.dispose()
    return source


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path``, or of its nearest ancestor present in the source."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def format_path(path: Path) -> str:
    """``("mainSteps", 0, "inputs")`` -> ``mainSteps[0].inputs``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
