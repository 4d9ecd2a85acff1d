"""Every ```python block of README.md runs, in order, so the examples never rot."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def readme_blocks() -> list[str]:
    return BLOCK.findall(README.read_text())


def run_block(code: object, namespace: dict[str, object]) -> None:
    """``exec`` the block; one calling ``asyncio.run`` runs on a thread of its own (with
    this context) if this thread runs an event loop already, as pytest-playwright's sync
    API leaves one running in the main thread once a browser test has started."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        exec(code, namespace)
        return
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(context.run, exec, code, namespace).result()


def test_readme_has_examples():
    assert len(readme_blocks()) >= 8


def test_readme_examples_run_in_order(clean_database, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", clean_database)
    namespace: dict[str, object] = {"__name__": "readme"}
    with contextlib.ExitStack() as stack:
        for number, block in enumerate(readme_blocks(), start=1):
            code = compile(block, f"README.md block {number}", "exec", dont_inherit=True)
            run_block(code, namespace)
            if number == 1:
                # The README says its examples run inside an app context.
                stack.enter_context(namespace["app"].app_context())
        namespace["db"].session.remove()
        for engine in namespace["db"].engines.values():
            engine.dispose()
    printed = capsys.readouterr().out
    assert "The user has updated their email!" in printed
    assert "hidden" in printed and "untracked" in printed
