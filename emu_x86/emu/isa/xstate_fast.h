/* The kernel's XSAVES/XRSTORS on a task's fpstate in C (the context-switch
 * path), compiled with cffi into emu.timing._hotpath.
 *
 * emu/isa/xstate.py's xsave()/xrstor() stay the reference and the path for
 * everything these functions decline. They only move bytes: the x87/SSE
 * legacy region comes from (XSAVES) or goes back to (XRSTORS) the vCPU's
 * registers, read or written here with one uc_reg_read_batch/
 * uc_reg_write_batch (xstate_*_registers at the end: the context switch's
 * calls); XTILECFG/XTILEDATA come from / go to the vCPU's
 * struct amx_xstate; the buffer is either a host array (an fpstate embedded
 * in task_struct) or guest memory reached by supervisor page walks through
 * mmu->cr3 (a vmalloc'ed fpstate: tlb.c's mmu_walk_mode, the walk
 * VCpu.translate does), each page walked once per instruction and access
 * kind, on first touch, in the order emu/isa/xstate.py touches them.
 *
 * Both return XSTATE_FAST_OK, or XSTATE_FAST_PYTHON when the caller must run
 * the Python instruction instead: every #GP/#NM condition, a walk that
 * faults (the Python run raises the identical #PF), an address outside the
 * cases handled here. Nothing the Python run would not also do has happened
 * by then: the walks set the same Accessed/Dirty bits again and XSAVES
 * rewrites the same bytes; XRSTORS changes no state before every read has
 * succeeded. Statistics and cycle charges stay in Python.
 */
#pragma once
#include <stdint.h>
#include "tlb.h"
#include "amx_fast.h"

#define XSTATE_FAST_OK 0
#define XSTATE_FAST_PYTHON 1
/* Added to a uc_err from the register access (xstate_*_registers below). */
#define XSTATE_FAST_UC_ERROR 1000

/* The component table (emu/isa/xstate.py COMPONENTS, the single source of
 * truth), given once per component by Python: size and the align64 bit
 * (CPUID.(EAX=0DH,ECX=i):ECX[1]) that compacted offsets need (SDM Vol. 1
 * §13.4.3). Components never declared are declined. */
void xstate_fast_declare_component(int number, uint32_t size_bytes, int align64);

/* XSAVES (SDM Vol. 1 §13.11) of `rfbm` to `address`: compacted form,
 * XSTATE_BV[i] = `in_use`[i] (XINUSE & ~IA32_XFD, from Python), components
 * not in use are not written (init optimization, §13.6), and with
 * `may_skip_unmodified` (the last XRSTORS was from this address) in-use
 * components >= 2 not in state->modified_since_restore are not written
 * either (modified optimization); *skipped counts both, *unmodified_skipped
 * the latter. `legacy`: the 512-byte FXSAVE image of x87/SSE; `pasid`:
 * IA32_PASID. `flat`: the buffer as host bytes for [address, address +
 * flat_size), or NULL to walk mmu's page tables. */
int xstate_xsaves(struct mmu_vcpu *mmu, uint8_t *flat, uint64_t flat_size, struct amx_xstate *state,
                  uint64_t address, uint64_t rfbm, uint64_t in_use, int may_skip_unmodified,
                  const uint8_t *legacy, uint64_t pasid, uint32_t *skipped, uint32_t *unmodified_skipped);

/* XRSTORS (SDM Vol. 1 §13.12) of `rfbm` from `address` (compacted form
 * required, header checks of §13.12 / §13.8.1, XFD #NM of §13.14 and the
 * MXCSR check against `mxcsr_mask`: each declined). On success the XTILECFG/
 * XTILEDATA components in rfbm are loaded or initialised (XSTATE_BV clear),
 * tiles_in_use and modified_since_restore are updated, and the caller gets
 * the legacy region (`legacy_out`, 512 bytes), RFBM & XSTATE_BV (*load) and
 * the PASID component (*pasid, valid when *load has bit 10) to finish with
 * the registers, which Python owns. `enabled`: XCR0 | IA32_XSS. */
