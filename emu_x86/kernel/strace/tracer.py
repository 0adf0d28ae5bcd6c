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
- ``interrupted(task, restart_number)`` when a signal ends the task's sleep in a
  call: the line shows the restart code Linux's syscall-exit stop shows
  (``? ERESTARTSYS (To be restarted if SA_RESTART is set)``), whatever the
  return to user then makes of it (-EINTR, or the call run again);
- ``ignored(task, info)`` when a signal is discarded at generation because it is
  ignored (SIG_IGN, or a default action of ignore). Under ptrace Linux queues
  such signals anyway (sig_ignored is false for a traced task), so ``strace -f``
  shows their ``--- SIGCHLD {...} ---`` line when the task next returns to user
  mode; this log shows the line at that point too, without queuing the signal or
  ending a sleep with it, so the guest runs as it does without --strace (where
  real strace's ptrace would interrupt the sleep: ``restart_syscall(<...>)``);
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

SIGKILL = 9
# The restart codes (include/linux/errno.h) with which a signal ends a sleep in a call.
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
# Calls whose interrupted sleep does not end with -ERESTARTSYS (sleeps the kernel
# restarts under SA_RESTART name their syscall number: ``restart_number``):
# hrtimer_nanosleep and do_sys_poll set a restart block; pause, sigsuspend and
# the select family return -ERESTARTNOHAND; anything else (epoll_wait,
# rt_sigtimedwait, ...) ends with -EINTR itself.
RESTART_CODES = {
    "nanosleep": ERESTART_RESTARTBLOCK, "clock_nanosleep": ERESTART_RESTARTBLOCK,
    "poll": ERESTART_RESTARTBLOCK,
    "pause": ERESTARTNOHAND, "rt_sigsuspend": ERESTARTNOHAND, "select": ERESTARTNOHAND,
    "pselect6": ERESTARTNOHAND, "ppoll": ERESTARTNOHAND,
}
# futex's own wait paths (emu_x86/kernel/futex/core.py restart modes): a timed FUTEX_WAIT
# sets a restart block (futex_wait_restart), an untimed one -ERESTARTSYS, the PI
# lock paths -ERESTARTNOINTR.
FUTEX_RESTART_CODES = {"restartsys": ERESTARTSYS, "restartnointr": ERESTARTNOINTR,
                       "eintr": ERESTART_RESTARTBLOCK}

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
    leader: str = ""                  # "[pid N] " as it was when the call was entered
    restart_code: int | None = None   # set when a signal ended its sleep (-ERESTART*)

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
        self.ignored_signals: dict[int, list] = {}      # tid -> discarded signals not yet shown

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
        # strace writes a line's "[pid N] " when the call enters: a clone's line has
        # none if the process was alone then, though it ends with two tasks.
        call = PendingCall(task, number, name, list(args), leader=self._leader(task))
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
        head = call.leader + f"{call.name}(" + self._arguments(call, head_only=True)
        self.stream.write(head)
        self.stream.flush()
        call.printed_head = True
        call.head_length = len(head)
        self.open_line = call

    def leave(self, task: "Task", rax: int) -> None:
        """The task returns to user mode (from a call, or switched back in)."""
        call = self.pending.pop(task.tid, None)
        if call is not None:
            # An interrupted sleep shows its restart code, not what the signal's
            # delivery will make of RAX (-EINTR, or the number of the call run again).
            call.result = -call.restart_code if call.restart_code is not None else d.signed64(rax)
            self._finish_line(call, self._result_text(call))
        for info in self.ignored_signals.pop(task.tid, ()):
            self.signal(task, info)

    def interrupted(self, task: "Task", restart_number: int | None) -> None:
        """A signal ends the task's sleep in its pending call (send_signal): which
        -ERESTART* Linux's sleep would have returned, or None for a plain -EINTR."""
        call = self.pending.get(task.tid)
        if call is None:
            return
        futex_mode = getattr(task, "futex_restart", None) if call.name == "futex" else None
        if futex_mode is not None:
            call.restart_code = FUTEX_RESTART_CODES.get(futex_mode)
        elif restart_number is not None:
            call.restart_code = ERESTARTSYS
        elif call.name == "clock_nanosleep" and call.args[1] & 1:
            call.restart_code = ERESTARTNOHAND          # an absolute sleep is not given a restart block
        else:
            call.restart_code = RESTART_CODES.get(call.name)

    def ignored(self, task: "Task", info) -> None:
        """A signal discarded at generation as ignored: shown when the task next
        returns to user mode, where strace -f shows it (a traced task queues it)."""
        if info.signo != SIGKILL:
            self.ignored_signals.setdefault(task.tid, []).append(info)

    def signal(self, task: "Task", info) -> None:
        self._write_line(self._leader(task) + f"--- {d.signal_name(info.signo)} {d.siginfo(info)} ---")

    def exited(self, task: "Task", status: int | None = None, signal: int | None = None) -> None:
        self.pending.pop(task.tid, None)
        self.ignored_signals.pop(task.tid, None)
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
            head = call.leader + f"{call.name}(" + self._arguments(call) + ")"
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
