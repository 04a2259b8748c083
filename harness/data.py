"""Training data: slices of ultrachat_200k (or a local copy in its layout) as JSON Lines.

The pipeline takes exactly what the notebook's download-dataset.py writes: one
``{split}.jsonl`` per split, cut with ``datasets.load_dataset(source, split="...[0%:N%]")``.
Every row is checked here, before any resource exists, because a bad row otherwise shows up
an hour later as a failed preprocessing step in the cloud. ``datasets`` is imported inside the
functions that load data: it costs about a second, and the plugin imports this module.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from harness.errors import DataError
from harness.files import write_atomic
from harness.scoring import ROLES, conversation_problem, describe

SPLITS = ("train_sft", "test_sft", "train_gen", "test_gen")
TRAINING_SPLITS = ("train_sft", "test_sft")  # what the fine-tune job trains and evaluates on
HUB_DATASET = "HuggingFaceH4/ultrachat_200k"
SHIPPED_DATASET = Path(__file__).resolve().parent / "resources" / "ultrachat_mini"
LAYOUT = "data/{split}-00000-of-00001.parquet (or .jsonl) for " + ", ".join(SPLITS)
LISTED_INVALID = 20
MESSAGE_SHAPE = '{"role": string, "content": string} objects'


@dataclass(frozen=True)
class PreparedData:
    """Where the JSON Lines files are; plain values so it can cross processes under xdist."""

    directory: str
    files: dict[str, str]
    counts: dict[str, int]
    dropped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "files": dict(self.files),
            "counts": dict(self.counts),
            "dropped": list(self.dropped),
        }

    def training_files(self) -> tuple[str, str]:
        """The train_sft and test_sft JSON Lines files, checked before a job is submitted on
        either backend (the Azure job uploads them, the local job reads them)."""
        files = [self.files.get(split, "") for split in TRAINING_SPLITS]
        missing = [
            f"{split} ({path or 'not prepared'})"
            for split, path in zip(TRAINING_SPLITS, files, strict=True)
            if not Path(path).is_file()
        ]
        if missing:
            raise DataError(
                f"prepared data in {self.directory} lacks {', '.join(missing)}; expected the "
                "JSON Lines files written by harness.data.prepare; prepare the data again"
            )
        return files[0], files[1]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> PreparedData:
        missing = [key for key in ("directory", "files", "counts") if key not in raw]
        if missing:
            raise DataError(
                f"prepared-data record lacks {', '.join(missing)}; found keys "
                f"{sorted(raw)}; delete the shared state and prepare the data again"
            )
        return cls(
            directory=str(raw["directory"]),
            files={str(k): str(v) for k, v in raw["files"].items()},
            counts={str(k): int(v) for k, v in raw["counts"].items()},
            dropped=[str(line) for line in raw.get("dropped", [])],
        )


def percent_text(percent: float) -> str:
    """5.0 -> "5", 0.5 -> "0.5": exact, so a split spec never silently rounds the slice."""
    value = float(percent)
    if value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def split_spec(split: str, percent: float) -> str:
    """The notebook's slice, e.g. ``train_sft[0%:5%]``."""
    return f"{split}[0%:{percent_text(percent)}%]"


def check_percent(percent: float) -> None:
    if not (math.isfinite(percent) and 0 < percent <= 100):
        raise DataError(
            f"dataset percent {percent!r} is outside (0, 100]; pass "
            "--dataset-percent with a value above 0 and at most 100"
        )


def _looks_local(source: str) -> bool:
    """Mirrors datasets: more than one slash, or an absolute/dotted path, is never a hub id."""
    return (
        source.startswith((".", "~"))
        or os.path.isabs(source)
        or "\\" in source
        or source.count("/") > 1
    )


def resolve_source(source: str) -> str:
    """An existing directory becomes absolute; anything else must look like a hub id."""
    path = Path(source).expanduser()
    if not source.strip():
        raise DataError(
            f"dataset is empty; pass --dataset with the hub id {HUB_DATASET} or a "
            f"local directory in the ultrachat_200k layout ({LAYOUT})"
        )
    if path.is_dir():
        return str(path.resolve())
    if path.exists():
        raise DataError(
            f"dataset {source!r} is a file ({path.resolve()}); expected a directory "
            f"in the ultrachat_200k layout ({LAYOUT}); pass --dataset with one"
        )
    if _looks_local(source):
        raise DataError(
            f"dataset directory {source!r} does not exist (resolved to "
            f"{path.resolve()}); expected a directory in the ultrachat_200k layout "
            f"({LAYOUT}); pass --dataset with an existing directory, e.g. "
            f"{SHIPPED_DATASET}, or the hub id {HUB_DATASET}"
        )
    return source


