"""Packaging: every Python package of the emulator ships (found by
pyproject.toml's packages.find, so a package added or moved later ships
without an edit), and only the one import name emu_x86 lands at the top of
site-packages.
The wheel itself is built and used in tests/test_wheel_install.py."""
import tomllib

from setuptools import find_packages

from tests.guestbuild import REPO


def _found() -> set[str]:
    rules = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    return set(find_packages(str(REPO), include=rules["include"], exclude=rules["exclude"]))


def test_every_package_directory_ships_in_the_wheel():
    wanted = {str(init.parent.relative_to(REPO)).replace("/", ".")
              for init in (REPO / "emu_x86").rglob("__init__.py")}
    assert wanted - _found() == set(), f"packages missing from the wheel: {sorted(wanted - _found())}"


def test_every_python_folder_of_the_packages_is_a_regular_package():
    """A folder of modules without __init__.py imports from a checkout (a namespace
    package) but packages.find skips it, so the wheel would lack it."""
    for module in (REPO / "emu_x86").rglob("*.py"):
        assert (module.parent / "__init__.py").exists(), f"{module.parent} has no __init__.py"


def test_one_top_level_import_name_and_no_test_or_tool_folder_ships():
    """Generic names (`kernel`, `emu`) at the top of site-packages would collide with
    other projects' (issue 21): everything is emu_x86.*."""
    found = _found()
    assert {name.split(".")[0] for name in found} == {"emu_x86"}, found
    assert {"emu_x86.emu", "emu_x86.emuas", "emu_x86.emucli", "emu_x86.kernel"} <= found


def test_core_install_leaves_test_and_plotting_tools_to_extras():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    for optional in ("pytest", "hypothesis", "dask", "matplotlib"):
        assert optional not in core, optional
    extras = project["optional-dependencies"]
    assert {"test", "compare", "dask", "docs"} <= set(extras)
