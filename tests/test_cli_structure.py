"""How the `batchline` CLI is put together: one parser, one handler per command, and no import back into cli.py."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from batchline.cli import build_parser, main

from .conftest import ROOT

PACKAGE = ROOT / "batchline"
ENTRY_POINTS = (PACKAGE / "cli.py", PACKAGE / "__main__.py")


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


def test_every_command_has_a_handler() -> None:
    parsers = command_parsers()
    assert set(parsers) >= {"demo", "worker", "submit", "status", "cancel", "wait", "results", "jobs", "emulator"}
    for name, parser in parsers.items():
        assert callable(parser.get_default("handler")), name


@pytest.mark.parametrize("command", [name for name in command_parsers() if name != "worker"])  # worker execs celery
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: batchline {command} ")


def imports_of(path: Path) -> set[str]:
    """The modules a file imports, at its top or inside functions, relative imports made absolute."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


def test_no_module_imports_the_cli_back() -> None:
    # cli.py imports the command modules; one importing cli.py back would make a cycle. `python -m batchline` runs
    # __main__, which nothing imports.
    modules = [path for path in sorted(PACKAGE.rglob("*.py")) if path not in ENTRY_POINTS]
    offenders = [str(path.relative_to(ROOT)) for path in modules if "batchline.cli" in imports_of(path)]
    assert offenders == []


def test_the_import_check_sees_relative_imports() -> None:
    assert "batchline.cli" in imports_of(PACKAGE / "__main__.py")  # `from .cli import main`
    assert {"batchline.cli_args", "batchline.cli_args.positive_int"} <= imports_of(PACKAGE / "cli_jobs.py")


def test_the_cli_loads_no_pydantic_before_it_parses() -> None:
    # `batchline worker` hands over to celery right after importing batchline.cli: it must not pay for pydantic.
    loaded = "sorted(m for m in sys.modules if m.startswith(('pydantic', 'batchline.emulator')))"
    code = f"import sys, batchline.cli; print({loaded})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"