def _split_argument(split: str, percent: float) -> Any:
    """datasets' string grammar takes whole percents only; a fraction needs a ReadInstruction."""
    if float(percent).is_integer():
        return split_spec(split, percent)
    import datasets

    return datasets.ReadInstruction(split, from_=0, to=float(percent), unit="%")


def _next_step(source: str, error: BaseException) -> str:
    if isinstance(error, ConnectionError):
        return (
            f"the Hugging Face Hub is unreachable or offline mode is on (HF_HUB_OFFLINE, "
            f"HF_DATASETS_OFFLINE) and the dataset is not in the cache; use --dataset with a "
            f"local directory in the ultrachat_200k layout ({LAYOUT}), e.g. {SHIPPED_DATASET}"
        )
    if "Unknown split" in str(error):
        return f"the dataset must hold every split in the ultrachat_200k layout ({LAYOUT})"
    if os.path.isdir(source):
        return (
            f"a data file could not be read ({_root_cause(error)}); check the files of "
            f"the ultrachat_200k layout ({LAYOUT})"
        )
    return (
        f"check the hub id, or use --dataset with a local directory in the ultrachat_200k "
        f"layout ({LAYOUT})"
    )


def _root_cause(error: BaseException) -> str:
    """The innermost exception of a chain: datasets wraps the reader's error in its own."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"


def _load_split(
    source: str, split: str, percent: float, cache_dir: Path | None
) -> list[dict[str, Any]]:
    """An empty slice is returned as no rows, so it is reported like any other empty split."""
    import datasets

    try:
        loaded = datasets.load_dataset(
            source,
            split=_split_argument(split, percent),
            cache_dir=str(cache_dir) if cache_dir else None,
        )
    except ValueError as error:
        if "corresponds to no data" in str(error):
            return []
        raise DataError(
            f"cannot load {split_spec(split, percent)} from dataset {source!r}: "
            f"{type(error).__name__}: {error}; {_next_step(source, error)}"
        ) from error
    except (OSError, datasets.exceptions.DatasetsError) as error:
        raise DataError(
            f"cannot load {split_spec(split, percent)} from dataset {source!r}: "
            f"{type(error).__name__}: {error}; {_next_step(source, error)}"
        ) from error
    rows: list[dict[str, Any]] = loaded.to_list()
    return rows


def listed(problems: Sequence[str]) -> str:
    """The first LISTED_INVALID problems, one per indented line, then how many more there
    are: a dataset with thousands of bad rows still gives a message one can read."""
    lines = "".join(f"\n  {problem}" for problem in problems[:LISTED_INVALID])
    more = len(problems) - LISTED_INVALID
    return lines + (f"\n  ... and {more} more" if more > 0 else "")


def validate_row(row: Mapping[str, Any]) -> str | None:
    """Why a row cannot train or score a chat model, or None when it can."""
    prompt_id = row.get("prompt_id")
    if not isinstance(prompt_id, str) or not prompt_id.strip():
        return f"prompt_id is {describe(prompt_id)}; expected a non-empty string"
    if not isinstance(row.get("prompt"), str):
        return f"prompt is {describe(row.get('prompt'))}; expected a string"
    return conversation_problem(row.get("messages"))


def _clean(row: Mapping[str, Any]) -> dict[str, Any]:
    """Only the ultrachat schema goes to the pipeline, whatever else a local copy holds."""
    messages = [{"content": m["content"], "role": m["role"]} for m in row["messages"]]
    return {"prompt": row["prompt"], "prompt_id": row["prompt_id"], "messages": messages}


def _check_split(split: str, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    kept, invalid = [], []
    for index, row in enumerate(rows):
        reason = validate_row(row)
        if reason is None:
            kept.append(_clean(row))
        else:
            invalid.append(f"{split} row {index}: {reason}")
    return kept, invalid


def _invalid_message(source: str, percent: float, invalid: list[str]) -> str:
    return (
        f"dataset {source} at {percent_text(percent)}% has {len(invalid)} invalid row(s) "
        f"(row numbers count from 0 within each split):{listed(invalid)}\n"
        f"expected every row to have a non-empty prompt_id and messages with roles in "
        f"{', '.join(ROLES)}, non-empty content and a user turn; fix the rows, or pass "
        f"--allow-invalid-rows to drop them"
    )


def _loaded_text(count: int) -> str:
    return "no rows in the slice" if count == 0 else f"all {count} loaded row(s) invalid"


def _require_rows(
    source: str, percent: float, loaded: Mapping[str, list[Any]], kept: Mapping[str, list[Any]]
) -> None:
    empty = [f"{split} ({_loaded_text(len(loaded[split]))})" for split in SPLITS if not kept[split]]
    if empty:
        raise DataError(
            f"dataset {source} at {percent_text(percent)}% leaves no usable rows in "
            f"{'; '.join(empty)}; expected at least one row per split; pass a larger "
            f"--dataset-percent or use a dataset with more rows"
        )


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Written atomically, so a reader (another xdist worker) never sees half a file."""
    write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(
            f"cannot read JSON Lines file {path}: {error}; prepare the data again "
            "(harness.data.prepare)"
        ) from error
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path} line {number} is not valid JSON ({error.msg}); expected one "
                "JSON object per line; prepare the data again"
            ) from error
        if not isinstance(row, dict):
            raise DataError(
                f"{path} line {number} is a JSON {type(row).__name__}; expected one "
                "JSON object per line; prepare the data again"
            )
        rows.append(row)
    return rows


