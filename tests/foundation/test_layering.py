"""The layering rules, read from the source (AST): no import cycles anywhere in
`src/exwatch`, and network calls only in `net/` (and `lab/`, the servers tests talk to).

The import graph has an edge for every `import` and `from ... import` of an exwatch module,
function-local ones included (a cycle that only shows at call time is still a cycle);
imports under `if TYPE_CHECKING:` are left out (they never run).  `from pkg import name`
is an edge to `pkg.name` where that is a module, else to `pkg`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "exwatch"
# Where sockets may be opened: the network layer, and the lab (servers for the tests).
NETWORK_HOMES = ("exwatch.net", "exwatch.lab")
# Calls that reach the network (attribute or plain name); address conversions
# (inet_aton/ntoa/pton/ntop) and gethostname are fine.
NETWORK_CALLS = frozenset({
    "create_connection", "open_connection", "open_unix_connection", "create_unix_connection",
    "getaddrinfo", "getnameinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr",
    "create_datagram_endpoint", "sock_connect", "wrap_socket", "wrap_bio", "start_tls",
})  # fmt: skip
# Modules whose import is a network client.
NETWORK_MODULES = frozenset({
    "urllib.request", "http.client", "smtplib", "httpx", "requests", "aiohttp", "urllib3",
    "ftplib", "telnetlib", "poplib", "imaplib", "aiosmtplib", "dns", "dns.resolver",
})  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, minus the bodies of `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str, module: str, path: Path, level: int) -> str:
    if level == 0:
        return name
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{name}" if name else package


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The exwatch modules `module` imports (edges of the graph)."""
    found: set[str] = set()
    for node in _nodes(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", module, path, node.level)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {m for m in found if m in known and m != module}


def graph() -> dict[str, set[str]]:
    known = modules()
    names = set(known)
    return {m: imports(m, p, names) for m, p in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    item = stack.pop()
                    on_stack.discard(item)
                    component.append(item)
                    if item == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_the_graph_sees_function_local_imports_and_skips_type_checking() -> None:
    edges = graph()
    assert len(edges) > 200
    # report/compromise.py imports checks.behaviour inside a function only.
    assert "exwatch.checks.behaviour" in edges["exwatch.report.compromise"]
    # lab/compromise.py imports lab.plan under TYPE_CHECKING only, assess in a function.
    assert "exwatch.lab.plan" not in edges["exwatch.lab.compromise"]
    assert "exwatch.assess" in edges["exwatch.lab.compromise"]
    # The detector finds a cycle where there is one.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert found == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def _network_uses(path: Path) -> Iterator[tuple[int, str]]:
    for node in _nodes(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in NETWORK_MODULES:
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module in NETWORK_MODULES:
                yield node.lineno, f"from {node.module} import ..."
            for alias in node.names:
                if f"{node.module}.{alias.name}" in NETWORK_MODULES:
                    yield node.lineno, f"from {node.module} import {alias.name}"
                if node.module in ("socket", "ssl", "asyncio") and alias.name in NETWORK_CALLS:
                    yield node.lineno, f"from {node.module} import {alias.name}"
        elif isinstance(node, ast.Attribute):
            if node.attr in NETWORK_CALLS:
                yield node.lineno, f".{node.attr}"
            elif (
                node.attr in ("socket", "socketpair")
                and isinstance(node.value, ast.Name)
                and node.value.id == "socket"
            ):
                yield node.lineno, f"socket.{node.attr}"


def test_network_calls_only_in_net() -> None:
    found = [
        f"{name}:{line}: {what}"
        for name, path in modules().items()
        if not name.startswith(NETWORK_HOMES)
        for line, what in _network_uses(path)
    ]
    assert found == [], "network calls outside net/ and lab/:\n" + "\n".join(found)


def test_the_network_check_sees_what_it_looks_for() -> None:
    net = [what for _, what in _network_uses(PACKAGE / "net" / "smtp.py")]
    assert any("smtplib" in w or "open_connection" in w for w in net), net
