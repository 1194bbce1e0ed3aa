"""Bounded YAML reading for every file and value a user hands the simulator.

`yaml.safe_load` trusts its input: a file that is not UTF-8 raises UnicodeDecodeError, a later
duplicate key silently wins, an alias bomb expands into all the memory there is, deep nesting ends
in RecursionError and an integer of thousands of digits in ValueError. Here each of those is a
`YamlInputError` naming the file (or `--set` key), the line and what is allowed, raised before
anything is expanded into memory:

- the file must be UTF-8 text (no NUL bytes, no UTF-16) and at most `max_bytes` long;
- nesting deeper than `MAX_DEPTH` levels is refused while the document is composed;
- aliases may repeat at most `MAX_ALIAS_NODES` nodes in all (counted on the node graph, with
  shared sub-trees sized once, so a bomb is measured, never expanded); an alias inside itself
  is refused;
- a key given twice in one mapping is refused with its dotted path and both line numbers;
- an integer longer than `MAX_INT_DIGITS` digits is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 32
MAX_ALIAS_NODES = 10_000
MAX_INT_DIGITS = 100
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlInputError(ValueError):
    """A file or value that is not acceptable YAML input; the message names where and why.

    `detail` is the message without the origin; `syntax` is true for text that is not YAML at all
    (rather than YAML beyond a limit)."""

    def __init__(self, origin: str, detail: str, *, syntax: bool = False) -> None:
        super().__init__(f"{origin}: {detail}")
        self.detail = detail
        self.syntax = syntax


class _Refused(yaml.YAMLError):
    """Raised inside the loader; turned into YamlInputError with the origin prefixed."""


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader with a nesting limit (checked while composing) and a digit limit on integers."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(
                    f"nested deeper than {MAX_DEPTH} levels (line {mark.line + 1}); "
                    "a scenario or topology needs a few"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: ScalarNode) -> int:
        digits = sum(ch.isdigit() for ch in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise _Refused(
                f"an integer of {digits} digits (line {node.start_mark.line + 1}); "
                f"numbers here have at most {MAX_INT_DIGITS} digits"
            )
        try:
            return int(super().construct_yaml_int(node))
        except ValueError as exc:
            raise _Refused(
                f"integer {str(node.value)[:40]!r} cannot be read "
                f"(line {node.start_mark.line + 1}): {exc}"
            ) from None


BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)


def _key_text(node: Node) -> str:
    return str(node.value) if isinstance(node, ScalarNode) else f"<{type(node).__name__}>"


def _check_graph(root: Node) -> None:
    """Duplicate keys (dotted path, both lines) and the total size aliases add (bombs)."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: Node, depth: int) -> int:
        # Nodes of the expanded tree under `node`, each shared sub-tree sized once.
        known = sizes.get(id(node))
        if known is not None:
            return known
        if depth > MAX_DEPTH:
            raise _Refused(
                f"aliases nest the document deeper than {MAX_DEPTH} levels "
                f"(line {node.start_mark.line + 1})"
            )
        if id(node) in visiting:
            raise _Refused(
                f"an alias refers to the node that contains it (line {node.start_mark.line + 1})"
            )
        visiting.add(id(node))
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        visiting.discard(id(node))
        sizes[id(node)] = total
        return total

    expanded = size(root, 1)
    distinct = len(sizes)
    if expanded - distinct > MAX_ALIAS_NODES:
        raise _Refused(
            f"aliases expand the document to more than {distinct + MAX_ALIAS_NODES:,} nodes "
            f"(an alias bomb?); aliases may repeat at most {MAX_ALIAS_NODES:,} nodes in all"
        )

    checked: set[int] = set()

    def walk(node: Node, path: str) -> None:
        if id(node) in checked:
            return
        checked.add(id(node))
        if isinstance(node, SequenceNode):
            for i, child in enumerate(node.value):
                walk(child, f"{path}[{i}]")
        elif isinstance(node, MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if key.tag == _MERGE_TAG:
                    walk(value, path)
                    continue
                name = _key_text(key)
                dotted = f"{path}.{name}" if path else name
                line = key.start_mark.line + 1
                seen = first.get((key.tag, name))
                if seen is not None:
                    raise _Refused(
                        f"duplicate key {dotted} (lines {seen} and {line}); "
                        "a key may appear once in its section: keep one"
                    )
                first[(key.tag, name)] = line
                walk(value, dotted)

    walk(root, "")


def load_text(text: str, origin: str, empty: Any = None) -> Any:
    """Parse one YAML document with the limits above; `empty` for an empty or comment-only text.

    Errors are `YamlInputError("{origin}: ...")`.
    """
    try:
        loader = BoundedLoader(text)  # its reader refuses control characters at once
    except yaml.YAMLError as exc:
        raise YamlInputError(origin, f"not valid YAML: {exc}", syntax=True) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return empty
        _check_graph(node)
        return loader.construct_document(node)
    except _Refused as exc:
        raise YamlInputError(origin, str(exc)) from None
    except yaml.YAMLError as exc:
        raise YamlInputError(origin, f"not valid YAML: {exc}", syntax=True) from None
    except RecursionError:
        raise YamlInputError(origin, "nested too deeply to read") from None
    finally:
        loader.dispose()


def read_text(path: Path, what: str, max_bytes: int, kind: str = "YAML text file") -> str:
    """The file as text, refused unless it is UTF-8 text of at most `max_bytes` bytes (a `what`
    being a `kind`: the messages say so)."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise YamlInputError(
                str(path), f"{size:,} bytes is not a {what} (at most {max_bytes:,} bytes)"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise YamlInputError(str(path), f"cannot read the {what} ({exc.strerror or exc})") from None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise YamlInputError(
            str(path),
            f"not UTF-8 text (it starts with a UTF-16 byte-order mark); save the {what} as UTF-8",
        )
    if b"\x00" in data:
        raise YamlInputError(
            str(path),
            f"not UTF-8 text (it holds NUL bytes: binary data?); a {what} is a {kind}",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlInputError(
            str(path),
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save the "
            f"{what} as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")
