"""``emu run --strace``: one line per system call per task, as ``strace -f`` prints them.

The kernel calls four hooks when ``Kernel.strace`` is set (None otherwise, so
an untraced run pays one attribute test per syscall):

- ``enter(task, number, args)`` on syscall entry (do_syscall_64), before the
  handler: input arguments are decoded now, as strace does at syscall-enter;
- ``leave(task, rax)`` when the call's result is in RAX: at once for a call
  that did not sleep, or when a sleeper is switched back in (its result was
  written into its saved registers by whoever completed it), before any
  signal is delivered on that return to user;
- ``signal(task, info)`` when a signal is delivered (``--- SIGSEGV {...} ---``);
- ``exited(task, status, signal)`` per task ending (``+++ exited with 0 +++``).

Output mirrors strace: ``name(args) = result`` with the result at column 40,
``[pid N]`` before every line while more than one task lives, and a call that
sleeps while another task prints is split into ``<unfinished ...>`` and
``<... name resumed>``. Lines go to one stream, flushed per line so they stay
in order with the guest's own stderr.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from emu_x86.kernel.strace import decode as d
from emu_x86.kernel.strace.names import syscall_name
from emu_x86.kernel.strace.signatures import SIGNATURES, SPECIAL, In, Out

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.kernel.task import Task

RESULT_COLUMN = 40          # strace's default alignment of " = result" (-a 40)
MAX_ERRNO = 4095


@dataclass
class PendingCall:
    task: "Task"
    number: int
    name: str
    args: list[int]
    decoded: list[str | None] = field(default_factory=list)   # None: an output argument, decoded at exit
    result: int = 0
    printed_head: bool = False        # "[pid N] name(in-args" already written
    head_length: int = 0

    @property
    def mm(self):
        return self.task.mm

    @property
    def restored_mask(self) -> int:
        return self.task.signal_mask


class Strace:
    def __init__(self, kernel, stream: TextIO):
        self.kernel = kernel
        self.stream = stream
        self.pending: dict[int, PendingCall] = {}
        self.open_line: PendingCall | None = None      # a head written without its end
        self.exit_codes: dict[int, int] = {}

    # ---- output -----------------------------------------------------------------------

    def _live_tasks(self) -> int:
        return sum(1 for process in self.kernel.processes.values() for task in process.tasks
                   if task.state != "exited")

    def _leader(self, task: "Task") -> str:
        return f"[pid {task.tid:5d}] " if self._live_tasks() > 1 else ""

    def _interrupt_open_line(self) -> None:
        if self.open_line is not None:
            self.stream.write(" <unfinished ...>\n")
            self.open_line = None

    def _write_line(self, text: str) -> None:
        self._interrupt_open_line()
        self.stream.write(text + "\n")
        self.stream.flush()

    # ---- hooks ------------------------------------------------------------------------

    def started(self, task: "Task", path: str) -> None:
        """The first program's execve, which emu performed before the log began:
        its line from the initial stack it built (argc, argv[], envp[] at RSP)."""
        rsp = task.registers["rsp"]
        raw = d.read(task.mm, rsp, 8)
        argc = int.from_bytes(raw, "little") if raw else 0
        envp = rsp + 8 * (argc + 2)
        arguments = ", ".join([d.quote(path.encode()), d.string_array(task.mm, rsp + 8),
                               d.pointer(envp) + f" /* {d.count_array(task.mm, envp) or 0} vars */"])
        self._interrupt_open_line()
        self.stream.write(_align(f"execve({arguments})", "0") + "\n")
        self.stream.flush()

    def enter(self, task: "Task", number: int, args: list[int]) -> None:
        name = syscall_name(number)
        call = PendingCall(task, number, name, list(args))
        signature = SIGNATURES.get(name)
        if name in SPECIAL or signature is None:
            call.decoded = []
        else:
            call.decoded = [spec.fn(call, value) if isinstance(spec, In) else None
                            for spec, value in zip(signature[0], args)]
        if name in ("exit", "exit_group"):
            self.exit_codes[task.tid] = d.signed32(args[0]) & 0xFF
        if signature is not None and signature[1] is None:
            # exit/exit_group do not return: the line ends with "?" now.
            self._finish_line(call, "?")
            return
        self.pending[task.tid] = call

    def blocked(self, task: "Task") -> None:
        """The call sleeps: write its head so other tasks' lines show it unfinished."""
        call = self.pending.get(task.tid)
        if call is None or call.printed_head:
            return
        self._interrupt_open_line()
        head = self._leader(task) + f"{call.name}(" + self._arguments(call, head_only=True)
        self.stream.write(head)
        self.stream.flush()
        call.printed_head = True
        call.head_length = len(head)
        self.open_line = call

    def leave(self, task: "Task", rax: int) -> None:
        call = self.pending.pop(task.tid, None)
        if call is None:
            return
        call.result = d.signed64(rax)
        self._finish_line(call, self._result_text(call))

    def signal(self, task: "Task", info) -> None:
        self._write_line(self._leader(task) + f"--- {d.signal_name(info.signo)} {d.siginfo(info)} ---")

    def exited(self, task: "Task", status: int | None = None, signal: int | None = None) -> None:
        self.pending.pop(task.tid, None)
        if self.open_line is not None and self.open_line.task is task:
            self.stream.write(")")           # its head is ended by the exit line below
        leader = self._leader(task)
        if signal:
            self._write_line(leader + f"+++ killed by {d.signal_name(signal)} +++")
        else:
            code = self.exit_codes.pop(task.tid, 0) if status is None else status & 0xFF
            self._write_line(leader + f"+++ exited with {code} +++")

    # ---- formatting ---------------------------------------------------------------------

    def _arguments(self, call: PendingCall, head_only: bool = False, tail_only: bool = False) -> str:
        """The argument list; ``head_only``: up to the first output argument (with its
        separator), ``tail_only``: the rest."""
        if call.name in SPECIAL:
            words = SPECIAL[call.name](call)
            return "" if tail_only else ", ".join(words) + ("" if head_only else "")
        signature = SIGNATURES.get(call.name)
        if signature is None:
            words = [f"{value:#x}" for value in call.args]
            return "" if tail_only else ", ".join(words)
        failed = -MAX_ERRNO <= call.result < 0
        arity = len(signature[0])
        if call.name in ("open", "openat") and not call.args[arity - 2] & 0o20000100:
            arity -= 1            # the mode means something only with O_CREAT or O_TMPFILE
        words = []
        split = arity
        for index, (spec, value) in enumerate(zip(signature[0][:arity], call.args)):
            if isinstance(spec, In):
                words.append(call.decoded[index])
            else:
                split = min(split, index)
                if head_only:
                    break
                if isinstance(spec, Out) and failed:
                    words.append(d.pointer(value))
                else:
                    words.append(spec.fn(call, value))
        if head_only:
            return ", ".join(words) + (", " if split < arity and words else "")
        joined = _join(words)
        if tail_only:
            return _join(words[split:])
        return joined

    def _result_text(self, call: PendingCall) -> str:
        result = call.result
        if -MAX_ERRNO <= result < 0:
            return d.error_result(-result)
        signature = SIGNATURES.get(call.name)
        printer = signature[1] if signature is not None else None
        if printer is None:
            return str(result) if signature is not None or call.name in SPECIAL else f"{result:#x}"
        return printer(call, result & ((1 << 64) - 1))

    def _finish_line(self, call: PendingCall, result: str) -> None:
        if call.printed_head:
            tail = self._arguments(call, tail_only=True) + ")"
            if self.open_line is call:
                # Nobody wrote in between: the line goes on as if the call had not slept.
                self.open_line = None
                self.stream.write(_align(tail, result, call.head_length) + "\n")
            else:
                self._interrupt_open_line()
                body = self._leader(call.task) + f"<... {call.name} resumed>" + tail
                self.stream.write(_align(body, result) + "\n")
        else:
            self._interrupt_open_line()
            head = self._leader(call.task) + f"{call.name}(" + self._arguments(call) + ")"
            self.stream.write(_align(head, result) + "\n")
        self.stream.flush()


def _join(words: list[str]) -> str:
    # An empty word is an output that printed nothing; "=> {...}" follows its struct with a space.
    text = ""
    for word in words:
        if not word:
            continue
        text += (" " if word.startswith("=> ") else ", " if text else "") + word
    return text


def _align(text: str, result: str, already_written: int = 0) -> str:
    # strace pads the call to column 40 of the line (leader included) before " = ".
    width = max(RESULT_COLUMN - 1 - already_written, 0)
    return f"{text:<{width}} = {result}"
