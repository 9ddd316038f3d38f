"""Find student code that tampers with the tests: it runs in the same Python as the tests, so it could rebind
`check_close`, patch `numpy.testing` or reach the tests' frames. Such code is flagged for review, not run around.

Student code is every code cell whose source is not in the released notebook. Flagged:
- binding a name the notebook's own cells import (`check_close = ...`, `def attempt(...)`), other than by
  importing the same thing again;
- assigning or deleting an attribute of anything imported (`np.allclose = ...`, `workshop.checks.x = ...`), or
  `setattr`/`delattr` on it;
- the escape hatches that would hide any of this: `exec`, `eval`, `compile`, `__import__`, `importlib`,
  `builtins`, `sys.modules`, `globals()`, `vars()`, `gc`, `ctypes`, `inspect`, frames and function internals.
"""

import ast

NAME_HATCHES = {"exec", "eval", "compile", "__import__", "importlib", "builtins", "__builtins__", "globals", "vars",
                "gc", "ctypes", "inspect"}
ATTRIBUTE_HATCHES = {"_getframe", "f_globals", "f_locals", "f_back", "__globals__", "__builtins__", "__code__",
                     "__closure__", "__subclasses__"}


def _imports(tree: ast.AST) -> dict[str, str]:
    """Name -> what it imports ("numpy", "workshop.checks.check_close") for the imports in `tree`."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                found[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


def _root(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _parse(source: str) -> ast.AST | None:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]  # IPython magics
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def suspicious(nb, release) -> list[str]:
    """Reasons to review `nb`, one per finding: "cell 12, line 3: rebinds check_close"."""
    given = {cell.source for cell in release.cells if cell.cell_type == "code"}
    protected: dict[str, str] = {}
    for source in given:
        tree = _parse(source)
        if tree is not None:
            protected.update(_imports(tree))
    modules = {name for name, what in protected.items() if "." not in what or what.count(".") == 1}
    findings = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or cell.source in given:
            continue
        tree = _parse(cell.source)
        if tree is None:
            continue
        own_imports = _imports(tree)
        for node in ast.walk(tree):
            where = f"cell {index}, line {getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del) and node.id in protected:
                findings.append(f"{where}: rebinds {node.id}")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name in protected:
                findings.append(f"{where}: redefines {node.name}")
            elif isinstance(node, ast.alias):
                name = node.asname or node.name.split(".")[0]
                if name in protected and own_imports.get(name) != protected[name]:
                    findings.append(f"{where}: rebinds {name} by an import")
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
                if _root(node) in modules or _root(node) in own_imports:
                    findings.append(f"{where}: patches {ast.unparse(node)}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {
                    "setattr", "delattr"} and node.args and _root(node.args[0]) in modules | set(own_imports):
                findings.append(f"{where}: {node.func.id} on {_root(node.args[0])}")
            if isinstance(node, ast.Name) and node.id in NAME_HATCHES:
                findings.append(f"{where}: uses {node.id}")
            elif isinstance(node, ast.Attribute) and (node.attr in ATTRIBUTE_HATCHES or
                                                      node.attr == "modules" and _root(node) == "sys"):
                findings.append(f"{where}: uses {node.attr}")
    return sorted(set(findings), key=findings.index)
