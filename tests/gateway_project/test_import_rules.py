"""The import rule of docs/architecture.md, read from every import statement of the apps (deferred ones inside
functions too): imports point one way, and no two files import each other, directly or round a loop."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("gateway_project", "relay", "channels_app", "billing", "tasks")
# What the apps may use of gateway_project; the rest of it (urls, asgi, asgi_handlers, the importer...) composes them.
KERNEL = {"env", "db", "errors", "existing", "safe_text", "admin_tools", "auth", "snapshot", "labels"}
# (importer, imported): parts of the code base; a part is a module path prefix.
FORBIDDEN = [
    ("billing", "relay"),
    ("billing", "tasks"),
    ("billing", "channels_app"),
    ("channels_app", "relay"),
    ("channels_app", "tasks"),
    ("relay", "tasks"),
    ("relay.adaptors", "billing"),
    ("tasks.adaptors", "billing"),
]
# channels_app's outer layer may call the relay (the channel test, the balance query).
OUTER_LAYER = ("channels_app.admin", "channels_app.api", "channels_app.management")


def module_files() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imported_names(path: Path, module: str) -> set[str]:
    names = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the project's modules it imports (a name imported from a module counts as that module)."""
    files = module_files()
    graph = {}
    for module, path in files.items():
        targets = set()
        for name in imported_names(path, module):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def within(module: str, part: str) -> bool:
    return module == part or module.startswith(part + ".")


def forbidden_arrows(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in graph.items():
        for target in targets:
            found.extend(
                f"{module} imports {target}"
                for importer, imported in FORBIDDEN
                if crosses(module, target, importer, imported)
            )
            if composes_only(module, target):
                found.append(f"{module} imports {target}, which only composes the apps")
    return sorted(found)


def crosses(module: str, target: str, importer: str, imported: str) -> bool:
    """Does `module` importing `target` go from `importer` to `imported` (the outer layer may call the relay)?"""
    if not (within(module, importer) and within(target, imported)) or within(target, importer):
        return False
    return not (imported == "relay" and module.startswith(OUTER_LAYER))


def composes_only(module: str, target: str) -> bool:
    """An app importing a part of gateway_project that is not its shared kernel."""
    return (
        not within(module, "gateway_project")
        and within(target, "gateway_project")
        and target.split(".")[1] not in KERNEL
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                elif target in on_stack:
                    low[module] = min(low[module], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_imports_point_one_way():
    assert forbidden_arrows(import_graph()) == []


def test_no_files_import_each_other():
    assert cycles(import_graph()) == []


def test_the_checks_see_a_forbidden_arrow_and_a_cycle():
    graph = {
        "billing.quota": {"channels_app.models"},
        "channels_app.models": {"billing.quota"},
        "channels_app.admin": {"relay.channel_test"},
        "relay.channel_test": set(),
        "relay.service": {"gateway_project.urls"},
        "gateway_project.urls": set(),
    }
    assert forbidden_arrows(graph) == [
        "billing.quota imports channels_app.models",
        "relay.service imports gateway_project.urls, which only composes the apps",
    ]
    assert cycles(graph) == [["billing.quota", "channels_app.models"]]


def test_relative_imports_resolve_to_their_modules(tmp_path):
    source = tmp_path / "midjourney.py"
    source.write_text("from .base import TaskAdaptor\nfrom .. import updates\n")
    found = imported_names(source, "tasks.adaptors.midjourney")
    assert {"tasks.adaptors.base.TaskAdaptor", "tasks.updates"} <= found


def test_test_modules_share_only_through_tests_support():
    tests = ROOT / "tests"
    borrowed = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted(tests.rglob("*.py"))
        for name in sorted(imported_names(path, ".".join(path.relative_to(ROOT).with_suffix("").parts)))
        if ".test_" in name or name.startswith("tests.conftest")
    ]
    assert borrowed == []
