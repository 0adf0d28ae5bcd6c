/*
 * auxv.c -- the initial process stack: argc, argv, envp and the auxiliary
 * vector.
 *
 * Prints argc, every argv string, every environment string (the test
 * passes a fixed environment), and only deterministic facts about the
 * auxiliary vector: AT_PAGESZ, AT_PHENT, AT_PHNUM values; that AT_RANDOM,
 * AT_PHDR, AT_ENTRY, AT_EXECFN and AT_MINSIGSTKSZ are non-zero; that
 * AT_ENTRY is _start, that AT_PHDR points at this binary's program
 * headers, that AT_EXECFN names argv[0]; and the layout facts of the
 * initial stack (envp follows argv's NULL, auxv follows envp's NULL).
 * Ends with "auxv: done"; exit status 0.
 */
#include <elf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>

#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif

extern char **environ;
extern char _start[];

static const char *yesno(int b)
{
    return b ? "yes" : "no";
}

int main(int argc, char **argv, char **envp)
{
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=\"%s\" len=%zu\n", i, argv[i], strlen(argv[i]));
    printf("argv[argc] is NULL: %s\n", yesno(argv[argc] == NULL));
    int nenv = 0;
    for (char **e = envp; *e; e++)
        printf("env[%d]=\"%s\"\n", nenv++, *e);
    printf("envc=%d\n", nenv);
    printf("envp follows argv: %s\n", yesno(envp == argv + argc + 1));
    printf("environ is envp: %s\n", yesno(environ == envp));

    unsigned long pagesz = getauxval(AT_PAGESZ);
    unsigned long phent = getauxval(AT_PHENT);
    unsigned long phnum = getauxval(AT_PHNUM);
    printf("AT_PAGESZ=%lu\n", pagesz);
    printf("AT_PHENT=%lu\n", phent);
    printf("AT_PHNUM=%lu\n", phnum);

    unsigned long rnd = getauxval(AT_RANDOM);
    unsigned long phdr = getauxval(AT_PHDR);
    unsigned long entry = getauxval(AT_ENTRY);
    unsigned long execfn = getauxval(AT_EXECFN);
    unsigned long minsig = getauxval(AT_MINSIGSTKSZ);
    printf("AT_RANDOM nonzero: %s\n", yesno(rnd != 0));
    printf("AT_PHDR nonzero: %s\n", yesno(phdr != 0));
    printf("AT_ENTRY nonzero: %s\n", yesno(entry != 0));
    printf("AT_EXECFN nonzero: %s\n", yesno(execfn != 0));
    printf("AT_MINSIGSTKSZ nonzero: %s\n", yesno(minsig != 0));

    if (rnd) {
        /* the 16 random bytes must be readable; their value is not printed */
        volatile const unsigned char *r = (const unsigned char *)rnd;
        unsigned sum = 0;
        for (int i = 0; i < 16; i++)
            sum += r[i];
        (void)sum;
        printf("AT_RANDOM readable: yes\n");
    }
    printf("AT_ENTRY is _start: %s\n", yesno(entry == (uintptr_t)_start));
    if (execfn)
        printf("AT_EXECFN is argv[0]: %s\n",
               yesno(strcmp((const char *)execfn, argv[0]) == 0));

    if (phdr && phent == sizeof(Elf64_Phdr)) {
        const Elf64_Phdr *ph = (const Elf64_Phdr *)phdr;
        int loads = 0, tls = 0, stack = 0, self = 0;
        for (unsigned long i = 0; i < phnum; i++) {
            loads += ph[i].p_type == PT_LOAD;
            tls += ph[i].p_type == PT_TLS;
            stack += ph[i].p_type == PT_GNU_STACK;
            /* static-pie: PT_PHDR tells where the headers are, relative */
            if (ph[i].p_type == PT_PHDR)
                self = 1;
        }
        printf("phdr: PT_LOAD=%d PT_TLS=%d PT_GNU_STACK=%d has_PT_PHDR=%d\n", loads,
               tls, stack, self);
        /* ld puts the program headers right after the ELF header, both
         * inside the first PT_LOAD (file offset 0): check the header there
         * describes this very program */
        const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(phdr - sizeof(Elf64_Ehdr));
        uintptr_t first_vaddr = 0;
        for (unsigned long i = 0; i < phnum; i++)
            if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0) {
                first_vaddr = ph[i].p_vaddr;
                break;
            }
        uintptr_t bias = (uintptr_t)eh - first_vaddr;
        int magic = memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0;
        printf("ELF header before AT_PHDR: %s\n", yesno(magic));
        if (magic) {
            printf("e_phoff=%lu e_phnum=%u e_type=%s\n", (unsigned long)eh->e_phoff,
                   eh->e_phnum, eh->e_type == ET_EXEC ? "EXEC" : eh->e_type == ET_DYN ? "DYN" : "?");
            printf("e_entry + load bias is AT_ENTRY: %s\n", yesno(eh->e_entry + bias == entry));
            printf("load bias page aligned: %s\n", yesno(bias % pagesz == 0));
        }
    }

    /* walk past envp's NULL to the auxv pairs themselves */
    char **p = envp;
    while (*p)
        p++;
    const unsigned long *av = (const unsigned long *)(p + 1);
    int found_pagesz = 0, n = 0, terminated = 0;
    for (; n < 64; av += 2, n++) {
        if (av[0] == AT_NULL) {
            terminated = 1;
            break;
        }
        if (av[0] == AT_PAGESZ && av[1] == pagesz)
            found_pagesz = 1;
    }
    printf("auxv follows envp: %s, AT_NULL-terminated: %s\n", yesno(found_pagesz),
           yesno(terminated));

    errno = 0;
    unsigned long missing = getauxval(0x7fff);
    printf("getauxval(unknown)=%lu errno=ENOENT:%s\n", missing, yesno(errno == ENOENT));
    puts("auxv: done");
    return 0;
}
