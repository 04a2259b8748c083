"""Generates harness/resources/ultrachat_mini, the shipped dataset in the ultrachat_200k layout.

The harness must run end to end with no network, so it ships a small dataset of its own. The
content lives in tools/dataset_source/ (hand-written conversations, fact tables, the dataset
card); this script only turns it into conversations, assigns them to the four splits with a
fixed seed and writes parquet files, so the output is the same on every run.

    python tools/make_dataset.py [--out DIRECTORY]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TOOLS = Path(__file__).resolve().parent
SOURCE = TOOLS / "dataset_source"
DEFAULT_OUT = TOOLS.parent / "harness" / "resources" / "ultrachat_mini"
SEED = 200_000
SPLITS = ("train_sft", "test_sft", "train_gen", "test_gen")
HELD_OUT = {"test_gen": 40, "test_sft": 40, "train_gen": 120}  # train_sft takes the rest
# Countries whose capital is asked the canonical way in train_sft and re-phrased at the head
# of test_gen, so the first scoring samples have an answer the training data teaches.
ANCHORS = ("France", "Japan", "Italy", "Germany", "Spain")
SCHEMA = pa.schema(
    [
        ("prompt", pa.string()),
        ("prompt_id", pa.string()),
        ("messages", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
    ]
)


@dataclass(frozen=True)
class Conversation:
    """Alternating turns, user first; `pin` forces a split (train_sft, or the head of test_gen)."""

    turns: tuple[str, ...]
    pin: str | None = None


def conv(*turns: str, pin: str | None = None) -> Conversation:
    return Conversation(tuple(turns), pin)


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- hand-written conversations -------------------------------------------------------------


def parse_conversations(text: str) -> list[Conversation]:
    """Blank-line separated blocks of "U: "/"A: " lines; unprefixed lines continue a message."""
    return [parse_block(block) for block in text.split("\n\n") if has_messages(block)]


def has_messages(block: str) -> bool:
    return any(line.startswith(("U: ", "A: ")) for line in block.splitlines())


def parse_block(block: str) -> Conversation:
    turns: list[str] = []
    expected = "U: "
    for line in block.splitlines():
        if line.startswith(("U: ", "A: ")):
            if not line.startswith(expected):
                raise ValueError(f"turns must alternate, user first; found {line[:60]!r}")
            turns.append(line[3:])
            expected = "A: " if expected == "U: " else "U: "
        elif turns:
            turns[-1] += "\n" + line
    if len(turns) % 2:
        raise ValueError(f"a conversation must end with an assistant turn: {turns[0][:60]!r}")
    return Conversation(tuple(turns))


# --- countries ------------------------------------------------------------------------------

CAPITAL_QUESTIONS = (
    "What is the capital of {c}?",
    "What is the capital of {c}?",
    "What's the capital city of {c}?",
    "Which city is the capital of {c}?",
    "Can you tell me the capital of {c}?",
    "What city is the capital of {c}?",
    "I'm making a geography quiz. What is the capital of {c}?",
    "Quick question: what's the capital of {c}?",
    "Do you know the capital of {c}?",
)
REVERSE_QUESTIONS = (
    "{cap} is the capital of which country?",
    "Which country has {cap} as its capital?",
    "{cap} is the capital of what country?",
)
WHERE_QUESTIONS = (
    "Which continent is it in?",
    "Where is {c} located?",
    "And which continent is that in?",
)
CURRENCY_QUESTIONS = (
    "What currency do they use there?",
    "What's the currency there?",
    "Which currency should I bring if I visit?",
)
LANGUAGE_QUESTIONS = (
    "What language do people speak there?",
    "Which languages are spoken there?",
    "What do people speak in {c}?",
)


def language_answer(country: str, languages: str) -> str:
    if " and " in languages:
        return f"The main languages spoken in {country} are {languages}."
    return f"The main language spoken in {country} is {languages}."


def country_follow_ups(row: Sequence[Any], rng: random.Random) -> list[tuple[str, str]]:
    country, _, where, currency, languages = row
    options = [(rng.choice(WHERE_QUESTIONS), f"{upper_first(country)} is in {where}.")]
    if currency:
        answer = rng.choice(
            (
                f"{upper_first(country)} uses {currency}.",
                f"The currency of {country} is {currency}.",
            )
        )
        options.append((rng.choice(CURRENCY_QUESTIONS), answer))
    if languages:
        options.append((rng.choice(LANGUAGE_QUESTIONS), language_answer(country, languages)))
    rng.shuffle(options)
    return [(q.format(c=country), a) for q, a in options[: rng.choice((0, 0, 1, 1, 2))]]


def country_conversation(row: Sequence[Any], rng: random.Random) -> Conversation:
    country, capital = row[0], row[1]
    anchored = country in ANCHORS
    question = CAPITAL_QUESTIONS[0] if anchored else rng.choice(CAPITAL_QUESTIONS)
    turns = [question.format(c=country), f"The capital of {country} is {capital}."]
    for follow_up in [] if anchored else country_follow_ups(row, rng):
        turns.extend(follow_up)
    return Conversation(tuple(turns), "train_sft" if anchored else None)


def country_rephrasing(row: Sequence[Any], rng: random.Random) -> Conversation:
    """A second question about a capital: re-phrased for anchors, reversed for the others."""
    country, capital = row[0], row[1]
    if country in ANCHORS:
        question = rng.choice(CAPITAL_QUESTIONS[2:]).format(c=country)
        return conv(question, f"The capital of {country} is {capital}.", pin="test_gen")
    question = rng.choice(REVERSE_QUESTIONS).format(cap=capital)
    return conv(question, f"{capital} is the capital of {country}.")


def country_conversations(rows: list[list[Any]], rng: random.Random) -> list[Conversation]:
    primary = [country_conversation(row, rng) for row in rows]
    others = [row for row in rows if row[0] not in ANCHORS]
    twice = [row for row in rows if row[0] in ANCHORS] + rng.sample(others, 6)
    return primary + [country_rephrasing(row, rng) for row in twice]


# --- elements, planets, books, paintings, events ---------------------------------------------


def element_conversation(row: Sequence[Any], rng: random.Random) -> Conversation:
    name, symbol, number, origin = row
    origin_note = f" It comes from {origin}." if origin else ""
    kind = rng.choice(("symbol", "symbol", "reverse", "number"))
    if kind == "reverse":
        return conv(
            f"Which element has the symbol {symbol}?",
            f"{symbol} is the chemical symbol for {name}.{origin_note}",
        )
    if kind == "number":
        question = rng.choice(
            (
                f"What is the atomic number of {name}?",
                f"How many protons does an atom of {name} have?",
            )
        )
        turns = [
            question,
            f"The atomic number of {name} is {number}, so each atom has "
            f"{number} proton{'s' if number > 1 else ''}.",
        ]
        follow = ("What's its chemical symbol?", f"Its chemical symbol is {symbol}.{origin_note}")
    else:
        question = rng.choice(
            (
                f"What is the chemical symbol for {name}?",
                f"What's the symbol for {name} on the periodic table?",
            )
        )
        turns = [question, f"The chemical symbol for {name} is {symbol}.{origin_note}"]
        follow = ("And what is its atomic number?", f"Its atomic number is {number}.")
    return Conversation(tuple(turns + (list(follow) if rng.random() < 0.4 else [])))


KIND_ANSWERS = {
    "rocky": "{p} is a rocky planet, with a solid surface of rock and metal.",
    "a gas giant": "{p} is a gas giant, made mostly of hydrogen and helium.",
    "an ice giant": "{p} is an ice giant: most of its mass is water, ammonia and methane "
    "around a rocky core.",
}


def planet_conversations(rows: list[list[Any]], rng: random.Random) -> list[Conversation]:
    found = [
        conv(
            "How many planets are there in the Solar System?",
            "There are eight planets in the Solar System: Mercury, Venus, Earth, Mars, "
            "Jupiter, Saturn, Uranus and Neptune.",
        )
    ]
    for planet, order, description, kind in rows:
        found.append(
            conv(
                f"Which is the {order} planet from the Sun?",
                f"{planet} is the {order} planet from the Sun.",
            )
        )
        if rng.random() < 0.5:
            found.append(
                conv(
                    f"Tell me something about {planet}.",
                    f"{planet} is the {order} planet from the Sun. It is {description}.",
                )
            )
        else:
            found.append(
                conv(
                    f"Is {planet} a rocky planet or a gas giant?",
                    KIND_ANSWERS[kind].format(p=planet),
                )
            )
    return found


def book_conversations(rows: list[list[Any]], rng: random.Random) -> list[Conversation]:
    found = []
    for title, author, year in rows:
        question = rng.choice(
            (
                f"Who wrote {title}?",
                f"Who is the author of {title}?",
                f"Who wrote the novel {title}?",
            )
        )
        turns = [question, f"{title} was written by {author}."]
        others = [(t, y) for t, a, y in rows if a == author and t != title]
        if others and rng.random() < 0.6:
            turns += [
                f"What else did {author} write?",
                f"{author} also wrote {others[0][0]}, published in {others[0][1]}.",
            ]
        elif rng.random() < 0.5:
            turns += ["When was it published?", f"{title} was first published in {year}."]
        else:
            turns[1] += f" It was first published in {year}."
        found.append(Conversation(tuple(turns)))
    return found


def painting_conversations(rows: list[list[Any]], rng: random.Random) -> list[Conversation]:
    return [
        conv(
            rng.choice((f"Who painted {title}?", f"Which artist painted {title}?")),
            f"{upper_first(title)} was painted by {artist}.",
        )
        for title, artist in rows
    ]


def event_conversations(rows: list[list[Any]], rng: random.Random) -> list[Conversation]:
    found = [conv(rng.choice(questions), answer) for questions, answer in rows]
    found += [
        conv(questions[1] if found[i].turns[0] == questions[0] else questions[0], answer)
        for i, (questions, answer) in enumerate(rows)
        if i % 5 == 0
    ]
    return found


# --- computed: unit conversions and arithmetic -----------------------------------------------

UNITS = (
    ("kilometres", "miles", 0.621371, (10, 42)),
    ("miles", "kilometres", 1.609344, (26, 100)),
    ("kilograms", "pounds", 2.20462, (5, 70)),
    ("pounds", "kilograms", 0.453592, (150,)),
    ("inches", "centimetres", 2.54, (12,)),
    ("feet", "metres", 0.3048, (6, 1000)),
    ("litres", "US gallons", 0.264172, (4,)),
)
CONVERSION_QUESTIONS = (
    "How many {to} is {v} {frm}?",
    "Convert {v} {frm} to {to}.",
    "What is {v} {frm} in {to}?",
)


def number_text(value: float) -> str:
    rounded = round(value, 2)
    return f"{rounded:,.2f}".rstrip("0").rstrip(".")


def unit_conversations(rng: random.Random) -> list[Conversation]:
    found = []
    for frm, to, factor, values in UNITS:
        for value in values:
            result = number_text(value * factor)
            about = "" if abs(round(value * factor, 2) - value * factor) < 1e-9 else "about "
            question = rng.choice(CONVERSION_QUESTIONS).format(v=f"{value:,}", frm=frm, to=to)
            turns = [question, f"{value:,} {frm} is {about}{result} {to}."]
            if rng.random() < 0.4:
                turns += [
                    "How do you work that out?",
                    f"Multiply the number of {frm} by {factor}: {value:,} × {factor} is "
                    f"{about}{result}.",
                ]
            found.append(Conversation(tuple(turns)))
    return found


def temperature_conversations() -> list[Conversation]:
    found = []
    for celsius in (0, 25, 37, 100, -40):
        fahrenheit = number_text(celsius * 9 / 5 + 32)
        found.append(
            conv(
                f"What is {celsius} degrees Celsius in Fahrenheit?",
                f"{celsius} °C is {fahrenheit} °F. To convert, multiply by 9/5 and "
                f"add 32: {celsius} × 9/5 + 32 = {fahrenheit}.",
            )
        )
    for degrees in (68, 212, 350):
        exact = (degrees - 32) * 5 / 9
        result, about, equals = number_text(exact), "", "="
        if not exact.is_integer():
            about, equals = "about ", "≈"
        found.append(
            conv(
                f"Convert {degrees} degrees Fahrenheit to Celsius.",
                f"{degrees} °F is {about}{result} °C. Subtract 32 and multiply by "
                f"5/9: ({degrees} − 32) × 5/9 {equals} {result}.",
            )
        )
    return found


def product_conversation(rng: random.Random, a: int, b: int) -> Conversation:
    question = rng.choice(
        (f"What is {a} times {b}?", f"What's {a} × {b}?", f"Can you multiply {a} by {b} for me?")
    )
    turns = [question, f"{a} times {b} is {a * b}."]
    if rng.random() < 0.4:
        turns += ["How can I check that?", f"Divide the result by {b}: {a * b} ÷ {b} = {a}."]
    return Conversation(tuple(turns))


ITEMS = ("jacket", "pair of running shoes", "desk lamp", "backpack", "bike helmet", "kettle")


def percent_conversation(percent: int, base: int, item: str | None) -> Conversation:
    part = base * percent // 100
    if item is None:
        return conv(
            f"What is {percent}% of {base}?",
            f"{percent}% of {base} is {part}. Multiply {base} by {percent} and divide by 100.",
        )
    return conv(
        f"A {item} costs {base} dollars and is {percent}% off. How much do I save?",
        f"You save {part} dollars, because {percent}% of {base} is {part}.",
        "So what will I pay?",
        f"You will pay {base - part} dollars: {base} − {part}.",
    )


def root_conversation(rng: random.Random, root: int) -> Conversation:
    if rng.random() < 0.6:
        return conv(
            f"What is the square root of {root * root}?",
            f"The square root of {root * root} is {root}, because {root} × {root} = {root * root}.",
        )
    return conv(f"What is {root} squared?", f"{root} squared is {root * root}.")


def average_conversation(rng: random.Random) -> Conversation:
    values = [rng.randint(2, 60) for _ in range(3)]
    values[2] += -sum(values) % 3
    listed = f"{values[0]}, {values[1]} and {values[2]}"
    return conv(
        f"What is the average of {listed}?",
        f"The average is {sum(values) // 3}: add them to get {sum(values)}, then divide by 3.",
    )


def arithmetic_conversations(rng: random.Random) -> list[Conversation]:
    """Operands are sampled without replacement so that no two prompts are the same."""
    pairs = rng.sample([(a, b) for a in range(12, 50) for b in range(3, 20)], 5)
    found = [product_conversation(rng, a, b) for a, b in pairs]
    shares = rng.sample(
        [(p, 20 * k) for p in (10, 15, 20, 25, 30, 40, 50, 75) for k in range(2, 16)], 7
    )
    items: list[str | None] = [None] * 4 + rng.sample(ITEMS, 3)
    found += [
        percent_conversation(p, base, item) for (p, base), item in zip(shares, items, strict=True)
    ]
    found += [root_conversation(rng, root) for root in rng.sample(range(4, 26), 4)]
    return found + [average_conversation(rng) for _ in range(2)]


# --- assembling and writing -------------------------------------------------------------------


def build_conversations(rng: random.Random) -> list[Conversation]:
    facts = json.loads((SOURCE / "facts.json").read_text(encoding="utf-8"))
    makers: list[Callable[[], list[Conversation]]] = [
        lambda: parse_conversations((SOURCE / "conversations.txt").read_text(encoding="utf-8")),
        lambda: country_conversations(facts["countries"], rng),
        lambda: [element_conversation(row, rng) for row in facts["elements"]],
        lambda: planet_conversations(facts["planets"], rng),
        lambda: book_conversations(facts["books"], rng),
        lambda: painting_conversations(facts["paintings"], rng),
        lambda: event_conversations(facts["events"], rng),
        lambda: unit_conversations(rng) + temperature_conversations(),
        lambda: arithmetic_conversations(rng),
    ]
    return [conversation for make in makers for conversation in make()]


def assign_splits(
    conversations: list[Conversation], rng: random.Random
) -> dict[str, list[Conversation]]:
    """Pinned conversations lead their split; the shuffled rest fill the held-out sizes."""
    rest = [c for c in conversations if c.pin is None]
    rng.shuffle(rest)
    splits = {name: [c for c in conversations if c.pin == name] for name in SPLITS}
    for name, size in HELD_OUT.items():
        take = size - len(splits[name])
        splits[name] += rest[:take]
        rest = rest[take:]
    splits["train_sft"] += rest
    return splits


def to_row(conversation: Conversation) -> dict[str, Any]:
    prompt = conversation.turns[0]
    roles = ("user", "assistant")
    messages = [
        {"content": text, "role": roles[i % 2]} for i, text in enumerate(conversation.turns)
    ]
    return {
        "prompt": prompt,
        "prompt_id": hashlib.sha256(prompt.encode()).hexdigest(),
        "messages": messages,
    }


def check_unique(rows: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for row in rows:
        if row["prompt_id"] in seen:
            raise ValueError(f"duplicate prompt across the dataset: {row['prompt']!r}")
        seen.add(row["prompt_id"])


def write_dataset(out: Path, splits: dict[str, list[Conversation]]) -> dict[str, int]:
    rows = {name: [to_row(c) for c in splits[name]] for name in SPLITS}
    check_unique([row for name in SPLITS for row in rows[name]])
    (out / "data").mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        table = pa.Table.from_pylist(rows[name], schema=SCHEMA)
        pq.write_table(table, out / "data" / f"{name}-00000-of-00001.parquet", compression="zstd")
    return {name: len(rows[name]) for name in SPLITS}


def write_card(out: Path, counts: dict[str, int]) -> None:
    table = "\n".join(f"| {name} | {count} |" for name, count in counts.items())
    table += f"\n| total | {sum(counts.values())} |"
    card = (SOURCE / "card.md").read_text(encoding="utf-8")
    (out / "README.md").write_text(
        card.replace("{split_table}", table).replace("{{", "{").replace("}}", "}"), encoding="utf-8"
    )


def main(argv: Sequence[str] | None = None) -> dict[str, int]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="dataset directory")
    out = parser.parse_args(argv).out
    rng = random.Random(SEED)
    counts = write_dataset(out, assign_splits(build_conversations(rng), rng))
    write_card(out, counts)
    print(f"wrote {sum(counts.values())} conversations to {out}: {counts}")
    return counts


if __name__ == "__main__":
    main()
