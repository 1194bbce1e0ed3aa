"""What is wrong with a scenario, in the order a user must fix it, and keys that do nothing.

Every check reports a `Problem` with a `Severity`; a scenario is refused with all its problems,
the most fundamental first (a file that cannot be read before an unknown name, before a value
out of range, before values that do not go together, before a key that does nothing). A check
that read a key which is itself wrong says nothing: fixing that key changes its verdict.

A key that does nothing where it is set (`no_effect`) is refused when the user chose it there;
the loader (config.py) ignores it, with a note, when only the scenario file sets it and a
command-line override chose the mode that makes it inert.

Standard library and pydantic only: the schema (config.py) and the CLI import it early.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from pydantic import ValidationInfo


class Severity(IntEnum):
    """What a user must fix first comes first."""

    UNREADABLE = 0  # a file that is missing, a folder, or not readable as YAML
    UNKNOWN = 1  # an unknown key or name
    VALUE = 2  # a wrong type or a value out of range; a defect inside a topology file
    CONFLICT = 3  # values that do not go together (top_k above clients.count, ...)
    NO_EFFECT = 4  # a key that does nothing where it is set


@dataclass(frozen=True)
class Problem:
    severity: Severity
    message: str  # "KEY: what is wrong; what to do"
    key: str = ""  # the dotted key it is about
    depends: tuple[str, ...] = ()  # the keys whose values the check read


class Invalid(ValueError):
    """A validator's refusal with its severity (untagged ValueErrors: CONFLICT from a model
    validator, VALUE from a field validator). The default keeps it picklable."""

    def __init__(self, message: str, severity: Severity = Severity.CONFLICT) -> None:
        super().__init__(message)
        self.severity = severity


@dataclass(frozen=True)
class NoEffect:
    """`key` does nothing because of the values of `decided_by` (e.g. network.topology)."""

    key: str
    reason: str  # "no effect on the star topology (used by mec)"
    fix: str  # "drop the key or choose that topology"
    decided_by: tuple[str, ...]

    @property
    def message(self) -> str:
        return f"{self.key}: has {self.reason}; {self.fix}"

    def problem(self) -> Problem:
        return Problem(Severity.NO_EFFECT, self.message, self.key, self.decided_by)


NO_EFFECT = "no_effect"  # the validation context's list that collects NoEffect findings


def no_effect(
    info: ValidationInfo, key: str, reason: str, fix: str, decided_by: tuple[str, ...]
) -> None:
    """A key set where it does nothing: collected while a scenario file is loaded (the loader
    decides whether it is refused or ignored), refused everywhere else."""
    finding = NoEffect(key, reason, fix, decided_by)
    sink = (info.context or {}).get(NO_EFFECT)
    if sink is None:
        raise ValueError(finding.message)
    sink.append(finding)


def within(key: str, keys: Iterable[str]) -> bool:
    """`key` is one of `keys` or lies inside one of them (a.b.c inside a.b)."""
    return any(key == k or key.startswith(f"{k}.") for k in keys)


def is_moot(depends: Sequence[str], problems: Iterable[Problem], below: Severity) -> bool:
    """A check read a key that has a problem more fundamental than `below`."""
    wrong = [p.key for p in problems if p.key and p.severity < below]
    return any(within(d, wrong) for d in depends)


def ordered(problems: Sequence[Problem]) -> list[Problem]:
    """The most fundamental first (stable within a severity), moot ones left out."""
    kept = [p for p in problems if not is_moot(p.depends, problems, p.severity)]
    return sorted(kept, key=lambda p: p.severity)


_LEADING_KEY = re.compile(r"^([A-Za-z_][\w]*(?:\.[\w]+)*):")


def leading_key(message: str) -> str | None:
    """The dotted key a message starts with ("network.loss: ..." -> "network.loss")."""
    match = _LEADING_KEY.match(message)
    return match.group(1) if match else None
