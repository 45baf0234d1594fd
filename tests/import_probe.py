"""What a `pushcap` command imports: the command run in a fresh interpreter, which reports its
exit code and `sys.modules` (start-up is measured against tcpdump, issue 15, and a health check
runs every few seconds: what a command loads without using it is CPU at every run)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_and_list_modules(words: list[str]) -> tuple[int, list[str], subprocess.CompletedProcess]:
    """(the command's exit code, the modules it imported, the process) of `pushcap WORDS`."""
    code = textwrap.dedent(f"""
        import sys
        from pushcap import cli
        sys.argv = ["pushcap", *{words!r}]
        code = cli.main()
        print(repr([code, sorted(sys.modules)]))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PUSHCAP_NO_NATIVE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr
    exit_code, modules = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    return exit_code, modules, out


def loaded_of(not_imported: dict[str, str], modules: list[str]) -> dict[str, str]:
    """The entries of `not_imported` (module -> why not) that `modules` holds, or a submodule."""
    return {name: why for name, why in not_imported.items()
            if any(m == name or m.startswith(name + ".") for m in modules)}
