# Everything declarative lives in pyproject.toml; this file only exists
# because cffi's build hook (cffi_modules) is configured through setup().
from setuptools import setup

setup(cffi_modules=["emu/timing/_build_hotpath.py:ffibuilder"])
