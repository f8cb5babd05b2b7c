"""The convbench package as source files: its modules and what each imports, read with ast (nothing
is imported). Shared by tests/test_imports.py (imports run one way) and tests/test_envs.py (each env
holds what its stage imports)."""

import ast
import functools

from conftest import PROJECT

PACKAGE = PROJECT / "workflow" / "convbench"


@functools.cache  # read once per tree: every module's checks ask for it
def modules(root=PACKAGE):
    """{dotted name: path} of every module, "convbench.data.catalog"; a package is its __init__.py."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        found[".".join((root.name, *parts))] = path
    return found


@functools.cache
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


def resolve(target, root=PACKAGE):
    """The package modules an imported name stands for: an old flat name's new homes, else the module
    itself; none for a name outside the package (or a function imported from a module)."""
    parts = target.split(".")
    if parts[0] != root.name:
        return []
    if len(parts) > 1 and parts[1] in moved(root):
        return [f"{root.name}.{home}" for home in moved(root)[parts[1]]]
    return [target] if target in modules(root) else []


def package_imports(name, root=PACKAGE):
    """The convbench modules module `name` imports, old flat names resolved to their new homes."""
    path = modules(root)[name]
    found = {module for target in imported_names(path.read_text(), name, path.name == "__init__.py")
             for module in resolve(target, root)}
    return found - {name}
