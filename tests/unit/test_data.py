"""harness.data: slicing through `datasets`, row validation, JSON Lines, scoring samples.

`datasets` runs for real here, offline, on the shipped dataset and on small directories in the
ultrachat_200k layout that the tests write; only the hub id is expected to fail.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness import data
from harness.errors import DataError
from tests.support.tools import load_tool

REPO = Path(__file__).resolve().parents[2]


def conversation(
    *turns: str, prompt_id: str | None = None, roles: Sequence[str] | None = None
) -> dict[str, Any]:
    """User and assistant alternate unless `roles` names every turn's role."""
    roles = roles or [("user", "assistant")[i % 2] for i in range(len(turns))]
    messages = [{"content": text, "role": role} for text, role in zip(turns, roles, strict=True)]
    prompt = turns[0]
    if prompt_id is None:
        prompt_id = hashlib.sha256(prompt.encode()).hexdigest()
    return {"prompt": prompt, "prompt_id": prompt_id, "messages": messages}


def valid_rows(split: str, count: int) -> list[dict[str, Any]]:
    return [conversation(f"{split} question {i}?", f"{split} answer {i}.") for i in range(count)]


def write_layout(
    root: Path, splits: Mapping[str, list[dict[str, Any]]], suffix: str = "parquet"
) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("prompt", pa.string()),
            ("prompt_id", pa.string()),
            ("messages", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
        ]
    )
    (root / "data").mkdir(parents=True)
    for split, rows in splits.items():
        path = root / "data" / f"{split}-00000-of-00001.{suffix}"
        if suffix == "parquet":
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
        else:
            path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return root


