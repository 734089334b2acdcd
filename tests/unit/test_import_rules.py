"""The hub's layers, as its imports draw them: each rule is read from the source of every module
of `hub` (its `ast`, not what happens to be imported at run time), and a broken one names the
module, the line and the import.

- `hub.domain` imports nothing of the hub outside itself; `hub.rules` only the domain;
- `hub.pipeline.decide` only the domain and the rules (the decision is pure);
- `hub.pipeline` nothing of the support desk, the gateway or the command line, and not the `Hub`
  (`hub.bootstrap`): its flows are given their collaborators (`hub.wiring` builds them);
- a migration imports nothing of the hub: it must do tomorrow what it did the day it was written;
- the modules' top-level imports make no cycle;
- nothing outside `hub.register` holds SQLAlchemy's session, or reaches for the one behind a unit
  of work: the unit of work's repositories are the door to the database.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import hub

HUB = Path(hub.__file__).resolve().parent


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the module imported (a submodule, when a name imported is one)
    line: int
    top_level: bool  # at the module's top, not inside a function, class or `if TYPE_CHECKING:`

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.target}"


def _modules() -> dict[str, Path]:
    found = {"hub": HUB / "__init__.py"}
    for info in pkgutil.walk_packages([str(HUB)], prefix="hub."):
        spec = importlib.util.find_spec(info.name)
        assert spec is not None and spec.origin is not None, info.name
        found[info.name] = Path(spec.origin)
    # The migrations are no package pkgutil walks (`versions` has no __init__): read them as files.
    for path in sorted((HUB / "register" / "migrations" / "versions").glob("*.py")):
        found[f"hub.register.migrations.versions.{path.stem}"] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top = {id(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            named = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES]
            for name in named or [target]:
                found.append(Import(module, name, node.lineno, id(node) in top))
    return found


IMPORTS = [i for module, path in sorted(MODULES.items()) for i in _imports(module, path)]


def _within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _broken(importing: str, allowed: tuple[str, ...]) -> list[str]:
    """The imports of the hub by modules in `importing` that reach outside `allowed`."""
    return [
        str(i)
        for i in IMPORTS
        if _within(i.module, importing) and _within(i.target, "hub") and not _within(i.target, *allowed)
    ]


def test_every_module_of_the_hub_is_read() -> None:
    assert {"hub.domain.snapshot", "hub.rules.catalogue", "hub.pipeline.checkpoint"} <= MODULES.keys()
    assert any(name.startswith("hub.register.migrations.versions.0010") for name in MODULES)


def test_the_domain_imports_nothing_of_the_hub_outside_itself() -> None:
    assert _broken("hub.domain", ("hub.domain",)) == []


def test_the_rules_import_only_the_domain() -> None:
    assert _broken("hub.rules", ("hub.domain", "hub.rules")) == []


def test_the_decision_imports_only_the_domain_and_the_rules() -> None:
    assert _broken("hub.pipeline.decide", ("hub.domain", "hub.rules")) == []


def test_the_pipeline_imports_nothing_of_the_support_desk_the_gateway_the_command_line_or_the_hub() -> None:
    forbidden = ("hub.support", "hub.gateway", "hub.cli", "hub.bootstrap", "hub.wiring")
    assert [str(i) for i in IMPORTS if _within(i.module, "hub.pipeline") and _within(i.target, *forbidden)] == []


def test_a_migration_imports_nothing_of_the_hub() -> None:
    # env.py is Alembic's runner, not a migration: it hands Alembic the models to compare. What
    # only the running hub has (its key) the runner hands in (`hub.register.migrate.upgrade`).
    assert _broken("hub.register.migrations.versions", ()) == []


def test_the_top_level_imports_of_the_hub_make_no_cycle() -> None:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for i in IMPORTS:
        if i.top_level and i.target in MODULES and i.target != i.module:
            graph[i.module].add(i.target)
    cycles = []
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    path: list[str] = []

    def walk(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                walk(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module)
    assert cycles == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if ".migrations." not in m))
def test_each_module_of_the_hub_imports(module: str) -> None:
    importlib.import_module(module)


def _holds_a_session(path: Path) -> bool:
    """Whether the module takes SQLAlchemy's session (imports it) or reaches into a unit of work
    for the session behind it (`uow.session`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return any(
        (
            isinstance(node, ast.ImportFrom)
            and node.module == "sqlalchemy.orm"
            and any(alias.name in ("Session", "sessionmaker") for alias in node.names)
        )
        or (
            isinstance(node, ast.Attribute)
            and node.attr == "session"
            and isinstance(node.value, ast.Name)
            and node.value.id == "uow"
        )
        for node in ast.walk(tree)
    )


def test_nothing_outside_the_register_holds_a_session() -> None:
    holding = sorted(m for m, path in MODULES.items() if not m.startswith("hub.register") and _holds_a_session(path))
    assert holding == [], f"these hold a session of their own; go through the unit of work's repositories: {holding}"
