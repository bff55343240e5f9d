"""What a search or a namespace listing selects: checks and matching, pure (no I/O).

Filters mean what ``InMemoryStore`` makes them mean, except where it fails:

- ``{"field": value}`` matches a field equal to ``value``; a dict ``value`` matches a
  dict field holding at least those entries (recursively), a list ``value`` a list of
  the same length whose elements match; a missing field equals ``None``.
- ``{"field": {"$op": operand, ...}}`` applies every operator: ``$eq``, ``$ne``, and
  the orderings ``$gt``, ``$gte``, ``$lt``, ``$lte``. An ordering compares numbers
  with numbers and strings with strings (by code point); any other field -- missing,
  ``None``, a bool, a list, or the other kind -- does not match it (``InMemoryStore``
  raises there, or converts strings to floats).

Every filter, namespace and match condition is checked before a batch runs, so a bad
one raises before anything was read or written.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from langgraph.store.base import InvalidNamespaceError, MatchCondition

from sharedctx import InvalidArgumentError

__all__ = [
    "check_conditions",
    "check_filter",
    "check_namespace",
    "filter_matcher",
    "literal_head",
    "matches_conditions",
]

_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
_OPERATORS = ("$eq", "$ne", *_ORDERINGS)


def check_namespace(namespace: Any, what: str = "namespace") -> tuple[str, ...]:
    """A namespace: a tuple of non-empty ``str`` labels without ``.`` or NUL (as LangGraph).

    Raises LangGraph's ``InvalidNamespaceError`` (a ``ValueError``) naming the label.
    """
    if not isinstance(namespace, tuple):
        raise InvalidNamespaceError(
            f"a {what} must be a tuple of str, not {type(namespace).__name__}: {namespace!r}"
        )
    for label in namespace:
        problem = (
            f"is a {type(label).__name__}, not a str"
            if not isinstance(label, str)
            else "is empty"
            if not label
            else "contains a period ('.')"
            if "." in label
            else "contains a NUL character"
            if "\x00" in label
            else None
        )
        if problem is not None:
            raise InvalidNamespaceError(f"label {label!r} of {what} {namespace!r} {problem}")
    return namespace


def check_filter(filter: Any) -> Mapping[str, Any] | None:
    """A search filter (see the module's docstring), or None."""
    if filter is None:
        return None
    if not isinstance(filter, Mapping):
        raise InvalidArgumentError(f"a filter must be a dict, not {type(filter).__name__}")
    for field, expected in filter.items():
        if not isinstance(field, str):
            raise InvalidArgumentError(f"filter field {field!r} is not a str")
        _check_expected(field, expected)
    return filter


def _check_expected(field: str, expected: Any) -> None:
    if isinstance(expected, Mapping):
        operators = [name for name in expected if isinstance(name, str) and name.startswith("$")]
        if not operators:
            for name, value in expected.items():
                if not isinstance(name, str):
                    raise InvalidArgumentError(f"filter field {field}.{name!r} is not a str")
                _check_expected(f"{field}.{name}", value)
            return
        if len(operators) < len(expected):
            raise InvalidArgumentError(
                f"filter of field {field!r} mixes operators with field names: {expected!r}"
            )
        for name, operand in expected.items():
            if name not in _OPERATORS:
                raise InvalidArgumentError(
                    f"filter of field {field!r} uses unknown operator {name!r} "
                    f"(known: {', '.join(_OPERATORS)})"
                )
            if name in _ORDERINGS and not (_is_number(operand) or isinstance(operand, str)):
                raise InvalidArgumentError(
                    f"operator {name} of field {field!r} needs a number or a str, not {operand!r}"
                )
    elif isinstance(expected, list | tuple):
        for value in expected:
            _check_expected(field, value)


def filter_matcher(filter: Mapping[str, Any]) -> Callable[[Any], bool]:
    """Whether an item's value matches a checked filter, as a function of the value.

    The filter is worked out once, into one small function per field, operator and
    element, so that a search that reads many items does not interpret it again for
    each of them.
    """
    fields = [(field, _matcher(expected)) for field, expected in filter.items()]

    def matches(value: Any) -> bool:
        if not isinstance(value, dict):
            return False
        for field, matcher in fields:  # noqa: SIM110 - all() would make a generator per value
            if not matcher(value.get(field)):
                return False
        return True

    return matches


def _matcher(expected: Any) -> Callable[[Any], bool]:
    """Whether a field's value (None: missing) matches ``expected``."""
    if isinstance(expected, Mapping):
        if any(name.startswith("$") for name in expected):
            operators = [_operator(name, operand) for name, operand in expected.items()]
            return lambda actual: all(operator(actual) for operator in operators)
        return filter_matcher(expected)  # a dict holding at least these entries
    if isinstance(expected, list | tuple):
        elements = [_matcher(element) for element in expected]

        def matches_list(actual: Any) -> bool:
            return (
                isinstance(actual, list | tuple)
                and len(actual) == len(elements)
                and all(match(each) for match, each in zip(elements, actual, strict=True))
            )

        return matches_list
    return lambda actual: bool(actual == expected)


def _operator(name: str, operand: Any) -> Callable[[Any], bool]:
    if name == "$eq":
        return lambda actual: bool(actual == operand)
    if name == "$ne":
        return lambda actual: bool(actual != operand)
    ordering = _ORDERINGS[name]
    if _is_number(operand):
        return lambda actual: _is_number(actual) and ordering(actual, operand)
    return lambda actual: isinstance(actual, str) and ordering(actual, operand)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_conditions(conditions: Any) -> tuple[MatchCondition, ...]:
    """The match conditions of a ``ListNamespacesOp`` (None: none)."""
    if conditions is None:
        return ()
    checked = []
    for condition in conditions:
        if not isinstance(condition, MatchCondition):
            raise InvalidArgumentError(f"{condition!r} is not a MatchCondition")
        if condition.match_type not in ("prefix", "suffix"):
            raise InvalidArgumentError(
                f"match_type must be 'prefix' or 'suffix', not {condition.match_type!r}"
            )
        check_namespace(condition.path, f"{condition.match_type} path")
        checked.append(condition)
    return tuple(checked)


def matches_conditions(namespace: tuple[str, ...], conditions: tuple[MatchCondition, ...]) -> bool:
    """Whether ``namespace`` meets every condition; a ``"*"`` label matches any label."""
    for match_type, path in conditions:
        if len(namespace) < len(path):
            return False
        labels = namespace[: len(path)] if match_type == "prefix" else namespace[-len(path) :]
        if not all(want in ("*", label) for want, label in zip(path, labels, strict=False)):
            return False
    return True


def literal_head(conditions: tuple[MatchCondition, ...]) -> tuple[str, ...]:
    """The longest run of leading labels that every matching namespace must start with."""
    head: tuple[str, ...] = ()
    for match_type, path in conditions:
        if match_type == "prefix":
            run = path[: path.index("*")] if "*" in path else path
            head = max(head, tuple(run), key=len)
    return head
