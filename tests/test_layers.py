"""The library's layers: every import, including those inside functions, points down
(core < analysis < chapters < book), and no modules import each other in a circle."""
import ast
from pathlib import Path

from conftest import ROOT

PKG = ROOT / "grokbook"
LAYERS = ("core", "analysis", "chapters", "book")


def _modules() -> dict:
    mods = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = f
    return mods


def _imports(name: str, path: Path, mods: dict) -> set:
    """grokbook modules ``name`` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                       for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in mods and t != name}
    return found


def _layer(name: str):
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def graph() -> dict:
    mods = _modules()
    return {m: _imports(m, f, mods) for m, f in mods.items()}


def test_every_module_sits_in_a_layer():
    loose = [m for m in _modules() if m not in ("grokbook", "grokbook.__main__")
             and _layer(m) is None and m.split(".")[1] not in LAYERS]
    assert not loose, f"modules outside core/analysis/chapters/book: {loose}"


def test_imports_point_only_down():
    up = []
    for mod, targets in graph().items():
        here = _layer(mod)
        if here is None:
            continue
        for t in targets:
            there = _layer(t)
            if there is None or there > here:
                up.append(f"{mod} imports {t}")
    assert not up, "imports that point up or to the package face:\n" + "\n".join(sorted(up))


def test_no_import_circle():
    g = graph()
    state, path, circles = {}, [], []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for t in g[m]:
            if state.get(t) == "open":
                circles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t)
        path.pop()
        state[m] = "done"

    for m in g:
        if m not in state:
            visit(m)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from .b import thing\n")
    mods = {"grokbook.core.x": f, "grokbook.core.b": f}
    assert _imports("grokbook.core.x", f, mods) == {"grokbook.core.b"}
