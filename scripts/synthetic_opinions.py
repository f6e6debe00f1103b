"""Synthetic data in the exact GlobalOpinionQA format (no real survey data; the real data is
CC-BY-NC-SA-4.0 and not shipped): the ``selections`` column is the repr of a
``defaultdict(<class 'list'>, {...})``, ``options`` the repr of a list.

    python scripts/synthetic_opinions.py fixture tests/data/globalopinionqa_fixture.csv
    python scripts/synthetic_opinions.py random 2000 opinions-2000.csv [--seed 0]

``fixture``: the test fixture, each row made to exercise one part of the loader (odd country
keys, a mismatched entry, shares off sum, "DK/Refused", 2- and 7-option items, numeric options).
``random``: N questions with 2 to 10 options, random shares for a few countries, for benchmarks.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict

import numpy as np

FIXTURE = [
    # (question, options, {country key: shares}, source)
    ("Do you think the government should spend more or less on public transport?",
     ["Spend more", "Spend the same", "Spend less", "DK/Refused"],
     {"Britain": [0.5, 0.3, 0.15, 0.05], "Germany": [0.6, 0.25, 0.1, 0.05], "S. Korea": [0.4, 0.4, 0.1, 0.1],
      "India (Current national sample)": [0.7, 0.1, 0.1, 0.1], "United States": [0.35, 0.35, 0.28, 0.02]}, "GAS"),
    ("Is it acceptable to borrow money from friends?", ["Yes", "No"],
     {"Great Britain": [0.3, 0.7], "Germany": [0.25, 0.75], "South Korea": [0.55, 0.45],
      "India (Non-national sample)": [0.6, 0.4], "United States": [0.4, 0.6], "Nigeria": [0.8, 0.2]}, "GAS"),
    ("How important is tradition in your life? Choose a point on the scale.",
     ["1 Not at all important", "2", "3", "4", "5", "6", "7 Very important"],
     {"Germany": [0.05, 0.1, 0.15, 0.2, 0.2, 0.15, 0.15], "Britain": [0.1, 0.1, 0.2, 0.2, 0.2, 0.1, 0.1],
      "Nigeria": [0.01, 0.02, 0.03, 0.04, 0.1, 0.3, 0.5], "Mexico": [0.05, 0.05, 0.1, 0.2, 0.2, 0.2, 0.2]}, "WVS"),
    # a mismatched entry (4 shares for 3 options) beside good ones
    ("Should the city build more parks or more parking spaces?", ["More parks", "More parking", "Neither"],
     {"Germany": [0.6, 0.3, 0.1], "Mexico": [0.4, 0.3, 0.2, 0.1], "United States": [0.45, 0.45, 0.1]}, "GAS"),
    # shares that do not sum to 1 (0.8) beside good ones
    ("Are most people in your country trustworthy?", ["Most can be trusted", "Need to be very careful"],
     {"Germany": [0.4, 0.4], "Britain": [0.45, 0.55], "S. Korea": [0.3, 0.7], "Nigeria": [0.15, 0.85]}, "WVS"),
    # every entry mismatched: the row goes
    ("Do you read a newspaper every day?", ["Yes", "No", "Sometimes"],
     {"Germany": [0.5, 0.5], "Mexico": [0.2, 0.8]}, "GAS"),
    # numbers among the options, and a "Don't know/Refused"
    ("How many days a week do you cook at home?", [0, 3, 7, "Don't know/Refused"],
     {"Germany": [0.1, 0.5, 0.38, 0.02], "United States": [0.2, 0.5, 0.25, 0.05],
      "Palest. ter.": [0.05, 0.25, 0.7, 0.0]}, "GAS"),
    ("Which matters more for a child to learn at home: independence or obedience?",
     ["Independence", "Obedience", "Both equally", "Neither", "Hard work"],
     {"Germany": [0.5, 0.1, 0.3, 0.05, 0.05], "Nigeria": [0.1, 0.5, 0.2, 0.05, 0.15],
      "Mexico": [0.2, 0.3, 0.3, 0.1, 0.1], "South Korea": [0.3, 0.1, 0.2, 0.1, 0.3]}, "WVS"),
    ("Is climate change a major threat to your country?", ["Major threat", "Minor threat", "Not a threat"],
     {"Germany": [0.7, 0.2, 0.1], "Britain": [0.65, 0.25, 0.1], "United States": [0.5, 0.3, 0.2],
      "India (Current national sample)": [0.6, 0.2, 0.2], "Nigeria": [0.4, 0.4, 0.2]}, "GAS"),
    ("Would you prefer a job with security or one with a higher salary?", ["Security", "Higher salary"],
     {"Germany": [0.65, 0.35], "Mexico": [0.5, 0.5], "S. Korea": [0.6, 0.4], "Great Britain": [0.55, 0.45]}, "WVS"),
]


def _row(question, options, selections, source) -> dict:
    return {"question": question, "selections": repr(defaultdict(list, selections)),
            "options": repr(list(options)), "source": source}


def fixture_rows() -> list[dict]:
    return [_row(*r) for r in FIXTURE]


def random_rows(n: int, seed: int = 0) -> list[dict]:
    """N questions of 2 to 10 options with Dirichlet shares for six countries."""
    rng = np.random.default_rng(seed)
    countries = ["Germany", "Britain", "S. Korea", "Nigeria", "Mexico", "United States"]
    words = ("policy people government country family work economy future children trust religion "
             "science money health city change law news history friends").split()
    rows = []
    for q in range(n):
        k = int(rng.integers(2, 11))
        topic = " ".join(rng.choice(words, size=int(rng.integers(6, 16))))
        options = [f"Option {j + 1} about {rng.choice(words)}" for j in range(k)]
        shares = {c: [round(float(v), 4) for v in rng.dirichlet(np.ones(k))] for c in countries}
        rows.append(_row(f"Question {q}: what do you think about {topic}?", options, shares,
                         "GAS" if q % 2 else "WVS"))
    return rows


def write(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["question", "selections", "options", "source"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["fixture", "random"])
    parser.add_argument("args", nargs="+", help="fixture: OUT; random: N OUT")
    parser.add_argument("--seed", type=int, default=0)
    ns = parser.parse_args()
    if ns.kind == "fixture":
        write(fixture_rows(), ns.args[0])
    else:
        write(random_rows(int(ns.args[0]), ns.seed), ns.args[1])
