"""The convbench package as source files: its modules and what each imports, read with ast (nothing
is imported). Shared by tests/test_imports.py (imports run one way) and tests/test_envs.py (each env
holds what its stage imports)."""

import ast

from conftest import PROJECT

PACKAGE = PROJECT / "workflow" / "convbench"


def modules(root=PACKAGE):
    """{dotted name: path} of every module, "convbench.data.catalog"; a package is its __init__.py."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        found[".".join((root.name, *parts))] = path
    return found


def moved(root=PACKAGE):
    """convbench.MOVED, read from the source: {old flat module name: its new homes}."""
    for node in ast.parse((root / "__init__.py").read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "MOVED":
            return ast.literal_eval(node.value)
    return {}


def imported_names(source, module=None, is_package=False):
    """Absolute names of the modules `source` imports, at any depth (imports inside functions count).
    `module`: the dotted name of the module `source` is, for its relative imports."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def package_imports(name, root=PACKAGE):
    """The convbench modules module `name` imports, old flat names resolved to their new homes."""
    known, old = modules(root), moved(root)
    path = known[name]
    found = set()
    for target in imported_names(path.read_text(), name, path.name == "__init__.py"):
        parts = target.split(".")
        if parts[0] != root.name:
            continue
        if len(parts) > 1 and parts[1] in old:
            found.update(f"{root.name}.{home}" for home in old[parts[1]])
        elif target in known:
            found.add(target)
    return found - {name}
