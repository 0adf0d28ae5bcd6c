# Everything declarative lives in pyproject.toml; this file exists because
# cffi's build hook (cffi_modules) is configured through setup(), and because
# the guest files a user needs (emu_x86/emucli/resources.py: headers, examples,
# workloads) are copied into the emucli package when a wheel is built, so an
# installed emu finds them without a top-level "guest" in site-packages.
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED_GUEST_DIRS = ("include", "examples", "workloads")     # = emucli.resources.SHIPPED_GUEST_DIRS
IGNORED = shutil.ignore_patterns(".build", "__pycache__", "*.o", "*.pyc")


class build_py_with_guest_files(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return           # an editable install reads the source tree's guest/ directly
        target = Path(self.build_lib) / "emu_x86" / "emucli" / "guest"
        for name in SHIPPED_GUEST_DIRS:
            source = HERE / "guest" / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=IGNORED, dirs_exist_ok=True)


setup(cffi_modules=["emu_x86/emu/timing/_build_hotpath.py:ffibuilder"],
      cmdclass={"build_py": build_py_with_guest_files})