def shipped_rows() -> dict[str, list[dict[str, Any]]]:
    import pyarrow.parquet as pq

    folder = data.SHIPPED_DATASET / "data"
    return {
        split: pq.read_table(folder / f"{split}-00000-of-00001.parquet").to_pylist()
        for split in data.SPLITS
    }


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Offline hub, whatever the environment was when `datasets` was first imported."""
    import datasets
    import huggingface_hub.constants

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "datasets-cache"


def prepare(
    source: str | Path, percent: float, out: Path, cache: Path, allow_invalid: bool = False
) -> data.PreparedData:
    return data.prepare(str(source), percent, out, allow_invalid, cache_dir=cache)


# --- percent and source ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("percent", "text"),
    [
        (5, "5"),
        (5.0, "5"),
        (100.0, "100"),
        (0.5, "0.5"),
        (12.25, "12.25"),
        (1e-05, "0.00001"),
    ],
)
def test_percent_text_is_exact(percent: float, text: str) -> None:
    assert data.percent_text(percent) == text
    assert data.split_spec("train_sft", percent) == f"train_sft[0%:{text}%]"


@pytest.mark.parametrize("percent", [0, -1, 100.5, float("nan"), float("inf")])
def test_percent_outside_range_is_rejected(percent: float, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--dataset-percent"):
        data.prepare(str(data.SHIPPED_DATASET), percent, tmp_path)


@pytest.mark.parametrize(
    "source", ["./no-such-dataset", "/no/such/dataset", "a/b/c", "~/no-such-harness-dataset"]
)
def test_missing_local_directory_is_named(source: str) -> None:
    with pytest.raises(DataError, match="does not exist") as caught:
        data.resolve_source(source)
    assert repr(source) in str(caught.value)
    assert "--dataset" in str(caught.value)


def test_a_file_is_not_a_dataset_directory(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("{}\n")
    with pytest.raises(DataError, match="is a file"):
        data.resolve_source(str(path))


def test_hub_ids_pass_through_unchanged() -> None:
    assert data.resolve_source(data.HUB_DATASET) == data.HUB_DATASET


# --- the shipped dataset -----------------------------------------------------------------------


def test_shipped_dataset_is_valid_ultrachat() -> None:
    rows = shipped_rows()
    everything = [row for split in data.SPLITS for row in rows[split]]
    assert 300 <= len(everything) <= 400
    assert len({row["prompt_id"] for row in everything}) == len(everything)
    for row in everything:
        assert data.validate_row(row) is None
        assert row["prompt_id"] == hashlib.sha256(row["prompt"].encode()).hexdigest()
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
        assert 2 <= len(roles) <= 6 and row["prompt"] == row["messages"][0]["content"]
    first = rows["train_sft"][0]["messages"]
    assert [m["content"] for m in first] == [
        "What is the capital of France?",
        "The capital of France is Paris.",
    ]
    size = sum(p.stat().st_size for p in (data.SHIPPED_DATASET / "data").iterdir())
    assert size < 1_000_000


def test_generator_reproduces_the_shipped_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_tool("make_dataset", monkeypatch)
    import pyarrow.parquet as pq

    module.main(["--out", str(tmp_path)])
    shipped = data.SHIPPED_DATASET
    assert (tmp_path / "README.md").read_text() == (shipped / "README.md").read_text()
    for split in data.SPLITS:
        name = f"data/{split}-00000-of-00001.parquet"
        made, kept = pq.read_table(tmp_path / name), pq.read_table(shipped / name)
        assert made.schema == kept.schema and made.to_pylist() == kept.to_pylist(), (
            f"{name} differs from the generator's output: run python tools/make_dataset.py"
        )


@pytest.mark.parametrize("percent", [100, 50, 2.5])
def test_prepare_slices_every_split(percent: float, offline: Path, tmp_path: Path) -> None:
    rows = shipped_rows()
    prepared = prepare(data.SHIPPED_DATASET, percent, tmp_path / "out", offline)
    expected = {split: round(len(rows[split]) * percent / 100) for split in data.SPLITS}
    assert prepared.counts == expected
    assert prepared.dropped == []
    assert prepared.directory == str((tmp_path / "out").resolve())
    for split in data.SPLITS:
        assert prepared.files[split] == str(tmp_path.resolve() / "out" / f"{split}.jsonl")
        written = data.read_jsonl(prepared.files[split])
        assert written == rows[split][: expected[split]]
        assert all(list(row) == ["prompt", "prompt_id", "messages"] for row in written)


def test_relative_directory_is_made_absolute(
    offline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_layout(tmp_path / "mini", {s: valid_rows(s, 2) for s in data.SPLITS})
    monkeypatch.chdir(tmp_path)
    assert data.resolve_source("mini") == str(tmp_path.resolve() / "mini")
    prepared = prepare("mini", 100, Path("out"), offline)
    assert prepared.counts == dict.fromkeys(data.SPLITS, 2)
    assert Path(prepared.directory).is_absolute()


def test_jsonl_files_in_the_hub_layout_load(offline: Path, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", {s: valid_rows(s, 4) for s in data.SPLITS}, "jsonl")
    prepared = prepare(source, 50, tmp_path / "out", offline)
    assert prepared.counts == dict.fromkeys(data.SPLITS, 2)
    assert data.read_jsonl(prepared.files["test_gen"]) == valid_rows("test_gen", 2)


# --- data files that cannot load: file, line and field named, before `datasets` runs ---------


def layout_with_line(tmp_path: Path, line: str, number: int = 3) -> tuple[Path, Path]:
    """A JSON Lines layout whose test_sft file has ``line`` as line ``number``."""
    source = write_layout(tmp_path / "src", {s: valid_rows(s, 4) for s in data.SPLITS}, "jsonl")
    path = source / "data" / "test_sft-00000-of-00001.jsonl"
    lines = path.read_text().splitlines()
    lines[number - 1] = line
    path.write_text("\n".join(lines) + "\n")
    return source, path


def with_field(path: str, value: Any) -> str:
    """A valid row as one JSON line, with one field (``messages.0.content``) replaced."""
    row: Any = conversation("Why?", "Because.")
    keys = path.split(".")
    target = row
    for key in keys[:-1]:
        target = target[int(key) if key.isdigit() else key]
    last = keys[-1]
    target[int(last) if last.isdigit() else last] = value
    return json.dumps(row)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"prompt": "x", oops', "is not JSON (Expecting property name enclosed in double quotes"),
        ("[1, 2]", "is a JSON list; expected an object"),
        (with_field("messages", "hello"), "field messages is str 'hello'; expected a list"),
        (with_field("prompt_id", 5), "field prompt_id is int 5; expected a string"),
        (with_field("prompt", ["q"]), "field prompt is list ['q']; expected a string"),
        (
            with_field("messages.0.content", 3),
            "field messages[0].content is int 3; expected a string",
        ),
        (with_field("messages.1", "hi"), "field messages[1] is str 'hi'; expected an object"),
        (
            with_field("messages.0.role", True),
            "field messages[0].role is bool True; expected a string",
        ),
    ],
)
@pytest.mark.parametrize("allow_invalid", [False, True])
def test_a_line_that_cannot_load_names_file_line_and_field(
    offline: Path, tmp_path: Path, line: str, problem: str, allow_invalid: bool
) -> None:
    source, path = layout_with_line(tmp_path, line)
    with pytest.raises(DataError) as caught:
        prepare(source, 100, tmp_path / "out", offline, allow_invalid=allow_invalid)
    message = str(caught.value)
    assert f"{path} line 3: {problem}" in message
    assert "fix" in message and len(message.splitlines()) < 10
    assert caught.value.__cause__ is None  # no chained datasets traceback
    assert not (tmp_path / "out").exists()


def test_every_unloadable_line_is_listed_at_once(offline: Path, tmp_path: Path) -> None:
    source, path = layout_with_line(tmp_path, "nope", 1)
    path.write_text(path.read_text() + "\n" + with_field("prompt_id", 9) + "\n")
    with pytest.raises(DataError) as caught:
        prepare(source, 100, tmp_path / "out", offline)
    assert f"{path} line 1: is not JSON" in str(caught.value)
    assert f"{path} line 6: field prompt_id is int 9" in str(caught.value)


def test_a_long_list_of_unloadable_lines_is_cut_as_invalid_rows_are(tmp_path: Path) -> None:
    from harness.dataset_files import check_data_files

    source, path = layout_with_line(tmp_path, "nope", 1)
    path.write_text(path.read_text() + "nope\n" * (data.LISTED_INVALID + 4))
    with pytest.raises(DataError) as caught:
        check_data_files(source)
    message = str(caught.value)
    assert "25 line(s) or column(s) that cannot load" in message
    assert message.count(": is not JSON") == data.LISTED_INVALID
    assert "\n  ... and 5 more\n" in message


def test_arrays_nulls_and_blank_lines_load_and_rows_are_judged(
    offline: Path, tmp_path: Path
) -> None:
    source, path = layout_with_line(tmp_path, with_field("messages.0.content", None), 2)
    path.write_text(path.read_text() + "\n")  # a blank line
    jsonl = source / "data" / "train_gen-00000-of-00001.jsonl"
    rows = data.read_jsonl(jsonl)
    jsonl.unlink()
    array = jsonl.with_suffix(".json")  # one JSON array of rows, which datasets reads too
    array.write_text(json.dumps(rows, indent=2))
    prepared = prepare(source, 100, tmp_path / "out", offline, allow_invalid=True)
    assert prepared.dropped == [
        "test_sft row 1: message 0 content is missing; expected a non-empty string"
    ]
    assert prepared.counts["train_gen"] == 4
    array.write_text(json.dumps([rows[0], {**rows[1], "prompt_id": 5}], indent=2))
    with pytest.raises(DataError, match=r"\.json item 1: field prompt_id is int 5"):
        prepare(source, 100, tmp_path / "out2", offline)


def test_a_file_datasets_cannot_read_is_named_by_its_cause(offline: Path, tmp_path: Path) -> None:
    splits = {s: valid_rows(s, 3) for s in data.SPLITS}
    splits["test_sft"][0]["extra"], splits["test_sft"][2]["extra"] = 1, {"a": 1}
    source = write_layout(tmp_path / "src", splits, "jsonl")
    with pytest.raises(DataError) as caught:
        prepare(source, 100, tmp_path / "out", offline)
    message = str(caught.value)
    assert "a data file could not be read (" in message and "every split" not in message


def test_a_parquet_column_of_the_wrong_type_names_file_and_column(
    offline: Path, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = write_layout(tmp_path / "src", {s: valid_rows(s, 2) for s in data.SPLITS})
    path = source / "data" / "train_gen-00000-of-00001.parquet"
    pq.write_table(pa.table({"prompt": ["q"], "prompt_id": [5], "messages": [["hi"]]}), path)
    with pytest.raises(DataError) as caught:
        prepare(source, 100, tmp_path / "out", offline)
    message = str(caught.value)
    assert f"{path}: column prompt_id has type int64; expected a string" in message
    assert f"{path}: column messages has type list<" in message
    assert 'string>; expected a list of {"role": string' in message


# --- loading failures --------------------------------------------------------------------------


def test_hub_id_fails_fast_offline(offline: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        prepare(data.HUB_DATASET, 5, tmp_path / "out", offline)
    message = str(caught.value)
    assert "train_sft[0%:5%]" in message and repr(data.HUB_DATASET) in message
    assert "ConnectionError" in message and "--dataset with a local directory" in message
    assert not (tmp_path / "out").exists()


def test_missing_split_names_it(offline: Path, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", {s: valid_rows(s, 2) for s in data.SPLITS[:3]})
    with pytest.raises(DataError, match=r"test_gen\[0%:100%\]") as caught:
        prepare(source, 100, tmp_path / "out", offline)
    assert "Unknown split" in str(caught.value) and "every split" in str(caught.value)


# --- invalid rows ------------------------------------------------------------------------------


def splits_with_invalid_rows() -> dict[str, list[dict[str, Any]]]:
    splits = {split: valid_rows(split, 3) for split in data.SPLITS}
    splits["train_sft"][1]["messages"] = []
    splits["train_sft"][2]["messages"][1]["role"] = "bot"
    splits["test_sft"][0]["messages"][1]["content"] = ""
    splits["train_gen"][1] = conversation("Only an answer.", roles=("assistant",))
    splits["test_gen"][1]["prompt_id"] = ""
    splits["test_gen"][2]["messages"][0]["content"] = None
    return splits


EXPECTED_INVALID = [
    "train_sft row 1: messages is list []; expected a non-empty list",
    "train_sft row 2: message 1 role is 'bot'; expected one of assistant, system, user",
    "test_sft row 0: message 1 content is empty; expected a non-empty string",
    "train_gen row 1: no message has role 'user'; expected at least one user turn",
    "test_gen row 1: prompt_id is empty; expected a non-empty string",
    "test_gen row 2: message 0 content is missing; expected a non-empty string",
]


def test_invalid_rows_fail_in_one_error(offline: Path, tmp_path: Path) -> None:
    source = write_layout(tmp_path / "src", splits_with_invalid_rows())
    with pytest.raises(DataError) as caught:
        prepare(source, 100, tmp_path / "out", offline)
    message = str(caught.value)
    assert "6 invalid row(s)" in message and "--allow-invalid-rows" in message
    assert all(line in message for line in EXPECTED_INVALID)
    assert not (tmp_path / "out").exists()


def test_allow_invalid_drops_and_lists_them(offline: Path, tmp_path: Path) -> None:
    splits = splits_with_invalid_rows()
    source = write_layout(tmp_path / "src", splits)
    prepared = prepare(source, 100, tmp_path / "out", offline, allow_invalid=True)
    assert prepared.dropped == EXPECTED_INVALID
    assert prepared.counts == {"train_sft": 1, "test_sft": 2, "train_gen": 2, "test_gen": 1}
    assert data.read_jsonl(prepared.files["test_gen"]) == [splits["test_gen"][0]]


def test_long_lists_of_invalid_rows_are_cut(offline: Path, tmp_path: Path) -> None:
    splits = {split: valid_rows(split, 1) for split in data.SPLITS}
    splits["train_sft"] += [conversation(f"q{i}", "a", prompt_id="") for i in range(25)]
    source = write_layout(tmp_path / "src", splits)
    with pytest.raises(DataError) as caught:
        prepare(source, 100, tmp_path / "out", offline)
    message = str(caught.value)
    assert "train_sft row 20:" in message and "train_sft row 21:" not in message
    assert "... and 5 more" in message and "25 invalid row(s)" in message


def test_a_split_left_empty_is_an_error(offline: Path, tmp_path: Path) -> None:
    splits = {split: valid_rows(split, 3) for split in data.SPLITS}
    splits["test_gen"] = [conversation("q", "a", prompt_id="")] * 2
    source = write_layout(tmp_path / "src", splits)
    with pytest.raises(DataError, match=r"test_gen \(all 2 loaded row\(s\) invalid\)"):
        prepare(source, 100, tmp_path / "out", offline, allow_invalid=True)
    with pytest.raises(DataError, match=r"train_sft \(no rows in the slice\).*--dataset-percent"):
        prepare(source, 10, tmp_path / "out", offline)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"prompt": "q", "messages": [{"role": "user", "content": "q"}]}, "prompt_id is missing"),
        ({"prompt": "q", "prompt_id": 7, "messages": []}, "prompt_id is int 7"),
        ({"prompt_id": "x", "messages": [{"role": "user", "content": "q"}]}, "prompt is missing"),
        ({"prompt": "q", "prompt_id": "x", "messages": "q"}, "messages is str 'q'"),
        ({"prompt": "q", "prompt_id": "x", "messages": None}, "messages is missing"),
        ({"prompt": "q", "prompt_id": "x", "messages": ["q"]}, "message 0 is str 'q'"),
        (
            {"prompt": "q", "prompt_id": "x", "messages": [{"content": "q"}]},
            "message 0 role is None",
        ),
        (
            {"prompt": "q", "prompt_id": "x", "messages": [{"role": "user", "content": "  "}]},
            "message 0 content is empty",
        ),
        (
            {
                "prompt": "q",
                "prompt_id": "x",
                "messages": [{"role": "system", "content": "Be brief."}],
            },
            "no message has role 'user'",
        ),
    ],
)
def test_validate_row_reasons(row: dict[str, Any], reason: str) -> None:
    found = data.validate_row(row)
    assert found is not None and found.startswith(reason)


def test_validate_row_accepts_a_system_turn() -> None:
    row = conversation("Be brief.", "Hi", "Hello!", roles=("system", "user", "assistant"))
    assert data.validate_row(row) is None


# --- JSON Lines, the handle, scoring samples ---------------------------------------------------


def prepared_with_test_gen(tmp_path: Path, rows: list[dict[str, Any]]) -> data.PreparedData:
    path = tmp_path / "test_gen.jsonl"
    data.write_jsonl(path, rows)
    return data.PreparedData(str(tmp_path), {"test_gen": str(path)}, {"test_gen": len(rows)})


def test_scoring_samples_end_with_a_user_turn(tmp_path: Path) -> None:
    rows = [
        conversation("Only an answer.", roles=("assistant",)),
        conversation(
            "Be brief.",
            "Capital of Peru?",
            "Lima.",
            "And Chile?",
            "Santiago.",
            roles=("system", "user", "assistant", "user", "assistant"),
        ),
        {"prompt": "broken", "prompt_id": "", "messages": []},
        conversation("What is 2 + 2?", "4."),
        conversation("Last one?", "Yes."),
    ]
    prepared = prepared_with_test_gen(tmp_path, rows)
    assert data.scoring_samples(prepared, 2) == [
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of Peru?"},
            {"role": "assistant", "content": "Lima."},
            {"role": "user", "content": "And Chile?"},
        ],
        [{"role": "user", "content": "What is 2 + 2?"}],
    ]
    with pytest.raises(DataError, match=r"only 3 usable test_gen .*expected 4"):
        data.scoring_samples(prepared, 4)
    with pytest.raises(DataError, match="--scoring-samples 1 or more"):
        data.scoring_samples(prepared, 0)


def test_scoring_cases_keep_the_reference_answer(tmp_path: Path) -> None:
    rows = [
        conversation(
            "Be brief.",
            "Capital of Peru?",
            "Lima.",
            "And Chile?",
            "Santiago.",
            roles=("system", "user", "assistant", "user", "assistant"),
        ),
        conversation("Hello?", "Hi.", "Unanswered?", roles=("user", "assistant", "user")),
    ]
    cases = data.scoring_cases(prepared_with_test_gen(tmp_path, rows), 2)
    assert [case.reference for case in cases] == ["Santiago.", None]
    assert [case.messages[-1]["content"] for case in cases] == ["And Chile?", "Unanswered?"]


def test_read_jsonl_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3 is a JSON list"):
        data.read_jsonl(path)
    path.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2 is not valid JSON"):
        data.read_jsonl(path)
    with pytest.raises(DataError, match="cannot read JSON Lines file"):
        data.read_jsonl(tmp_path / "missing.jsonl")


def test_prepared_data_round_trips_through_json() -> None:
    prepared = data.PreparedData(
        "/d",
        {"test_gen": "/d/test_gen.jsonl"},
        {"test_gen": 3},
        ["train_sft row 1: no message has role 'user'"],
    )
    assert data.PreparedData.from_dict(json.loads(json.dumps(prepared.to_dict()))) == prepared
    with pytest.raises(DataError, match="lacks files, counts"):
        data.PreparedData.from_dict({"directory": "/d"})


def test_importing_the_module_does_not_import_datasets() -> None:
    code = "import sys, harness.data; assert 'datasets' not in sys.modules, 'datasets imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
