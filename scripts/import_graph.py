"""Print the import graph of ``src/hfpie`` (module-level and function-level imports) and check it.

    python scripts/import_graph.py            # a Markdown table for docs/architecture.md; exit 1 on a cycle

Checks: no import cycle between modules (imports inside functions count: they are still
dependencies), inference never imports ``hfpie.training``, and ``hfpie.training`` imports from the
rest of the package only the modules it is meant to build on.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hfpie"
# What training builds on: the network, how it runs, files, checkpoints, errors, and two leaf modules
# (the precision names, the task names).
TRAINING_MAY_IMPORT = {"hfpie.models", "hfpie.runner", "hfpie.io", "hfpie.checkpoint", "hfpie.errors", "hfpie.precision",
                       "hfpie.tasks"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def group(name: str) -> str:
    """Modules are grouped as packages (hfpie.models, hfpie.training) or top-level modules."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else name


def imports_of(path: Path) -> set[str]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("hfpie"):
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("hfpie"))
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = group(module_name(path))
        for target in imports_of(path):
            target = group(target)
            if target != source and target != "hfpie":
                edges.setdefault(source, set()).add(target)
        edges.setdefault(source, set())
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def main() -> int:
    edges = graph()
    print("| module | imports (within hfpie) |\n|---|---|")
    for source in sorted(edges):
        print(f"| `{source}` | {', '.join(f'`{t}`' for t in sorted(edges[source])) or '-'} |")
    problems = []
    if cycle := find_cycle(edges):
        problems.append("import cycle: " + " -> ".join(cycle))
    for source, targets in edges.items():
        if source != "hfpie.training" and source != "hfpie.cli" and "hfpie.training" in targets:
            problems.append(f"{source} (inference) imports hfpie.training")
    extra = edges.get("hfpie.training", set()) - TRAINING_MAY_IMPORT
    if extra:
        problems.append(f"hfpie.training imports {sorted(extra)} beyond {sorted(TRAINING_MAY_IMPORT)}")
    for problem in problems:
        print(f"\nPROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
