"""emu run --gdb: the real gdb drives the stub (emu_x86/emu/gdbstub.py) in batch mode."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from xml.etree import ElementTree

from tests.guestbuild import missing_prerequisite
import unicorn.x86_const as x86

from tests.guestbuild import REPO, build_c

TWO_THREADS = REPO / "guest" / "tests" / "trace" / "gdb_two_threads.c"


def two_threads():
    return build_c(TWO_THREADS.read_text(), "-g", "-pthread")


def debug_session(binary, commands: list[str], cpus: int = 2) -> tuple[str, int, bytes]:
    """Start ``emu run --gdb 0``, point gdb at the port it announces, run
    ``commands``; return gdb's output, emu's exit status and the guest's stdout."""
    if shutil.which("gdb") is None:
        missing_prerequisite("gdb is not installed")
    emu = subprocess.Popen([sys.executable, "-m", "emu_x86.emucli", "run", "--cpus", str(cpus), "--gdb", "0", str(binary)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        announcement = emu.stderr.readline().decode()
        match = re.search(r"127\.0\.0\.1:(\d+)", announcement)
        assert match, announcement
        arguments = ["gdb", "-batch", "-nx", "-ex", "set pagination off", "-ex", "set confirm off",
                     "-ex", f"target remote 127.0.0.1:{match.group(1)}"]
        for command in commands:
            arguments += ["-ex", command]
        gdb = subprocess.run([*arguments, str(binary)], capture_output=True, timeout=120, text=True, check=False)
        stdout, _stderr = emu.communicate(timeout=120)
        return gdb.stdout + gdb.stderr, emu.returncode, stdout
    finally:
        if emu.poll() is None:
            emu.kill()
            emu.wait()


def test_gdb_breakpoint_registers_variable_stepi_threads_and_exit():
    output, status, stdout = debug_session(two_threads(), [
        "break worker", "continue",
        "info registers rip", "print counter", "print $fs_base != 0", "print/x $cs",
        "stepi", "print $pc > worker",
        "info threads",
        "continue"])
    assert re.search(r"Thread 2 hit Breakpoint 1, worker \(arg=0x1\) at .*\.c:\d+", output), output
    assert re.search(r"rip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <worker>", output), output
    assert "$1 = 41" in output and "$2 = 1" in output and "$3 = 0x33" in output
    assert "$4 = 1" in output, "stepi moved the PC past the function's first instruction"
    # Every task is a thread, on a vCPU or not (issue 21): main waits in pthread_join.
    assert re.search(r"^\s+1\s+Thread 1000 \(task 1000, sleeping in futex", output, re.MULTILINE), output
    assert re.search(r"^\*\s+2\s+Thread 1001 \(task 1001, on vCPU 1, running", output, re.MULTILINE), output
    assert "exited with code 03" in output
    assert status == 3 and stdout == b"counter=42\n"


def test_gdb_watchpoint_memory_write_thread_switch_and_hbreak():
    output, status, stdout = debug_session(two_threads(), [
        "break worker", "continue",
        "watch counter", "continue",
        "delete", "set var counter = 100", "print counter",
        "thread 1", "hbreak printf", "continue", "backtrace",
        "continue"])
    assert "Old value = 41" in output and "New value = 42" in output, output
    assert "$1 = 100" in output
    assert re.search(r"Switching to thread 1 \(Thread 1000\)", output)
    assert re.search(r"#1\s+0x[0-9a-f]+ in main \(\) at .*\.c", output), output
    assert "exited with code 075" in output       # gdb prints the status in octal: 100 - 39 = 61
    assert status == 61 and stdout == b"counter=100\n"


def test_target_xml_describes_x86_64_with_segment_bases():
    from emu_x86.emu.gdbstub import REGISTERS, target_xml
    root = ElementTree.fromstring(target_xml().split("\n", 2)[2])
    assert root.find("architecture").text == "i386:x86-64"
    registers = [reg.get("name") for reg in root.iter("reg")]
    assert registers == [name for name, *_ in REGISTERS]
    assert registers[:17] == ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
                              "r11", "r12", "r13", "r14", "r15", "rip"]
    features = {feature.get("name") for feature in root.iter("feature")}
    assert {"org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse", "org.gnu.gdb.i386.segments"} <= features
    assert "fs_base" in registers and "gs_base" in registers


def test_stepping_one_vcpu_leaves_the_other_clocks_alone():
    """Packet level, no gdb: run to the breakpoint, then `vCont;s` thread 2 three
    times: its instruction count grows by one per step, vCPU 0's clock and
    count do not move, and the registers/memory packets read the stepped state."""
    from emu_x86.emu.gdbstub import GdbStub
    from emu_x86.emu.machine import Machine
    from emu_x86.kernel.kernel import Kernel, KernelConfig

    binary = str(two_threads())
    machine = Machine(cpus=2, memory_bytes=256 << 20)
    kernel = Kernel(machine, KernelConfig(argv=[binary], envp=[]))
    kernel.start(binary)
    stub = GdbStub(machine, 0, exit_status=kernel.exit_status)
    try:
        worker = int(subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
                     .split(" T worker")[0].rsplit("\n", 1)[-1], 16)
        assert stub._handle(f"Z0,{worker:x},1") == "OK"
        assert stub._handle("c") == "T05thread:2;swbreak:;"
        vcpu0, vcpu1 = machine.vcpus
        assert vcpu1.uc.reg_read(x86.UC_X86_REG_RIP) == worker
        assert stub._handle(f"z0,{worker:x},1") == "OK"
        still = (vcpu0.cycles, vcpu0.instructions)
        counts = [vcpu1.instructions]
        for _ in range(3):
            assert stub._handle("vCont;s:2") == "T05thread:2;"
            counts.append(vcpu1.instructions)
        assert [after - before for before, after in zip(counts, counts[1:])] == [1, 1, 1]
        assert (vcpu0.cycles, vcpu0.instructions) == still
        assert stub._handle("Hg2") == "OK"
        rip = int.from_bytes(bytes.fromhex(stub._handle("p10")), "little")
        assert rip > worker
        code = bytes.fromhex(stub._handle(f"m{worker:x},4"))
        assert code == machine.read_virtual(vcpu1, worker, 4)
        assert stub._handle("qfThreadInfo") == "m1,2"
        assert stub._handle("c") == "W03"
    finally:
        stub.listener.close()


def test_gdb_ctrl_c_interrupts_a_running_guest():
    """gdb's Ctrl-C (SIGINT to gdb, a raw 0x03 on the wire) stops a guest
    spinning after `continue`: gdb reports SIGINT in main, reads and writes a
    variable, and the guest then runs to its exit."""
    import queue
    import signal
    import threading

    if shutil.which("gdb") is None:
        missing_prerequisite("gdb is not installed")
    binary = build_c((REPO / "guest" / "tests" / "trace" / "gdb_spin.c").read_text(), "-g")
    emu = subprocess.Popen([sys.executable, "-m", "emu_x86.emucli", "run", "--gdb", "0", str(binary)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    gdb = subprocess.Popen(["gdb", "-nx", "-q", str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in gdb.stdout], daemon=True).start()

    def send(*commands):
        for command in commands:
            gdb.stdin.write(command + "\n")
        gdb.stdin.flush()

    def wait_for(text: str) -> str:
        seen = ""
        while text not in seen:
            seen += lines.get(timeout=60)
        return seen

    try:
        port = re.search(r"127\.0\.0\.1:(\d+)", emu.stderr.readline().decode()).group(1)
        send("set pagination off", "set confirm off", f"target remote 127.0.0.1:{port}",
             "break main", "continue")
        wait_for("Breakpoint 1, main ()")
        send("delete", "continue")          # from here on the guest only spins in main
        wait_for("Continuing.")
        # gdb may take the SIGINT before it has sent its resume packet (a
        # loaded host widens that window), so it is repeated until gdb reports
        # it -- but not sooner than 5 s apart: a second SIGINT while gdb waits
        # for the stop its 0x03 asked for makes gdb give up ("Disconnected
        # from target." under `set confirm off`, remote.c's interrupt_query).
        seen = ""
        for _ in range(12):
            gdb.send_signal(signal.SIGINT)
            try:
                while "Program received signal SIGINT, Interrupt." not in seen:
                    seen += lines.get(timeout=5)
                break
            except queue.Empty:
                continue
        assert "Program received signal SIGINT, Interrupt." in seen, seen
        frame = wait_for("\n")
        assert "main ()" in frame or "in main" in frame, frame
        send("print go", "set var go = 1", "continue")
        rest = wait_for("exited with code")
        assert "$1 = 0" in rest, rest
        send("quit")
        gdb.wait(timeout=60)
        assert emu.wait(timeout=60) in (5, 6)
    finally:
        for process in (gdb, emu):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_ctrl_c_sent_with_the_resume_packet_still_stops_the_guest():
    """Packet level: a 0x03 that arrives before the `c` packet it raced with is
    kept, so `c` stops at once with SIGINT instead of running a spinning guest forever."""
    import socket

    from emu_x86.emu.gdbstub import GdbStub
    from emu_x86.emu.machine import Machine
    from emu_x86.kernel.kernel import Kernel, KernelConfig

    binary = str(build_c((REPO / "guest" / "tests" / "trace" / "gdb_spin.c").read_text(), "-g"))
    machine = Machine(cpus=1, memory_bytes=64 << 20)
    kernel = Kernel(machine, KernelConfig(argv=[binary], envp=[]))
    kernel.start(binary)
    stub = GdbStub(machine, 0, exit_status=kernel.exit_status)
    stub.listener.close()
    gdb_end, stub.connection = socket.socketpair()
    try:
        gdb_end.sendall(b"\x03$c#63")
        packet = stub._read_packet()
        assert packet == "c"
        assert stub._handle(packet) == "T02thread:1;"
        assert gdb_end.recv(16) == b"+"
        # The byte that came in the same read as `c`, just after it (the user
        # pressed Ctrl-C right after `continue`): it is in the stub's buffer,
        # not the socket, when the run starts, and still stops it.
        import threading
        gdb_end.sendall(b"$c#63\x03")
        packet = stub._read_packet()
        assert packet == "c"
        before = machine.vcpus[0].instructions
        fallback = threading.Timer(5, gdb_end.sendall, [b"\x03"])    # ends the run should the byte be lost
        fallback.start()
        try:
            assert stub._handle(packet) == "T02thread:1;"
        finally:
            fallback.cancel()
        assert machine.vcpus[0].instructions == before, "the guest ran: the buffered Ctrl-C was missed"
        assert gdb_end.recv(16) == b"+"
        # Mid-run: the byte arrives while `c` runs (polled between scheduling steps).
        before = machine.vcpus[0].instructions
        threading.Timer(0.3, gdb_end.sendall, [b"\x03"]).start()
        assert stub._handle("c") == "T02thread:1;"
        assert machine.vcpus[0].instructions > before
    finally:
        gdb_end.close()
        stub.connection.close()
        machine.close()


# ---- issue 21: exact watchpoints, tasks as threads, stepping over a sleep, monitor --------

WATCH_THREADS = REPO / "guest" / "tests" / "trace" / "gdb_watch_threads.c"


def _store_to_counter_and_next(binary) -> tuple[int, int]:
    """In writer(): the instruction that stores `counter`, and the one after it (objdump)."""
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(binary)], capture_output=True, text=True,
                             check=True).stdout
    body = listing.split("<writer>:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    addresses = [int(line.split(":")[0], 16) for line in body]
    for index, line in enumerate(body):
        if "<counter>" in line and re.search(r"\bmov\w*\s+%\w+,", line):
            return addresses[index], addresses[index + 1]
    raise AssertionError(listing)


def test_watchpoint_set_after_the_loop_ran_stops_after_each_write_on_the_writer():
    """Three threads on two vCPUs; the watch is set once writer()'s loop has run
    (its blocks translated): five continues stop right after five consecutive
    stores, each on the writing thread; main, asleep in pthread_join, is a
    thread with a backtrace; the monitor shows the ASIDs and CPU 0's TLB."""
    binary = build_c(WATCH_THREADS.read_text(), "-g", "-pthread")
    _store, after_store = _store_to_counter_and_next(binary)
    commands = ["break checkpoint if i == 3", "continue", "watch counter", "delete 1"]
    for _ in range(5):
        commands += ["continue", 'printf "stop pc=%#lx thread=%d\\n", $pc, $_thread']
    commands += ["info threads", "thread 1", "bt", "monitor asids", "monitor tlb 0", "monitor xstate",
                 "delete", "continue"]
    output, status, stdout = debug_session(binary, commands)
    assert status == 0 and stdout == b"counter=12\n", output
    olds = [int(value) for value in re.findall(r"Old value = (\d+)", output)]
    news = [int(value) for value in re.findall(r"New value = (\d+)", output)]
    assert olds == [4, 5, 6, 7, 8] and news == [5, 6, 7, 8, 9], output
    stops = re.findall(r"stop pc=(0x[0-9a-f]+) thread=(\d+)", output)
    assert [int(pc, 16) for pc, _ in stops] == [after_store] * 5, (hex(after_store), output)
    writer_thread = re.search(r"Thread (\d+) hit Breakpoint 1, checkpoint", output).group(1)
    assert {thread for _, thread in stops} == {writer_thread}
    assert len(re.findall(rf"Thread {writer_thread} hit Hardware watchpoint 2: counter", output)) == 5
    assert re.search(r"^\s+1\s+Thread 1000 \(task 1000, sleeping in futex", output, re.MULTILINE), output
    assert re.search(r"#\d+\s+0x[0-9a-f]+ in main \(\) at .*\.c:\d+", output), output
    assert re.search(r"^CPU 0: loaded mm ctx_id \d+ \(tlb_gen \d+\), ASID \d+, (active|lazy)", output, re.MULTILINE)
    assert re.search(r"^  ASID 1: ctx_id \d+, tlb_gen \d+", output, re.MULTILINE), output
    assert re.search(r"^vCPU 0: CR3 0x[0-9a-f]+, PCID \d+, task \d+, \d+ valid TLB entries", output, re.MULTILINE)
    assert re.search(r"^  0x0000000000401000 -> 0x[0-9a-f]+  pcid +\d+  4K  --UX-$", output, re.MULTILINE), output
    assert re.search(r"XCR0 0x[0-9a-f]+  XFD 0x[0-9a-f]+  XFD_ERR 0x0  XINUSE 0x[0-9a-f]+", output), output


def test_read_and_access_watchpoints_stop_after_the_load():
    binary = build_c(WATCH_THREADS.read_text(), "-g", "-pthread")
    store, after_store = _store_to_counter_and_next(binary)
    output, status, _stdout = debug_session(binary, [
        "break checkpoint if i == 5", "continue", "delete",
        "rwatch counter", "continue", 'printf "read pc=%#lx\\n", $pc', "delete",
        "awatch counter", "continue", 'printf "access pc=%#lx\\n", $pc', "continue", 'printf "access pc=%#lx\\n", $pc',
        "delete", "continue"])
    assert status == 0, output
    # the stop comes right after the load of counter (mov, then add, then the store)
    read_pc = int(re.search(r"read pc=(0x[0-9a-f]+)", output).group(1), 16)
    assert store - 8 < read_pc < store and "Hardware read watchpoint 2: counter" in output, output
    assert "Value = 6" in output
    access = [int(pc, 16) for pc in re.findall(r"access pc=(0x[0-9a-f]+)", output)]
    # from just after the load: the store, then the next iteration's load
    assert access == [after_store, read_pc], output
    assert "Old value = 6" in output and "New value = 7" in output and "Value = 7" in output


def test_stepping_over_a_sleeping_syscall_returns_when_it_returns(tmp_path):
    """stepi on a nanosleep's SYSCALL instruction: the step ends after the call,
    with its result in RAX and the task back on its vCPU (not an idle CPU)."""
    binary = build_c("#include <time.h>\nint main(void) {\n struct timespec t = {0, 2000000};\n"
                     " return nanosleep(&t, 0) == 0 ? 7 : 1;\n}\n", "-g")
    script = tmp_path / "step.gdb"
    script.write_text("break clock_nanosleep\ncontinue\n"
                      "while *(unsigned short *)$pc != 0x050f\n  stepi\nend\n"
                      'printf "at syscall pc=%#lx rax=%ld\\n", $pc, $rax\n'
                      "stepi\n"
                      'printf "after pc=%#lx rax=%ld\\n", $pc, $rax\n'
                      "info threads\ncontinue\n")
    output, status, _ = debug_session(binary, [f"source {script}"], cpus=1)
    at = re.search(r"at syscall pc=(0x[0-9a-f]+) rax=(\d+)", output)
    after = re.search(r"after pc=(0x[0-9a-f]+) rax=(-?\d+)", output)
    assert at and after, output
    assert int(at.group(2)) == 230                           # SYS_clock_nanosleep
    assert int(after.group(1), 16) == int(at.group(1), 16) + 2 and int(after.group(2)) == 0, output
    assert re.search(r"^\*\s+1\s+Thread 1000 \(task 1000, on vCPU 0, running", output, re.MULTILINE), output
    assert status == 7
