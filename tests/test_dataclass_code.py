"""The `emu` command's kept dataclass code (emu_x86/emucli/dataclass_code.py):
the classes it makes behave as the builtin compile makes them, a second
process compiles none of the texts the first kept, and a disabled store
leaves dataclasses alone."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# A class using what the run's dataclasses use: defaults, a default factory,
# init=False, frozen and ordered comparison, a forward annotation.
PROBE = r'''
import dataclasses, json, sys
from emu_x86.emucli import dataclass_code
if sys.argv[1] == "cached":
    dataclass_code.install()
compiled = []
real_compile = compile
def counting_compile(*args, **kwargs):
    compiled.append(args[0])
    return real_compile(*args, **kwargs)
dataclass_code.compile = counting_compile

@dataclasses.dataclass(frozen=True, order=True)
class Point:
    x: int
    y: int = 2
    tags: list = dataclasses.field(default_factory=list, compare=False)
    hidden: int = dataclasses.field(default=7, init=False, repr=False)
    later: "Point | None" = None

a, b = Point(1), Point(1, 3, ["t"])
try:
    a.x = 5
    frozen = False
except dataclasses.FrozenInstanceError:
    frozen = True
dataclass_code.save()
print(json.dumps({"repr": [repr(a), repr(b)], "eq": a == Point(1, 2, ["other"]), "lt": a < b,
                  "frozen": frozen, "hidden": a.hidden, "hash": hash(a) == hash(Point(1)),
                  "replace": repr(dataclasses.replace(a, y=9)),
                  "fields": [f.name for f in dataclasses.fields(Point)],
                  "installed": dataclasses.__dict__.get("exec") is dataclass_code._exec,
                  "compiled": len(compiled)}))
'''


def run_probe(mode: str, cache: Path) -> dict:
    env = {**os.environ, "EMU_BLOCK_CACHE": str(cache / "block-prices")}
    result = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, env=env,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_kept_code_makes_the_same_classes_and_is_not_compiled_again(tmp_path):
    plain = run_probe("plain", tmp_path)
    first = run_probe("cached", tmp_path)
    second = run_probe("cached", tmp_path)
    behaviour = ("repr", "eq", "lt", "frozen", "hidden", "hash", "replace", "fields")
    assert {key: first[key] for key in behaviour} == {key: plain[key] for key in behaviour}
    assert {key: second[key] for key in behaviour} == {key: plain[key] for key in behaviour}
    assert not plain["installed"] and first["installed"] and second["installed"]
    assert first["compiled"] > 0, "the first process compiles the class's methods"
    assert second["compiled"] == 0, "the second takes every text from the kept file"
    assert len(list((tmp_path / "dataclass-code").glob("*.marshal"))) == 1


def test_disabled_store_leaves_dataclasses_alone(tmp_path):
    env = {**os.environ, "EMU_BLOCK_CACHE": "off"}
    result = subprocess.run([sys.executable, "-c", PROBE, "cached"], cwd=REPO, env=env,
                            capture_output=True, text=True, check=True)
    assert json.loads(result.stdout)["installed"] is False


def test_an_unreadable_file_is_replaced(tmp_path):
    directory = tmp_path / "dataclass-code"
    directory.mkdir()
    from importlib.util import MAGIC_NUMBER
    (directory / f"{MAGIC_NUMBER.hex()}.marshal").write_bytes(b"not marshal data")
    first = run_probe("cached", tmp_path)
    assert first["compiled"] > 0 and first["installed"]
    assert run_probe("cached", tmp_path)["compiled"] == 0


def test_emu_run_installs_it_before_the_run_defines_its_dataclasses(tmp_path):
    """A glibc hello run keeps the run's dataclasses' texts: the file exists
    after one run and holds Task's __init__."""
    from tests.guestbuild import build_c
    program = build_c('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    env = {**os.environ, "EMU_BLOCK_CACHE": str(tmp_path / "block-prices"), "EMU_SERVER": "off"}
    emu = Path(sys.executable).with_name("emu")
    argv = [str(emu), "run"] if emu.exists() else [sys.executable, "-m", "emu_x86.emucli", "run"]
    result = subprocess.run([*argv, str(program)], env=env, capture_output=True, text=True, check=True)
    assert result.stdout == "hi\n"
    import marshal
    (kept,) = (tmp_path / "dataclass-code").glob("*.marshal")
    texts = marshal.loads(kept.read_bytes())
    assert any("def __init__(self,tid:_type_tid,process:" in text for text in texts), \
        "the kernel's Task class is among the kept texts"