int xstate_xrstors(struct mmu_vcpu *mmu, uint8_t *flat, uint64_t flat_size, struct amx_xstate *state,
                   uint64_t address, uint64_t rfbm, uint64_t enabled, uint32_t mxcsr_mask,
                   uint8_t *legacy_out, uint64_t *load, uint64_t *pasid);

/* The x87/SSE registers an XRSTORS with RFBM[1:0] = 11b writes, in the order
 * emu/isa/xstate.py writes them (one uc_reg_write_batch, as VCpu.write_registers):
 * FPCW, FPSW, FPTAG, FP0-FP7 (physical), XMM0-XMM15, MXCSR. */
#define XSTATE_LEGACY_REGISTERS 28
/* uc_reg_read_batch, uc_reg_write_batch and the Unicorn ids of those
 * registers, in that order (VCpu). */
void xstate_fast_set_register_access(uintptr_t uc_reg_read_batch_address, uintptr_t uc_reg_write_batch_address,
                                     const int *register_ids);
/* XSAVES's side: read them (one uc_reg_read_batch, slots as registers.py's)
 * and build the 512-byte legacy region as xstate.py legacy_area_from_registers
 * (FXSAVE layout, Vol. 1 Table 10-2: abridged tag, ST(i) order, FOP/FIP/FDP
 * zero, `mxcsr_mask`); *in_use gets XINUSE[1:0] as xstate.py xinuse computes
 * it (§13.6: x87 unless FCW 037FH, FSW 0, FTW FFFFH; SSE unless MXCSR 1F80H
 * and XMM zero). Returns Unicorn's uc_err (0: done). */
int xstate_read_legacy_registers(void *uc, uint32_t mxcsr_mask, uint8_t *legacy_out, uint64_t *in_use);
/* Write them from a legacy region (XRSTORS's), x87 from `legacy` when `load`
 * has bit 0 else its init state (FCW 037FH, FSW 0, all empty, FP0-7 zero),
 * SSE likewise with bit 1 (XMM zero), MXCSR from `legacy` (SDM Vol. 1
 * §13.8.1; the tag word from the abridged tag as §10.5.1.1). Returns
 * Unicorn's uc_err (0: done). */
int xstate_write_legacy_registers(void *uc, const uint8_t *legacy, uint64_t load);

/* The context switch's XSAVES in one call: xstate_read_legacy_registers,
 * XINUSE = (x87/SSE in use | XTILECFG/XTILEDATA as state->tiles_in_use has them |
 * PASID when `pasid` is non-zero) & ~state->xfd (xstate.py xinuse), then
 * xstate_xsaves. Returns its result, or XSTATE_FAST_UC_ERROR + the uc_err of
 * a failed register read. */
int xstate_xsaves_registers(void *uc, uint32_t mxcsr_mask, struct mmu_vcpu *mmu, uint8_t *flat,
                            uint64_t flat_size, struct amx_xstate *state, uint64_t address, uint64_t rfbm,
                            int may_skip_unmodified, uint64_t pasid, uint32_t *skipped,
                            uint32_t *unmodified_skipped);
/* The context switch's XRSTORS in one call: xstate_xrstors, then, when it
 * succeeded and RFBM holds x87 and SSE, xstate_write_legacy_registers (else
 * Python writes the subset from `legacy_out`). Returns xstate_xrstors's
 * result, or XSTATE_FAST_UC_ERROR + the uc_err of a failed register write. */
int xstate_xrstors_registers(void *uc, struct mmu_vcpu *mmu, uint8_t *flat, uint64_t flat_size,
                             struct amx_xstate *state, uint64_t address, uint64_t rfbm, uint64_t enabled,
                             uint32_t mxcsr_mask, uint8_t *legacy_out, uint64_t *load, uint64_t *pasid);
