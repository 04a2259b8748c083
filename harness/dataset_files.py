"""Checks of a local dataset's files before ``datasets`` reads them.

``datasets`` fails on the first bad line of a JSON Lines file without naming it (or names
another split), and quietly turns a number into text; these checks read every file in
``data/`` first and name every line, item or column that cannot load as the ultrachat schema.
The rules for what a loaded row must hold are in ``harness.data``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.data import MESSAGE_SHAPE, listed
from harness.errors import DataError
from harness.scoring import describe


def _field_problem(row: Mapping[str, Any]) -> str | None:
    """A field whose JSON type stops the row from loading (or makes datasets convert it).

    Missing and null values load; validate_row judges them with the other rows.
    """
    for name in ("prompt", "prompt_id"):
        if not isinstance(row.get(name), str | None):
            return f"field {name} is {describe(row[name])}; expected a string"
    messages = row.get("messages")
    if not isinstance(messages, list | None):
        return f"field messages is {describe(messages)}; expected a list of {MESSAGE_SHAPE}"
    for index, message in enumerate(messages or []):
        if not isinstance(message, dict | None):
            return f"field messages[{index}] is {describe(message)}; expected an object"
        for key in ("role", "content"):
            value = (message or {}).get(key)
            if not isinstance(value, str | None):
                return f"field messages[{index}].{key} is {describe(value)}; expected a string"
    return None


def _line_problem(raw: bytes) -> str | None:
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        return f"is not UTF-8 text ({error.reason} at byte {error.start})"
    except json.JSONDecodeError as error:
        return f"is not JSON ({error.msg} at column {error.colno})"
    except RecursionError:
        return "is not JSON that can be read (nested too deeply)"
    if not isinstance(row, dict):
        return f"is a JSON {type(row).__name__}; expected an object"
    return _field_problem(row)


def _json_problems(path: Path) -> list[str]:
    """A .json file holds one array of rows (datasets reads that too) or JSON Lines."""
    with path.open("rb") as handle:
        starts_as_array = handle.read(4096).lstrip().startswith(b"[")
    if not starts_as_array:
        return _jsonl_problems(path)
    try:
        rows = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as error:
        return [f"{path}: is not a JSON array of rows ({error})"]
    problems = []
    for index, row in enumerate(rows):
        problem = (
            _field_problem(row)
            if isinstance(row, dict)
            else f"is a JSON {type(row).__name__}; expected an object"
        )
        if problem:
            problems.append(f"{path} item {index}: {problem}")
    return problems


def _jsonl_problems(path: Path) -> list[str]:
    problems = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            problem = _line_problem(raw) if raw.strip() else None
            if problem:
                problems.append(f"{path} line {number}: {problem}")
    return problems


def _is_text(kind: Any) -> bool:
    import pyarrow.types as pat

    return bool(pat.is_string(kind) or pat.is_large_string(kind) or pat.is_null(kind))


def _is_messages(kind: Any) -> bool:
    import pyarrow.types as pat

    if pat.is_null(kind):
        return True
    if not (pat.is_list(kind) or pat.is_large_list(kind)):
        return False
    item = kind.value_type
    if pat.is_null(item):
        return True
    return bool(pat.is_struct(item)) and all(
        _is_text(item.field(key).type)
        for key in ("role", "content")
        if item.get_field_index(key) >= 0
    )


def _parquet_problems(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, ValueError) as error:
        return [f"{path}: is not a Parquet file ({error})"]
    problems = [
        f"{path}: column {name} has type {schema.field(name).type}; expected a string"
        for name in ("prompt", "prompt_id")
        if name in schema.names and not _is_text(schema.field(name).type)
    ]
    if "messages" in schema.names and not _is_messages(schema.field("messages").type):
        problems.append(
            f"{path}: column messages has type {schema.field('messages').type}; "
            f"expected a list of {MESSAGE_SHAPE}"
        )
    return problems


def check_data_files(directory: Path) -> None:
    """A local dataset's files in data/ can load as the ultrachat schema, or one DataError
    naming every file, line and field that cannot. Without this, datasets fails on the first
    bad line without naming it (or in another split's name), or turns a number into text."""
    folder = directory / "data"
    problems: list[str] = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.suffix == ".jsonl":
            problems += _jsonl_problems(path)
        elif path.suffix == ".json":
            problems += _json_problems(path)
        elif path.suffix == ".parquet":
            problems += _parquet_problems(path)
    if problems:
        raise DataError(
            f"dataset {directory} has {len(problems)} line(s) or column(s) that cannot load:"
            f"{listed(problems)}\nexpected one JSON object per line (or Parquet columns) with "
            f"prompt and prompt_id strings and messages, a list of {MESSAGE_SHAPE}; fix them "
            "(--allow-invalid-rows drops rows that load but are invalid, not these)"
        )
