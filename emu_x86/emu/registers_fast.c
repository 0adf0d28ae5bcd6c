/* Register access through libunicorn without ctypes (registers_fast.h). */
#include <string.h>
#include "registers_fast.h"

typedef int (*uc_reg_fn)(void *uc, int regid, void *value);
typedef int (*uc_reg_batch_fn)(void *uc, int *regs, void *const *vals, int count);
typedef int (*uc_context_restore_fn)(void *uc, void *context);

static uc_reg_fn reg_read, reg_write;
static uc_reg_batch_fn reg_read_batch, reg_write_batch;
static uc_context_restore_fn context_restore;

void regs_set_access(uintptr_t uc_reg_read_address, uintptr_t uc_reg_write_address,
                     uintptr_t uc_reg_read_batch_address, uintptr_t uc_reg_write_batch_address,
                     uintptr_t uc_context_restore_address)
{
    reg_read = (uc_reg_fn)uc_reg_read_address;
    reg_write = (uc_reg_fn)uc_reg_write_address;
    reg_read_batch = (uc_reg_batch_fn)uc_reg_read_batch_address;
    reg_write_batch = (uc_reg_batch_fn)uc_reg_write_batch_address;
    context_restore = (uc_context_restore_fn)uc_context_restore_address;
}

int regs_read(void *uc, int *ids, void **values, int count, uint8_t *buffer, uint32_t buffer_bytes)
{
    memset(buffer, 0, buffer_bytes);
    return reg_read_batch(uc, ids, (void *const *)values, count);
}

int regs_write(void *uc, int *ids, void **values, int count)
{
    return reg_write_batch(uc, ids, (void *const *)values, count);
}

int regs_restore_and_write(void *uc, void *context, int *ids, void **values, int count)
{
    int status = context_restore(uc, context);
    if (status)
        return status;
    return reg_write_batch(uc, ids, (void *const *)values, count);
}

int regs_read_scalar(void *uc, int id, uint64_t *value)
{
    *value = 0;
    return reg_read(uc, id, value);
}

int regs_write_scalar(void *uc, int id, uint64_t value)
{
    return reg_write(uc, id, &value);
}
