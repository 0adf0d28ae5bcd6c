/* included by syscalls.S from its own directory */
#define FIXTURE_FLAVOUR 2
