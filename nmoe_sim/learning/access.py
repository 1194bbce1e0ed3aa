"""What a client task touches of its client's state, declared where the task is defined.

Backends read it and nothing else: a task that reads only the client's train data may run on
any host holding the data (the Ray backend balances rounds with it); a task that only reads the
state is never replayed; a task that changes the state is replayed, in order, to rebuild a
client whose host was lost. An undeclared task is assumed to change the state (the safe side).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class Access(Enum):
    DATA = "data"  # reads only the client's train data
    READ = "read"  # reads the client's state, changes nothing
    WRITE = "write"  # changes the client's state


def task(access: Access) -> Callable[[F], F]:
    """Declare a client task's access: `@task(Access.READ)`."""

    def declare(fn: F) -> F:
        fn.access = access  # type: ignore[attr-defined]  # plain functions take attributes
        return fn

    return declare


def access_of(fn: Callable[..., Any]) -> Access:
    return getattr(fn, "access", Access.WRITE)
