/* Register access for emu/registers.py, compiled with cffi into
 * emu.timing._hotpath.
 *
 * RegisterBatch and RegisterFile read and write guest registers through
 * libunicorn's uc_reg_read_batch/uc_reg_write_batch/uc_reg_read/uc_reg_write
 * -- the same per-register readers and writers, in the same order, as the
 * binding's reg_read/reg_write -- called here instead of through ctypes,
 * whose per-call argument conversion cost more than the access itself on a
 * task switch. regs_restore_and_write is a task's return to user mode in one
 * call: uc_context_restore of the vCPU's clean CPL3 context (which also drops
 * the pending-exception state QEMU keeps after a fault; DESIGN.md), then the
 * batch write of the task's registers.
 */
#pragma once
#include <stdint.h>

/* libunicorn's entry points, given once by Python (emu/vcpu.py). */
void regs_set_access(uintptr_t uc_reg_read_address, uintptr_t uc_reg_write_address,
                     uintptr_t uc_reg_read_batch_address, uintptr_t uc_reg_write_batch_address,
                     uintptr_t uc_context_restore_address);

/* Zero `buffer_bytes` of `buffer` (the binding reads into zeroed slots), then
 * uc_reg_read_batch of `count` registers `ids` into `values[i]`. */
int regs_read(void *uc, int *ids, void **values, int count, uint8_t *buffer, uint32_t buffer_bytes);
/* uc_reg_write_batch of `count` registers `ids` from `values[i]`. */
int regs_write(void *uc, int *ids, void **values, int count);
/* uc_context_restore(uc, context), then regs_write. */
int regs_restore_and_write(void *uc, void *context, int *ids, void **values, int count);
/* One register of at most 64 bits: uc_reg_read into a zeroed slot / uc_reg_write. */
int regs_read_scalar(void *uc, int id, uint64_t *value);
int regs_write_scalar(void *uc, int id, uint64_t value);
