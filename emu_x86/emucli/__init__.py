"""The ``emu`` command: the composition root that wires the machine (emu/) to the kernel (kernel/).

It sits above both layers so that ``emu`` never imports ``kernel`` (DESIGN.md).
"""
