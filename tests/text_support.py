"""Shared by the report tests: how many numbers each generated paper sentence states (issue 25: a sentence
that lists more than three numbers becomes a table)."""

from __future__ import annotations

import re


def numbers_per_sentence(tex: str) -> list[int]:
    """How many numbers each generated sentence states: comment lines, \\texttt names, \\ref/\\label targets,
    other macro names and identifiers with digits (top-10, Rec2FTP) dropped; scientific notation counts once."""
    text = " ".join(line for line in tex.splitlines() if not line.startswith("%"))
    text = re.sub(r"\\(?:texttt|ref|label)\{(?:[^{}]|\{[^{}]*\})*\}", " ", text)
    counts = []
    for sentence in re.split(r"(?<=\.)\s+(?=[A-Z])", text):
        sentence = re.sub(r"-?\d+(?:\.\d+)?\\times 10\^\{-?\d+\}", " 1 ", sentence)
        sentence = re.sub(r"\\[A-Za-z]+|[A-Za-z][\w-]*\d[\w-]*", " ", sentence)
        counts += [len(re.findall(r"-?\d+(?:\.\d+)?", sentence))] if sentence.strip() else []
    return counts
