"""The syscall log (``emu run --strace``): names.py (numbers to Linux names),
decode.py (flags, strings, structs), signatures.py (per-call table), tracer.py
(the hooks the kernel calls and strace -f's line format)."""
