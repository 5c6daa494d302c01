"""The route mapping: which action on which resource an HTTP request is, declared per route and method.

A mapping file (YAML or JSON) reads:

    routes:
      - path: /todos                      # literal segments and {name} parameters (one segment each);
        methods: {GET: read, POST: create}    # {name:path} takes the rest of the path, slashes included
        resource: "todo:list"
      - path: /todos/{id}
        methods: [GET, PUT, DELETE]       # a list: the action is the method's name in lower case
        resource: "todo:{id}"             # parameters fill the template: the resource's id
      - path: /health
        public: true                      # no token asked and no decision made (use sparingly)

Routes are tried in order; the first whose pattern matches the path decides which methods it knows. A path
no route matches, or a method its route does not name, has no action: the gate denies it (deny by
default). Paths with dot segments (`/a/../b`) or encoded slashes are refused before matching, so a request
is never decided as one route and served as another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}")
_ACTION = re.compile(r"^[a-z][a-z0-9_-]*$")
_METHOD = re.compile(r"^[A-Z]+$")


class MappingError(ValueError):
    """A mapping file that cannot be used, naming the entry at fault."""


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    pattern: re.Pattern[str]
    actions: Mapping[str, str]  # METHOD -> action
    resource: str  # the template, {name} filled from the path's parameters
    public: bool = False
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """A request mapped: its route, the action and resource it is, and the path's parameters."""

    route: Route
    action: str | None  # None: the route does not name this method
    resource: str
    parameters: Mapping[str, str] = field(default_factory=dict)


class RouteMap:
    def __init__(self, routes: Iterable[Route]):
        self.routes = tuple(routes)

    @classmethod
    def from_document(cls, document: object) -> RouteMap:
        """A RouteMap from the parsed mapping file; MappingError naming the bad entry."""
        if not isinstance(document, Mapping) or not isinstance(document.get("routes"), list):
            raise MappingError("the mapping must be an object with a list of routes under `routes`")
        return cls(_route(entry, f"routes[{i}]") for i, entry in enumerate(document["routes"]))

    @classmethod
    def load(cls, path: str) -> RouteMap:
        import yaml

        with open(path, encoding="utf-8") as file:
            try:
                document = yaml.safe_load(file)
            except yaml.YAMLError as error:
                raise MappingError(f"{path}: not YAML or JSON: {error}") from None
        try:
            return cls.from_document(document)
        except MappingError as error:
            raise MappingError(f"{path}: {error}") from None

    def match(self, method: str, path: str) -> Match | None:
        """The route for this request, or None when no route's pattern matches the path."""
        for route in self.routes:
            found = route.pattern.fullmatch(path)
            if found is not None:
                parameters = found.groupdict()
                resource = route.resource.format_map(parameters) if route.parameters else route.resource
                return Match(route, route.actions.get(method.upper()), resource, parameters)
        return None


def unsafe_path(path: str, raw_path: bytes | None = None) -> str | None:
    """Why this path must be refused before any route is matched, or None."""
    if not path.startswith("/"):
        return "the path must start with /"
    segments = path.split("/")
    if any(segment in (".", "..") for segment in segments):
        return "dot segments in the path"
    if "//" in path:
        return "an empty segment in the path"
    if raw_path is not None and (b"%2f" in raw_path.lower() or b"%5c" in raw_path.lower() or b"\\" in raw_path):
        return "an encoded slash in the path"
    return None


def _route(entry: object, where: str) -> Route:
    if not isinstance(entry, Mapping):
        raise MappingError(f"{where} must be an object with path, methods and resource")
    unknown = set(entry) - {"path", "methods", "resource", "public"}
    if unknown:
        raise MappingError(f"{where}: unknown field {sorted(unknown)[0]!r} (path, methods, resource, public)")
    path = entry.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise MappingError(f"{where}.path must be a path starting with /")
    pattern, parameters = _compile(path, where)
    public = entry.get("public", False)
    if not isinstance(public, bool):
        raise MappingError(f"{where}.public must be true or false")
    actions = _actions(entry.get("methods"), where)
    resource = entry.get("resource", "")
    if not public and (not isinstance(resource, str) or not resource):
        raise MappingError(f'{where}.resource must be a resource name template, such as "todo:{{id}}"')
    for name in _PARAMETER.findall(resource or ""):
        if name[0] not in parameters:
            raise MappingError(f"{where}.resource names {{{name[0]}}}, which {path} does not have")
    return Route(path, pattern, actions, _template(resource or ""), public, parameters)


def _compile(path: str, where: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    parts, names, position = [], [], 0
    for found in _PARAMETER.finditer(path):
        parts.append(re.escape(path[position : found.start()]))
        name, kind = found.group(1), found.group(2)
        if name in names:
            raise MappingError(f"{where}.path names {{{name}}} twice")
        names.append(name)
        parts.append(f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)")
        position = found.end()
    rest = path[position:]
    if "{" in rest or "}" in rest:
        raise MappingError(f"{where}.path: a parameter is {{name}} or {{name:path}}")
    parts.append(re.escape(rest))
    return re.compile("".join(parts)), tuple(names)


def _actions(methods: object, where: str) -> dict[str, str]:
    if isinstance(methods, list):
        methods = {m: m.lower() if isinstance(m, str) else m for m in methods}
    if not isinstance(methods, Mapping) or not methods:
        raise MappingError(f"{where}.methods must be a list of methods or an object of method to action")
    actions = {}
    for method, action in methods.items():
        if not isinstance(method, str) or not _METHOD.match(method):
            raise MappingError(f"{where}.methods: {method!r} is not an HTTP method in capitals (GET, POST, ...)")
        if not isinstance(action, str) or not _ACTION.match(action):
            raise MappingError(f"{where}.methods.{method}: the action must be a lowercase word, found {action!r}")
        actions[method] = action
    return actions


def _template(resource: str) -> str:
    """The resource template as str.format takes it: braces other than {name} doubled."""
    out, position = [], 0
    for found in _PARAMETER.finditer(resource):
        out.append(resource[position : found.start()].replace("{", "{{").replace("}", "}}"))
        out.append("{" + found.group(1) + "}")
        position = found.end()
    out.append(resource[position:].replace("{", "{{").replace("}", "}}"))
    return "".join(out)