def prepare(
    source: str,
    percent: float,
    out_dir: Path,
    allow_invalid: bool = False,
    *,
    cache_dir: Path | None = None,
) -> PreparedData:
    """Loads ``percent`` of every split, validates all rows, then writes ``{split}.jsonl``.

    All invalid rows are reported in one error, so one run shows everything to fix. Nothing is
    written unless every split loads and keeps at least one row. ``cache_dir`` overrides the
    datasets cache (default: under ``HF_HOME`` for a hub id, where reuse saves a download; a
    throwaway directory for a local one, so runs leave no copies behind); offline mode is the
    caller's choice.
    """
    check_percent(percent)
    resolved = resolve_source(source)
    if Path(resolved).is_dir():
        from harness.dataset_files import check_data_files  # it imports this module's rules

        check_data_files(Path(resolved))
    with tempfile.TemporaryDirectory(prefix="harness-datasets-") as scratch:
        if cache_dir is None and Path(resolved).is_dir():
            cache_dir = Path(scratch)
        loaded = {split: _load_split(resolved, split, percent, cache_dir) for split in SPLITS}
    kept: dict[str, list[dict[str, Any]]] = {}
    invalid: list[str] = []
    for split in SPLITS:
        kept[split], problems = _check_split(split, loaded[split])
        invalid += problems
    if invalid and not allow_invalid:
        raise DataError(_invalid_message(resolved, percent, invalid))
    _require_rows(resolved, percent, loaded, kept)
    out = Path(out_dir).resolve()
    files = {split: str(out / f"{split}.jsonl") for split in SPLITS}
    for split in SPLITS:
        write_jsonl(Path(files[split]), kept[split])
    return PreparedData(str(out), files, {s: len(kept[s]) for s in SPLITS}, invalid)


def _ending_with_user(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The conversation up to its last user turn: what a client would send to the endpoint."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    return [{"role": m["role"], "content": m["content"]} for m in messages[: last + 1]]


@dataclass(frozen=True)
class ScoringCase:
    """A scoring request's conversation and the dataset's answer to it (None if it has none)."""

    messages: list[dict[str, str]]
    reference: str | None


def _case(messages: list[dict[str, Any]]) -> ScoringCase:
    prompt = _ending_with_user(messages)
    after = messages[len(prompt)] if len(prompt) < len(messages) else None
    reference = after["content"] if after and after["role"] == "assistant" else None
    return ScoringCase(prompt, reference)


def scoring_samples(data: PreparedData, n: int) -> list[list[dict[str, str]]]:
    """The first ``n`` usable test_gen conversations, each cut to end with a user turn."""
    return [case.messages for case in scoring_cases(data, n)]


def scoring_cases(data: PreparedData, n: int) -> list[ScoringCase]:
    """The first ``n`` usable test_gen conversations, each cut to end with a user turn, with
    the assistant turn that answered it as the reference for the answer's quality score."""
    if n < 1:
        raise DataError(f"scoring sample count {n} is below 1; pass --scoring-samples 1 or more")
    path = data.files.get("test_gen")
    if path is None:
        raise DataError(
            f"prepared data in {data.directory} has no test_gen file (found "
            f"{sorted(data.files)}); prepare the data again"
        )
    samples = []
    for row in read_jsonl(path):
        if validate_row(row) is None:
            samples.append(_case(row["messages"]))
        if len(samples) == n:
            return samples
    raise DataError(
        f"only {len(samples)} usable test_gen conversation(s) in {path}; expected "
        f"{n} for scoring; pass a smaller --scoring-samples or a larger "
        f"--dataset-percent"
    )
