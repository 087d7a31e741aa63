"""The README's two commands are the project's contract with a fresh machine; keep them true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, "README must open with a sh code block"
    assert text.index("```sh") < text.index("\n## "), "the commands come before any section"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_exactly_two_commands() -> None:
    demo, tests = readme_commands()
    assert demo.endswith("sealroom demo")
    assert "pytest" in tests


def test_ci_runs_both_readme_commands_verbatim_demo_first() -> None:
    demo, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert demo in ci
    assert tests in ci
    # The demo runs first, in the fresh venv, before the test extras are installed.
    assert ci.index(demo) < ci.index(tests)


def test_readme_policy_example_is_a_valid_policy() -> None:
    import json

    from sealroom.policy import PolicyRules

    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Policies.*?```json\n(.*?)```", text, re.S)
    assert block, "the Policies section shows a policy file"
    rules = PolicyRules.parse(json.loads(block.group(1)))
    assert rules.k == 10
    assert rules.sql is not None
    assert rules.dp is not None


def test_readme_lists_every_shipped_computation() -> None:
    from sealroom.computations import default_registry

    text = (ROOT / "README.md").read_text()
    for computation in default_registry():
        assert f"| `{computation.id}` |" in text, computation.id
