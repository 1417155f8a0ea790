"""CEL source text as the rules see it: numbers mix (every integer literal is read as a
real), the names a condition may read, and cel-cpp's messages without their noise."""

import re

STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'')
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# a numeric literal, whole: hex (0x1F), real (1.5, .5, 1e-3, 2.5E+4), integer, unsigned (1u)
_NUMBER = re.compile(
    r"(?<![\w.])(?:0[xX][0-9a-fA-F]+[uU]?|\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"
    r"|\d+[eE][+-]?\d+|\d+[uU]?)(?![\w.])"
)


def _real(number: re.Match[str]) -> str:
    literal = number.group()
    return literal + ".0" if literal.isdigit() else literal


def reals(condition: str) -> str:
    """The condition with its decimal integer literals written as reals (`3` -> `3.0`),
    outside string literals; every other literal as it is."""
    parts, end = [], 0
    for literal in STRING.finditer(condition):
        parts.append(_NUMBER.sub(_real, condition[end : literal.start()]))
        parts.append(literal.group())
        end = literal.end()
    parts.append(_NUMBER.sub(_real, condition[end:]))
    return "".join(parts)


def names(condition: str) -> set[str]:
    """Every name outside string literals (a name inside an odd literal only makes the set
    larger, which is safe for what it is used for: what a condition may read)."""
    return set(NAME.findall(STRING.sub(" ", condition)))


def clean(message: str) -> str:
    for noise in (
        "INVALID_ARGUMENT: ",
        "ERROR: ",
        "UNKNOWN: ",
        " (in container '')",
        " [INVALID_ARGUMENT]",
    ):
        message = message.replace(noise, "")
    return message.strip()
