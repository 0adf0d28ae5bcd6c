"""IPIs and the APIC timer in virtual time: arrival at send + latency, delivery at the
target's next boundary, synchronous cross-calls that advance the sender by the real wait."""
from emu_x86.emu.machine import Machine

PING_VECTOR = 0x40


class PingPong:
    """A trap handler with no tasks: idle vCPUs bounce an IPI ``rounds`` times."""

    def __init__(self, machine, rounds):
        self.machine = machine
        self.rounds = rounds
        self.arrivals = []          # (cpu, cycles at delivery)
        machine.attach(self)

    def handle_interrupt(self, vcpu, vector):
        assert vector == PING_VECTOR
        self.arrivals.append((vcpu.index, vcpu.cycles))
        vcpu.write_msr(0x80B, 0)                           # EOI
        if len(self.arrivals) < 2 * self.rounds:
            vcpu.write_msr(0x830, (1 - vcpu.index) << 32 | PING_VECTOR)   # ICR: fixed, physical

    def handle_all_idle(self, machine):
        machine.stop()


def idle_machine(cpus=2):
    machine = Machine(cpus=cpus, memory_bytes=16 << 20)
    for vcpu in machine.vcpus:
        vcpu.halted = True
    return machine


def test_ipi_ping_pong_round_trip_is_twice_latency_plus_handler_costs():
    machine = idle_machine()
    handler = PingPong(machine, rounds=50)
    events = machine.profile.event_costs
    machine.vcpus[0].write_msr(0x830, (1 << 32) | PING_VECTOR)
    machine.run()
    assert len(handler.arrivals) == 100
    assert [cpu for cpu, _ in handler.arrivals] == [1, 0] * 50
    times = [cycles for _, cycles in handler.arrivals]
    one_way = events["ipi_latency"] + events["ipi_receive"] + events["ipi_send"]
    # Each hop: the receiver pays ipi_receive at delivery, then ipi_send, then
    # the IPI flies ipi_latency cycles.
    round_trips = [times[i + 2] - times[i] for i in range(len(times) - 2)]
    assert set(round_trips) == {2 * one_way}
    assert machine.vcpus[0].apic.ipis_sent == 50 and machine.vcpus[1].apic.ipis_received == 50


def test_all_but_self_and_self_shorthands():
    machine = idle_machine(cpus=4)
    seen = []

    class Recorder:
        def handle_interrupt(self, vcpu, vector):
            seen.append((vcpu.index, vector))
            vcpu.write_msr(0x80B, 0)

        def handle_all_idle(self, machine):
            machine.stop()

    machine.attach(Recorder())
    machine.vcpus[2].write_msr(0x830, (3 << 18) | 0x41)    # all but self
    machine.vcpus[1].write_msr(0x830, (1 << 18) | 0x42)    # self
    machine.run()
    assert sorted(seen) == [(0, 0x41), (1, 0x41), (1, 0x42), (3, 0x41)]


def test_tsc_deadline_timer_fires_at_deadline():
    machine = idle_machine(cpus=1)
    fired = []

    class Timer:
        def handle_interrupt(self, vcpu, vector):
            fired.append((vector, vcpu.cycles))
            vcpu.write_msr(0x80B, 0)

        def handle_all_idle(self, machine):
            machine.stop()

    machine.attach(Timer())
    vcpu = machine.vcpus[0]
    vcpu.write_msr(0x832, (2 << 17) | 0xEC)                # LVT timer: TSC-deadline mode
    vcpu.write_msr(0x6E0, 123_456)
    machine.run()
    receive = machine.profile.event_cycles("ipi_receive")
    assert fired == [(0xEC, 123_456 + receive)]
    assert vcpu.read_msr(0x6E0) == 0


def test_synchronous_cross_call_advances_sender_by_the_wait():
    machine = idle_machine(cpus=3)
    acks = []

    class CrossCall:
        def handle_interrupt(self, vcpu, vector):
            vcpu.charge(1000 * (vcpu.index + 1))           # the handler's own work
            acks.append((vcpu.index, vcpu.cycles))
            machine.acknowledge(vcpu, 0)
            vcpu.write_msr(0x80B, 0)

        def handle_all_idle(self, machine):
            machine.stop()

    machine.attach(CrossCall())
    sender = machine.vcpus[0]
    machine.send_ipi(sender, [1, 2], 0x50)
    machine.wait_for_acks(sender, [1, 2])
    assert not sender.runnable
    machine.run()
    assert not sender.waiting_for_acks
    assert sender.cycles == max(cycles for _, cycles in acks)
    events = machine.profile.event_costs
    assert sender.cycles == events["ipi_send"] + events["ipi_latency"] + events["ipi_receive"] + 3000


def test_two_waits_in_one_kernel_entry_keep_both_completions():
    """A CPU that starts a second synchronous cross-call before the first one's
    acknowledgements waits for both sets and runs both completions."""
    machine = idle_machine(cpus=3)
    done = []

    class Acker:
        def handle_interrupt(self, vcpu, vector):
            vcpu.write_msr(0x80B, 0)
            machine.acknowledge(vcpu, 0)

        def handle_all_idle(self, machine):
            machine.stop()

    machine.attach(Acker())
    sender = machine.vcpus[0]
    machine.send_ipi(sender, [1], 0x41)
    machine.wait_for_acks(sender, [1], on_complete=lambda: done.append("first"))
    machine.send_ipi(sender, [2], 0x42)
    machine.wait_for_acks(sender, [2], on_complete=lambda: done.append("second"))
    assert sender.waiting_for_acks == {1, 2}
    machine.run()
    assert done == ["first", "second"]
    assert not sender.waiting_for_acks
