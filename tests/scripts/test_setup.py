"""scripts/setup in a copy of the checkout: what it installs, and what it leaves alone when nothing
changed. The Python in `.venv` is a stand-in that notes each pip command, and Debian's packages
are stand-ins on the PATH, so nothing is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTE_ARGUMENTS = '#!/bin/sh\necho "$*" >> "$(dirname "$0")/../../pip-calls"\n'
UP_TO_DATE = "setup: Python packages: up to date (pyproject.toml unchanged since the last install)"


def run_setup(
    root: Path, args: list[str], path: str, *, as_nobody: bool = False
) -> subprocess.CompletedProcess[str]:
    """`root`'s scripts/setup with `args` and `path` as PATH, as the user nobody if asked."""
    nobody = 65534 if as_nobody else None
    return subprocess.run(
        [root / "scripts" / "setup", *args],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        user=nobody,
        group=nobody,
        extra_groups=[] if as_nobody else None,
    )


@dataclass(frozen=True)
class Checkout:
    root: Path
    bin: Path  # first on the PATH

    def setup(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_setup(self.root, list(args), f"{self.bin}{os.pathsep}{os.environ['PATH']}")

    def pip_calls(self) -> list[str]:
        calls = self.root / "pip-calls"
        return calls.read_text().splitlines() if calls.exists() else []


def executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def checkout(tmp_path: Path) -> Checkout:
    """The setup script and pyproject.toml, a `.venv` already made, espeak-ng, chromium, nginx."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "setup", tmp_path / "scripts" / "setup")
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    executable(tmp_path / ".venv" / "bin" / "python", NOTE_ARGUMENTS)
    for package in ("espeak-ng", "chromium", "nginx"):
        executable(tmp_path / "bin" / package, "#!/bin/sh\n")
    return Checkout(tmp_path, tmp_path / "bin")


def test_a_second_run_installs_nothing(checkout: Checkout) -> None:
    first = checkout.setup()
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "setup: Debian packages: espeak-ng already installed",
        "setup: virtual environment: .venv already made",
        "setup: Python packages: installing the project into .venv (pip)",
    ]
    assert checkout.pip_calls() == ["-m pip install -q --upgrade pip", "-m pip install -q -e ."]
    second = checkout.setup()
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == UP_TO_DATE
    assert len(checkout.pip_calls()) == 2


def test_the_test_tools_are_installed_once_when_asked_for(checkout: Checkout) -> None:
    assert checkout.setup().returncode == 0
    with_tests = checkout.setup("--test")
    assert with_tests.stdout.splitlines()[0] == (
        "setup: Debian packages: espeak-ng chromium nginx already installed"
    )
    assert checkout.pip_calls()[-1] == "-m pip install -q -e .[test]"
    # Installed with the test tools, the project is also what a plain setup needs.
    for args in (["--test"], []):
        assert checkout.setup(*args).stdout.splitlines()[-1] == UP_TO_DATE
    assert len(checkout.pip_calls()) == 4


def test_a_changed_pyproject_is_installed_again(checkout: Checkout) -> None:
    assert checkout.setup("--test").returncode == 0
    with (checkout.root / "pyproject.toml").open("a") as pyproject:
        pyproject.write("# a new dependency, say\n")
    assert checkout.setup().returncode == 0
    assert checkout.pip_calls()[-1] == "-m pip install -q -e ."
    # The last install was without the test tools: asking for them installs again.
    assert checkout.setup("--test").returncode == 0
    assert checkout.pip_calls()[-1] == "-m pip install -q -e .[test]"


def test_an_unknown_option_is_refused(checkout: Checkout) -> None:
    refused = checkout.setup("--tests")
    assert refused.returncode == 2
    assert refused.stderr == "usage: scripts/setup [--test]\n"
    assert checkout.pip_calls() == []


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user may read (pytest's tmp_path is its owner's only)."""
    made = Path(tempfile.mkdtemp(prefix="setup-"))
    made.chmod(0o755)
    yield made
    shutil.rmtree(made)


def test_without_root_or_sudo_it_says_what_to_install(shared_dir: Path) -> None:
    """As a user with no sudo and no espeak-ng on the PATH (nobody, when tests run as root)."""
    (shared_dir / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "setup", shared_dir / "scripts" / "setup")
    tools = shared_dir / "bin"  # only what the script runs before it stops
    tools.mkdir()
    for tool in ("bash", "dirname", "id"):
        found = shutil.which(tool)
        assert found is not None
        (tools / tool).symlink_to(found)
    refused = run_setup(shared_dir, ["--test"], str(tools), as_nobody=os.geteuid() == 0)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "setup: no root and no sudo: install espeak-ng chromium by hand"
        " (as root: apt-get install espeak-ng chromium), then run this again"
    ]
    assert not (shared_dir / ".venv").exists()
