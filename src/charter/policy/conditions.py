"""Conditions compiled to checks: each returns None when it holds, or the reason it failed.

A check takes the principal, the request and the time (a POSIX timestamp), and
the resource's attributes (the directory's, overlaid with the request's).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Mapping
from functools import cache
from zoneinfo import ZoneInfo

from charter.language import ast
from charter.language.formatter import format_condition
from charter.policy.principal import Principal
from charter.policy.request import Request

Check = Callable[[Principal, Request, float, Mapping[str, object]], str | None]
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class CompiledCondition:
    """A check plus what it needs: `uses_time` and `uses_resource` let the engine skip work when it can."""

    __slots__ = ("check", "text", "uses_resource", "uses_time")

    def __init__(self, check: Check, text: str, uses_time: bool = False, uses_resource: bool = False):
        self.check = check
        self.text = text
        self.uses_time = uses_time
        self.uses_resource = uses_resource


def compile_condition(condition: ast.Condition) -> CompiledCondition:
    text = format_condition(condition)
    match condition:
        case ast.RequireMfa():
            return CompiledCondition(_mfa, text)
        case ast.FromNetworks(networks=networks):
            return CompiledCondition(_networks(networks), text)
        case ast.TimeWindow():
            return CompiledCondition(_window(condition), text, uses_time=True)
        case ast.WithScopes(scopes=scopes):
            return CompiledCondition(_scopes(frozenset(scopes)), text)
        case ast.ResourceAttribute(test=test):
            return CompiledCondition(_resource_test(test), text, uses_resource=True)
        case ast.SubjectAttribute(test=test):
            return CompiledCondition(subject_test(test), text)
        case ast.AttributeRelation(resource_attribute=r, subject_attribute=s):
            return CompiledCondition(_relation(r, s), text, uses_resource=True)
        case ast.Ownership():
            return CompiledCondition(_ownership, text, uses_resource=True)
        case ast.SameAttribute(attribute=name):
            return CompiledCondition(_relation(name, name), text, uses_resource=True)
    raise TypeError(f"not a condition: {condition!r}")


def _mfa(principal: Principal, request: Request, now: float, resource: Mapping[str, object]) -> str | None:
    return None if request.context.mfa else "needs MFA"


def _networks(networks: tuple[str, ...]) -> Check:
    parsed = tuple(ipaddress.ip_network(n) for n in networks)
    listed = ", ".join(networks)

    def check(principal: Principal, request: Request, now: float, resource: Mapping[str, object]) -> str | None:
        ip = request.context.ip
        if ip is None:
            return f"no source address given; needs network {listed}"
        address = _address(ip)
        if address is None:
            return f"source address {ip!r} is not an IP address"
        if any(address in network for network in parsed):
            return None
        return f"network {ip} not in {listed}"

    return check


@cache
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _window(window: ast.TimeWindow) -> Check:
    zone = ZoneInfo(window.zone)
    days = frozenset(window.days)
    start, end = window.start, window.end
    described = describe_window(window)

    def check(principal: Principal, request: Request, now: float, resource: Mapping[str, object]) -> str | None:
        local = dt.datetime.fromtimestamp(now, zone)
        weekday = local.weekday()
        if start is not None and end is not None:
            moment = local.time().replace(second=0, microsecond=0)
            if start < end:
                inside = start <= moment < end
            elif moment >= start:
                inside = True
            else:
                # past midnight in a window that wraps: this belongs to the day the window opened
                inside = moment < end
                weekday = (weekday - 1) % 7
            if not inside:
                return f"outside {described} (it is {DAY_NAMES[local.weekday()]} {local:%H:%M} {window.zone})"
        if days and weekday not in days:
            return f"outside {described} (it is {DAY_NAMES[local.weekday()]} {local:%H:%M} {window.zone})"
        return None

    return check


def describe_window(window: ast.TimeWindow) -> str:
    parts = []
    if window.days == (0, 1, 2, 3, 4):
        parts.append("weekdays")
    elif window.days == (5, 6):
        parts.append("weekends")
    elif window.days:
        parts.append(", ".join(DAY_NAMES[d] for d in window.days))
    if window.start is not None and window.end is not None:
        parts.append(f"{window.start:%H:%M}-{window.end:%H:%M}")
    parts.append(window.zone)
    return " ".join(parts)


def _scopes(scopes: frozenset[str]) -> Check:
    def check(principal: Principal, request: Request, now: float, resource: Mapping[str, object]) -> str | None:
        missing = scopes - request.context.scopes
        if not missing:
            return None
        return "needs scope " + ", ".join(f'"{s}"' for s in sorted(missing))

    return check


def _values(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, tuple | list | frozenset | set):
        return tuple(str(v) for v in value)
    if isinstance(value, bool):
        return ("true" if value else "false",)
    return (str(value),)


def _compare(test: ast.AttributeTest, actual: tuple[str, ...]) -> bool:
    if test.comparison is ast.Comparison.IS_NOT:
        return test.values[0] not in actual
    return any(v in test.values for v in actual)


def _describe_failure(owner: str, test: ast.AttributeTest, actual: tuple[str, ...]) -> str:
    shown = ", ".join(f'"{v}"' for v in actual) if actual else "not set"
    wanted = {
        ast.Comparison.IS: f'"{test.values[0]}"',
        ast.Comparison.IS_NOT: f'anything but "{test.values[0]}"',
        ast.Comparison.IS_ONE_OF: "one of " + ", ".join(f'"{v}"' for v in test.values),
    }[test.comparison]
    return f"{owner} {test.attribute} is {shown}, needs {wanted}"


def subject_test(test: ast.AttributeTest) -> Check:
    def check(principal: Principal, request: Request, now: float, resource: Mapping[str, object]) -> str | None:
        actual = _values(principal.attributes.get(test.attribute))
        return None if _compare(test, actual) else _describe_failure("subject's", test, actual)

    return check


def _resource_test(test: ast.AttributeTest) -> Check:
    def check(principal: Principal, request: Request, now: float, resource: Mapping[str, object]) -> str | None:
        actual = _values(resource.get(test.attribute))
        return None if _compare(test, actual) else _describe_failure("resource's", test, actual)

    return check


def _relation(resource_attribute: str, subject_attribute: str) -> Check:
    def check(principal: Principal, request: Request, now: float, resource: Mapping[str, object]) -> str | None:
        theirs = _values(resource.get(resource_attribute))
        mine = _values(principal.attributes.get(subject_attribute))
        if theirs and mine and set(theirs) & set(mine):
            return None
        return (
            f"resource's \"{resource_attribute}\" ({', '.join(theirs) or 'not set'}) is not the subject's "
            f'"{subject_attribute}" ({", ".join(mine) or "not set"})'
        )

    return check


def _ownership(principal: Principal, request: Request, now: float, resource: Mapping[str, object]) -> str | None:
    owners = _values(resource.get("owner"))
    if principal.id in owners:
        return None
    return f"the resource's owner is {', '.join(owners) or 'not set'}, not {principal.id}"
