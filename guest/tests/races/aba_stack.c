/* ABA on a lock-free (Treiber) stack: pop reads head and head->next, then
 * swings head with a compare-and-swap on the pointer alone. If, between the
 * read and the CAS, other threads pop that node and the one under it and
 * push the first back, the CAS still succeeds and installs a node another
 * thread holds. Each node records its holder with an atomic exchange, so a
 * node popped twice is caught ("aba=yes"); the fix is a tagged pointer
 * (CMPXCHG16B) or hazard pointers.
 * CPUS: 3
 * STDOUT: aba=no
 * EXPECT-RACE: 10 random pct
 */
#include <pthread.h>
#include <stdio.h>

#define THREADS 3
#define NODES 6
#define ITERATIONS 3000

struct node {
    struct node *next;
    int held;
};
static struct node nodes[NODES];
static struct node *head;
static volatile int aba;

static struct node *pop(void)
{
    struct node *old, *next;
    do {
        old = __atomic_load_n(&head, __ATOMIC_ACQUIRE);
        if (old == NULL)
            return NULL;
        next = old->next;                       /* the ABA window opens here ... */
    } while (!__atomic_compare_exchange_n(&head, &old, next, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
    return old;                                 /* ... and closes at the CAS */
}

static void push(struct node *node)
{
    struct node *old = __atomic_load_n(&head, __ATOMIC_ACQUIRE);
    do
        node->next = old;
    while (!__atomic_compare_exchange_n(&head, &old, node, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
}

static void take(struct node *node)
{
    if (__atomic_exchange_n(&node->held, 1, __ATOMIC_ACQ_REL))
        aba = 1;                                /* someone else holds it */
}

static void give(struct node *node)
{
    __atomic_store_n(&node->held, 0, __ATOMIC_RELEASE);
    push(node);
}

static void *worker(void *arg)
{
    for (int i = 0; i < ITERATIONS && !aba; i++) {
        struct node *a = pop();
        if (a == NULL)
            continue;
        take(a);
        struct node *b = pop();
        if (b != NULL)
            take(b);
        give(a);                                /* a goes back first: the "A" of ABA */
        if (b != NULL)
            give(b);
    }
    return arg;
}

int main(void)
{
    for (int i = 0; i < NODES; i++)
        push(&nodes[i]);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, worker, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    printf("aba=%s\n", aba ? "yes" : "no");
    return 0;
}
