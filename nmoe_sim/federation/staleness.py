"""Staleness functions: how much an update computed on an old model still counts.

`s` is the number of server versions between the model a client started from and the one the
server holds when the update arrives. The forms follow the FedAsync paper (Xie et al. 2019):
constant, polynomial `(1 + s)^-a` and hinge `1 if s <= b else 1 / (a (s - b) + 1)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

StalenessFn = Callable[[int], float]


def _check(s: int) -> None:
    if s < 0:
        raise ValueError(f"staleness cannot be negative (got {s})")


@dataclass(frozen=True)
class Constant:
    def __call__(self, s: int) -> float:
        _check(s)
        return 1.0


@dataclass(frozen=True)
class Polynomial:
    a: float

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError(f"polynomial staleness needs a >= 0 (got {self.a})")

    def __call__(self, s: int) -> float:
        _check(s)
        return float((1.0 + s) ** -self.a)


@dataclass(frozen=True)
class Hinge:
    a: float
    b: float

    def __post_init__(self) -> None:
        if self.a < 0 or self.b < 0:
            raise ValueError(
                f"hinge staleness needs a >= 0 and b >= 0 (got a={self.a}, b={self.b})"
            )

    def __call__(self, s: int) -> float:
        _check(s)
        return 1.0 if s <= self.b else 1.0 / (self.a * (s - self.b) + 1.0)


def constant() -> StalenessFn:
    return Constant()


def polynomial(a: float) -> StalenessFn:
    return Polynomial(a)


def hinge(a: float, b: float) -> StalenessFn:
    return Hinge(a, b)


_BY_NAME: dict[str, Callable[..., StalenessFn]] = {
    "constant": constant,
    "polynomial": polynomial,
    "hinge": hinge,
}


def by_name(name: str, **params: float) -> StalenessFn:
    """The staleness function called `name` with its parameters, e.g. `by_name("hinge", a=10,
    b=4)`; unknown names or parameters are refused with the accepted ones listed."""
    try:
        factory = _BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown staleness function {name!r}; choose one of {sorted(_BY_NAME)}"
        ) from None
    try:
        return factory(**params)
    except TypeError as err:
        raise ValueError(f"bad parameters for staleness function {name!r}: {err}") from None
