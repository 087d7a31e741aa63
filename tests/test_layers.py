"""The import contract (pyproject.toml, run by `lint-imports` in CI) catches wrong imports.

Each case copies the package, adds one import that breaks a rule of
ARCHITECTURE.md's layering, and runs `lint-imports` on the copy: the contract
that states the rule must report it broken. The unchanged copy passes, so each
failure is the bad import's doing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_copy(tmp_path: Path, edit: tuple[str, str] | None) -> subprocess.CompletedProcess[str]:
    src = tmp_path / "src"
    shutil.copytree(
        REPO / "src" / "sealroom",
        src / "sealroom",
        ignore=shutil.ignore_patterns("__pycache__", "data"),
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    if edit is not None:
        module, line = edit
        path = src / module
        path.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text() if path.exists() else ""
        path.write_text(text + f"\n{line}\n")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_unchanged_package_keeps_every_contract(tmp_path: Path) -> None:
    done = lint_copy(tmp_path, None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("edit", "broken"),
    [
        # an arrow back up: policy judging computations by importing them
        (("sealroom/policy/rules.py", "import sealroom.computations.registry"), "Policy never"),
        (("sealroom/policy/rules.py", "import sealroom.computations.registry"), "point down"),
        # the trusted code reaching for the SDK
        (("sealroom/enclave/worker.py", "import sealroom.client.http"), "The enclave imports"),
        # the SDK reaching into the server
        (("sealroom/client/trust.py", "import sealroom.storage.schema"), "The SDK never"),
        # the floor reaching up
        (("sealroom/crypto/keys.py", "import sealroom.statements.models"), "point down"),
        (("sealroom/terms.py", "import sealroom.connectors.profile"), "point down"),
        # siblings of one layer are independent
        (("sealroom/protocols/psi.py", "import sealroom.connectors.files"), "point down"),
        # a new top-level package must be given a layer
        (("sealroom/stray/__init__.py", "import sealroom.errors"), "point down"),
        # a cycle between two modules of a package
        (("sealroom/crypto/keys.py", "import sealroom.crypto.keystore"), "No import cycles"),
    ],
)
def test_a_wrong_import_breaks_its_contract(
    tmp_path: Path, edit: tuple[str, str], broken: str
) -> None:
    done = lint_copy(tmp_path, edit)
    assert done.returncode != 0
    lines = [line for line in done.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(broken in line for line in lines), done.stdout
