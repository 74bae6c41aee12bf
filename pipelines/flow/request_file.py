"""Reading a request file an adversary may have written: bounded before the YAML parser sees it.

A deletion request is a few hundred bytes of flat YAML. Anything far larger, nested deeper, or using
aliases to expand ("billion laughs") is refused with a named error before it can cost time or memory,
and no error message ever quotes more than `ECHO_LIMIT` characters of what the file contained.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

MAX_REQUEST_BYTES = 1024 * 1024  # 1 MiB: a real request is well under 4 KiB
MAX_DEPTH = 16  # a request nests 3 levels (method.params.<value>); lists of paths add one
MAX_ALIASES = 16  # aliases are legal YAML, but a request needs few if any
MAX_NODES = 10_000  # scalars, lists and mappings after expanding aliases
ECHO_LIMIT = 80


# Defined here, not in pipelines/flow/request.py (which re-exports it), so that reading a request file imports
# no model kind, torch or MLOps tool: the CLI answers an already-decided request with this module alone.
class RequestError(ValueError):
    """The request file is unreadable or does not match the schema; the message names the field."""


class RequestFileTooLargeError(RequestError):
    """The request file is larger than MAX_REQUEST_BYTES; refused before it is parsed."""


class RequestStructureError(RequestError):
    """The request YAML nests too deeply, uses too many aliases or expands to too many nodes."""


def bounded(value: Any, limit: int = ECHO_LIMIT) -> str:
    """repr(value) cut to `limit` characters, saying how much was cut: safe to put in an error message."""
    if isinstance(value, (str, bytes)) and len(value) > 4 * limit:
        value = value[: 4 * limit]  # never repr a huge string just to cut it
    text = repr(value) if not isinstance(value, (dict, list, tuple, set)) else f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters shown of more)"


def read_request_text(path: Path) -> str:
    """The file's text, refused with RequestFileTooLargeError when over the cap (checked before reading it all)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            content = handle.read(MAX_REQUEST_BYTES + 1)
    except OSError as error:
        raise RequestError(f"cannot read request file {path}: {error.strerror}") from error
    check_size(content, str(path))
    return content.decode(errors="replace")


def request_file_digest(path: Path) -> tuple[bytes, str]:
    """The file's first MAX_REQUEST_BYTES + 1 bytes (all a valid request can be) and the sha256 of the whole
    file, read in chunks, so a multi-GB file costs neither memory nor a full read into a string. A missing
    file gives (b"", sha256 of nothing): the flow then refuses it at load request, naming the path."""
    digest, head = hashlib.sha256(), b""
    try:
        with Path(path).open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                if len(head) <= MAX_REQUEST_BYTES:
                    head += chunk[: MAX_REQUEST_BYTES + 1 - len(head)]
                digest.update(chunk)
    except OSError:
        pass
    return head, digest.hexdigest()


def raw_request_id(text: str) -> str | None:
    """The request id of a request that failed validation, when one can still be read, for the audit."""
    try:
        raw = load_yaml(text)
    except (yaml.YAMLError, RequestError):
        return None
    value = raw.get("request_id") if isinstance(raw, dict) else None
    return str(value) if isinstance(value, (str, int)) else None


def check_size(content: bytes | str, source: str) -> None:
    size = len(content.encode() if isinstance(content, str) else content)
    if size > MAX_REQUEST_BYTES:
        raise RequestFileTooLargeError(
            f"{source}: request file is larger than {MAX_REQUEST_BYTES} bytes (the limit; a request is a few hundred): "
            "refused without parsing"
        )


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting and alias-heavy documents while composing, before any object
    is constructed (construction and validation are where an alias bomb would blow up)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise RequestStructureError(f"more than {MAX_ALIASES} YAML aliases (*name): refused")
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise RequestStructureError(f"nested deeper than {MAX_DEPTH} levels: refused")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_expansion(root: yaml.Node) -> None:
    """Count nodes as construction would see them (an alias counts its whole anchor again), up to MAX_NODES."""
    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise RequestStructureError(f"expands to more than {MAX_NODES} values (aliases repeat their anchor): refused")
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))


def load_yaml(text: str, source: str = "request") -> Any:
    """Parse request YAML within the size, depth, alias and expansion limits; raises RequestError subclasses."""
    check_size(text, source)
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_expansion(root)
        return loader.construct_document(root)
    except RequestStructureError as error:
        raise RequestStructureError(f"{source}: {error}") from None
    except RecursionError:
        raise RequestStructureError(f"{source}: nested too deeply to parse: refused") from None
    finally:
        loader.dispose()
