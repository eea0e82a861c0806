/*
 * _schedlab_work: the inner loops of schedlab's work types, whose timing is the measurement.
 *
 * Python (guest/work*.py) orchestrates; these loops do the work units, the ping-pong and
 * fan-out wakeups and the wake-latency stamps, so that what is measured is the scheduler and
 * not the interpreter. Every loop runs until a CLOCK_BOOTTIME deadline or a stop flag and
 * then returns, so Python sees signals and step changes within one chunk.
 *
 * A meter (sl_meter) is one worker's counters: work units, iterations, the longest gap
 * between consecutive checkpoints (with the CPU it was on and when the gap began), CPU
 * migrations and the CPUs used, and wake latencies (count, max, sum, sum of squares and a
 * log-linear histogram with 16 buckets per power of two, about 6 % resolution).
 * A voluntary block (sleep, pipe read, futex wait) ends with sl_resume: its time is not a
 * gap, its overshoot is a wake latency.
 *
 * Layouts must match work.cdef (the cffi declarations).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SL_CPU_WORDS 16 /* CPUs 0..1023 */
#define SL_HIST 1024
#define SL_RANKS 32
#define SL_WAIT_SLICE_NS 20000000ull /* a blocked wait re-checks deadline and stop this often */

typedef struct {
    uint64_t units;
    uint64_t iterations;
    uint64_t last_ns;
    uint64_t max_gap_ns;
    uint64_t max_gap_at_ns;
    int32_t max_gap_cpu;
    int32_t last_cpu;
    uint64_t migrations;
    uint64_t cpus[SL_CPU_WORDS];
    uint64_t wake_n;
    uint64_t wake_max;
    double wake_sum;
    double wake_sumsq;
    uint32_t wake_hist[SL_HIST];
    const volatile uint64_t *watch; /* loops also end once *watch != watch_val (a step change) */
    uint64_t watch_val;
} sl_meter;

typedef struct {
    int32_t stop;
    uint32_t turn;
    uint32_t gen;
    uint32_t done;
    uint32_t lock;
    uint32_t pad;
    uint64_t release_ns;
    uint64_t stamp[SL_RANKS];
    uint32_t seen[SL_RANKS];
} sl_shared;

static volatile uint64_t sl_sink;

uint64_t sl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t sl_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void note_cpu(sl_meter *m)
{
    int cpu = sched_getcpu();
    if (cpu < 0)
        return;
    if (cpu != m->last_cpu) {
        if (m->last_cpu >= 0)
            m->migrations++;
        m->last_cpu = cpu;
    }
    if (cpu < SL_CPU_WORDS * 64)
        m->cpus[cpu / 64] |= 1ull << (cpu % 64);
}

/* Once per worker: timers fire when due (the default 50 us slack would hide wake latency). */
void sl_worker_setup(void)
{
    prctl(PR_SET_TIMERSLACK, 1ul, 0ul, 0ul, 0ul);
}

void sl_meter_init(sl_meter *m)
{
    memset(m, 0, sizeof(*m));
    m->last_cpu = -1;
    m->max_gap_cpu = -1;
    m->last_ns = sl_now_ns();
    note_cpu(m);
}

/* Copy the counters to out and start new ones (a step boundary); the clock and CPU carry on. */
void sl_meter_take(sl_meter *m, sl_meter *out)
{
    uint64_t last = m->last_ns, watch_val = m->watch_val;
    const volatile uint64_t *watch = m->watch;
    int32_t cpu = m->last_cpu;
    memcpy(out, m, sizeof(*m));
    memset(m, 0, sizeof(*m));
    m->last_ns = last;
    m->last_cpu = cpu;
    m->watch = watch;
    m->watch_val = watch_val;
    m->max_gap_cpu = -1;
    if (cpu >= 0 && cpu < SL_CPU_WORDS * 64)
        m->cpus[cpu / 64] |= 1ull << (cpu % 64);
}

void sl_checkpoint(sl_meter *m)
{
    uint64_t now = sl_now_ns();
    uint64_t gap = now - m->last_ns;
    if (gap > m->max_gap_ns) {
        m->max_gap_ns = gap;
        m->max_gap_at_ns = m->last_ns;
        m->max_gap_cpu = m->last_cpu; /* where it was when it stopped progressing */
    }
    m->last_ns = now;
    note_cpu(m);
}

void sl_resume(sl_meter *m)
{
    m->last_ns = sl_now_ns();
    note_cpu(m);
}

static unsigned hist_index(uint64_t v)
{
    if (v < 16)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 4 */
    unsigned sub = (unsigned)(v >> (e - 4)) & 15u;
    return (e - 3u) * 16u + sub;
}

static uint64_t hist_mid(unsigned idx)
{
    if (idx < 16)
        return idx;
    unsigned e = idx / 16u + 3u, sub = idx % 16u;
    uint64_t lo = (uint64_t)(16u + sub) << (e - 4);
    return lo + ((1ull << (e - 4)) >> 1);
}

void sl_wake(sl_meter *m, uint64_t lat_ns)
{
    m->wake_n++;
    if (lat_ns > m->wake_max)
        m->wake_max = lat_ns;
    m->wake_sum += (double)lat_ns;
    m->wake_sumsq += (double)lat_ns * (double)lat_ns;
    m->wake_hist[hist_index(lat_ns)]++;
}

/* The q-quantile of the recorded latencies (bucket midpoint, never above the max); 0 if none. */
uint64_t sl_quantile(const sl_meter *m, double q)
{
    if (m->wake_n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)(m->wake_n - 1)) + 1, seen = 0;
    for (unsigned i = 0; i < SL_HIST; i++) {
        seen += m->wake_hist[i];
        if (seen >= rank) {
            uint64_t v = hist_mid(i);
            return v < m->wake_max ? v : m->wake_max;
        }
    }
    return m->wake_max;
}

void sl_spin_iters(uint32_t n)
{
    uint64_t x = sl_sink;
    for (uint32_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + i;
        __asm__ volatile("" : "+r"(x));
    }
    sl_sink = x;
}

/* Watch a shared word (a scenario's step counter): loops end once it is no longer value. */
void sl_meter_watch(sl_meter *m, const uint64_t *word, uint64_t value)
{
    m->watch = word;
    m->watch_val = value;
}

static int done(const sl_meter *m, uint64_t deadline, const int32_t *stop)
{
    return m->last_ns >= deadline || (stop && __atomic_load_n(stop, __ATOMIC_RELAXED)) ||
           (m->watch && *m->watch != m->watch_val);
}

static void unit(sl_meter *m)
{
    m->units++;
    m->iterations++;
    sl_checkpoint(m);
}

int sl_spin(sl_meter *m, uint64_t deadline, const int32_t *stop, uint32_t iters)
{
    do {
        sl_spin_iters(iters);
        unit(m);
    } while (!done(m, deadline, stop));
    return 0;
}

int sl_yield(sl_meter *m, uint64_t deadline, const int32_t *stop, uint32_t iters)
{
    do {
        if (iters)
            sl_spin_iters(iters);
        sched_yield();
        unit(m);
    } while (!done(m, deadline, stop));
    return 0;
}

int sl_sleep_until(sl_meter *m, uint64_t target_ns)
{
    struct timespec ts = {(time_t)(target_ns / 1000000000ull), (long)(target_ns % 1000000000ull)};
    int rc = clock_nanosleep(CLOCK_BOOTTIME, TIMER_ABSTIME, &ts, NULL);
    uint64_t now = sl_now_ns();
    sl_resume(m);
    if (rc == EINTR)
        return -EINTR; /* a signal: Python looks at it now */
    if (rc)
        return -rc;
    sl_wake(m, now > target_ns ? now - target_ns : 0);
    return 0;
}

int sl_io_sync(sl_meter *m, uint64_t deadline, const int32_t *stop, int fd, const char *buf,
               uint32_t bytes, uint64_t sleep_ns)
{
    do {
        if (pwrite(fd, buf, bytes, 0) < 0)
            return -errno;
        if (fdatasync(fd) < 0 && errno != EINVAL)
            return -errno;
        unit(m);
        if (!sleep_ns)
            continue;
        int rc = sl_sleep_until(m, sl_now_ns() + sleep_ns);
        if (rc)
            return rc == -EINTR ? 0 : rc;
    } while (!done(m, deadline, stop));
    return 0;
}

static void cache_pass(uint8_t *buf, uint32_t bytes, uint32_t stride)
{
    for (uint32_t i = 0; i < bytes; i += stride)
        buf[i] = (uint8_t)(buf[i] * 7u + 1u);
}

int sl_cache(sl_meter *m, uint64_t deadline, const int32_t *stop, uint8_t *buf, uint32_t bytes,
             uint32_t stride, int yield_each)
{
    if (!stride)
        return -EINVAL;
    do {
        cache_pass(buf, bytes, stride);
        if (yield_each)
            sched_yield();
        unit(m);
    } while (!done(m, deadline, stop));
    return 0;
}

static int wait_readable(int fd, uint64_t deadline)
{
    uint64_t now = sl_now_ns();
    if (now >= deadline)
        return 0;
    uint64_t left = deadline - now;
    if (left > SL_WAIT_SLICE_NS)
        left = SL_WAIT_SLICE_NS;
    struct pollfd p = {fd, POLLIN, 0};
    int rc = poll(&p, 1, (int)(left / 1000000ull) + 1);
    if (rc < 0)
        return errno == EINTR ? -EINTR : -errno;
    return rc;
}

/*
 * One side of a pipe ping-pong: wait for the partner's message (its send time), record the
 * wake latency, work (spin, plus a cache pass when buf is given), send our own stamp.
 * serve_first: send before the first wait (rank 0 of the pair, on its first call).
 */
int sl_pipe_pong(sl_meter *m, uint64_t deadline, const int32_t *stop, int rfd, int wfd,
                 uint32_t iters, uint8_t *buf, uint32_t bytes, int serve_first)
{
    uint64_t stamp;
    if (serve_first) {
        stamp = sl_now_ns();
        if (write(wfd, &stamp, sizeof stamp) != sizeof stamp)
            return -errno;
    }
    for (;;) {
        m->last_ns = sl_now_ns();
        if (done(m, deadline, stop))
            return 0;
        int rc = wait_readable(rfd, deadline);
        if (rc == -EINTR)
            return 0;
        if (rc < 0)
            return rc;
        if (rc == 0)
            continue;
        ssize_t got = read(rfd, &stamp, sizeof stamp);
        if (got == 0)
            return -EPIPE; /* the partner is gone */
        if (got != sizeof stamp)
            return got < 0 ? -errno : -EPROTO;
        uint64_t now = sl_now_ns();
        sl_resume(m);
        sl_wake(m, now > stamp ? now - stamp : 0);
        sl_spin_iters(iters);
        if (buf)
            cache_pass(buf, bytes, 64);
        unit(m);
        stamp = sl_now_ns();
        if (write(wfd, &stamp, sizeof stamp) != sizeof stamp)
            return errno == EPIPE ? -EPIPE : -errno;
    }
}

static long futex(uint32_t *addr, int op, uint32_t val, uint64_t timeout_ns)
{
    struct timespec ts = {(time_t)(timeout_ns / 1000000000ull), (long)(timeout_ns % 1000000000ull)};
    /* Shared, not _PRIVATE: the word lives in memory shared by the group's processes. */
    return syscall(SYS_futex, addr, op, val, op == FUTEX_WAIT ? &ts : NULL, NULL, 0);
}

static uint64_t wait_slice(uint64_t deadline)
{
    uint64_t now = sl_now_ns();
    uint64_t left = deadline > now ? deadline - now : 1;
    return left < SL_WAIT_SLICE_NS ? left : SL_WAIT_SLICE_NS;
}

static int group_done(sl_meter *m, uint64_t deadline, sl_shared *sh)
{
    m->last_ns = sl_now_ns();
    return done(m, deadline, &sh->stop);
}

/* Futex ping-pong between ranks 0 and 1: whoever's turn it is works, then hands the turn over. */
int sl_futex_pong(sl_meter *m, uint64_t deadline, sl_shared *sh, int rank, uint32_t iters)
{
    uint32_t me = (uint32_t)rank & 1u, other = me ^ 1u;
    for (;;) {
        uint32_t turn = __atomic_load_n(&sh->turn, __ATOMIC_ACQUIRE);
        if (turn != me) {
            if (group_done(m, deadline, sh))
                return 0;
            futex(&sh->turn, FUTEX_WAIT, turn, wait_slice(deadline));
            continue;
        }
        uint64_t now = sl_now_ns(), stamp = sh->stamp[me];
        sl_resume(m);
        if (stamp)
            sl_wake(m, now > stamp ? now - stamp : 0);
        sl_spin_iters(iters);
        unit(m);
        sh->stamp[other] = sl_now_ns();
        __atomic_store_n(&sh->turn, other, __ATOMIC_RELEASE);
        futex(&sh->turn, FUTEX_WAKE, 1, 0);
        if (done(m, deadline, &sh->stop))
            return 0;
    }
}

/* n x n matrix product a*b -> c over mat = [a | b | c]. */
static void matmul(uint64_t *mat, uint32_t n)
{
    uint64_t *a = mat, *b = mat + (size_t)n * n, *c = mat + 2 * (size_t)n * n;
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < n; j++) {
            uint64_t s = 0;
            for (uint32_t k = 0; k < n; k++)
                s += a[(size_t)i * n + k] * b[(size_t)k * n + j];
            c[(size_t)i * n + j] = s;
        }
}

/*
 * Fan-out: rank 0 (the messenger) works, stamps, wakes every receiver at once, optionally
 * sleeps, and waits until all fan_out receivers finished the round; a receiver records its
 * wake latency from the messenger's stamp, then spins (or multiplies matrices when mat is
 * given, ops times) and reports done.
 */
int sl_fan_out(sl_meter *m, uint64_t deadline, sl_shared *sh, int rank, int fan_out,
               uint32_t iters, uint64_t *mat, uint32_t n, uint32_t ops, uint64_t sleep_ns)
{
    if (fan_out < 1 || fan_out >= SL_RANKS || rank < 0 || rank > fan_out)
        return -EINVAL;
    if (rank == 0) {
        for (;;) {
            uint32_t d = __atomic_load_n(&sh->done, __ATOMIC_ACQUIRE);
            uint32_t gen = __atomic_load_n(&sh->gen, __ATOMIC_ACQUIRE);
            if (gen != 0 && d < (uint32_t)fan_out) {
                if (group_done(m, deadline, sh))
                    return 0;
                futex(&sh->done, FUTEX_WAIT, d, wait_slice(deadline));
                continue;
            }
            if (gen != 0) {
                sl_resume(m); /* the wait for the round's end is not a gap */
                unit(m);
                if (sleep_ns) {
                    int rc = sl_sleep_until(m, sl_now_ns() + sleep_ns);
                    if (rc && rc != -EINTR)
                        return rc;
                }
            }
            sl_spin_iters(iters);
            __atomic_store_n(&sh->done, 0, __ATOMIC_RELEASE);
            sh->stamp[0] = sl_now_ns();
            __atomic_add_fetch(&sh->gen, 1, __ATOMIC_ACQ_REL);
            futex(&sh->gen, FUTEX_WAKE, INT_MAX, 0);
            if (group_done(m, deadline, sh))
                return 0;
        }
    }
    for (;;) {
        uint32_t gen = __atomic_load_n(&sh->gen, __ATOMIC_ACQUIRE);
        if (gen == sh->seen[rank]) {
            if (group_done(m, deadline, sh))
                return 0;
            futex(&sh->gen, FUTEX_WAIT, gen, wait_slice(deadline));
            continue;
        }
        sh->seen[rank] = gen;
        uint64_t now = sl_now_ns(), stamp = sh->stamp[0];
        sl_resume(m);
        sl_wake(m, now > stamp ? now - stamp : 0);
        if (mat)
            for (uint32_t k = 0; k < ops; k++)
                matmul(mat, n);
        else
            sl_spin_iters(iters);
        unit(m);
        if (__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL) == (uint32_t)fan_out)
            futex(&sh->done, FUTEX_WAKE, 1, 0);
        if (done(m, deadline, &sh->stop))
            return 0;
    }
}

/*
 * Mutex contention: a three-state futex mutex (0 free, 1 locked, 2 locked with waiters;
 * Drepper, "Futexes Are Tricky", mutex 2). Lock, spin hold iterations, unlock, spin work
 * iterations. A contender that had to sleep records the time from the last release to its
 * acquisition as its wake latency.
 */
int sl_mutex(sl_meter *m, uint64_t deadline, sl_shared *sh, uint32_t hold, uint32_t work)
{
    for (;;) {
        if (group_done(m, deadline, sh))
            return 0;
        uint32_t c = 0;
        int slept = 0;
        if (!__atomic_compare_exchange_n(&sh->lock, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            if (c != 2)
                c = __atomic_exchange_n(&sh->lock, 2, __ATOMIC_ACQUIRE);
            while (c != 0) {
                if (group_done(m, deadline, sh))
                    return 0; /* not holding it: the lock word is left as it is */
                futex(&sh->lock, FUTEX_WAIT, 2, wait_slice(deadline));
                slept = 1;
                c = __atomic_exchange_n(&sh->lock, 2, __ATOMIC_ACQUIRE);
            }
        }
        if (slept) {
            uint64_t now = sl_now_ns(), rel = sh->release_ns;
            sl_resume(m);
            sl_wake(m, now > rel ? now - rel : 0);
        }
        sl_spin_iters(hold);
        sh->release_ns = sl_now_ns();
        if (__atomic_fetch_sub(&sh->lock, 1, __ATOMIC_RELEASE) != 1) {
            __atomic_store_n(&sh->lock, 0, __ATOMIC_RELEASE);
            futex(&sh->lock, FUTEX_WAKE, 1, 0);
        }
        sl_spin_iters(work);
        unit(m);
    }
}

/*
 * Fork/exit churn: fork a child that stamps the time it first ran and exits at once; reap it.
 * The time from fork() to the child's first instruction is a wake latency (a new task's).
 * child_stamp must be in MAP_SHARED memory.
 */
int sl_fork_exit(sl_meter *m, uint64_t deadline, const int32_t *stop, uint64_t *child_stamp)
{
    do {
        *child_stamp = 0;
        uint64_t t0 = sl_now_ns();
        pid_t pid = fork();
        if (pid == 0) {
            *child_stamp = sl_now_ns();
            _exit(0);
        }
        if (pid < 0)
            return -errno;
        int st;
        while (waitpid(pid, &st, 0) < 0)
            if (errno != EINTR)
                return -errno;
        uint64_t s = *child_stamp;
        sl_resume(m);
        if (s)
            sl_wake(m, s > t0 ? s - t0 : 0);
        unit(m);
    } while (!done(m, deadline, stop));
    return 0;
}

/* Nice sweep: every unit moves the worker's nice one step through -20..19, then spins. */
int sl_nice_sweep(sl_meter *m, uint64_t deadline, const int32_t *stop, uint32_t iters,
                  int *nice_now)
{
    do {
        int n = *nice_now + 1;
        if (n > 19)
            n = -20;
        if (setpriority(PRIO_PROCESS, 0, n) < 0)
            return -errno;
        *nice_now = n;
        sl_spin_iters(iters);
        unit(m);
    } while (!done(m, deadline, stop));
    return 0;
}

int sl_affinity_churn(sl_meter *m, uint64_t deadline, const int32_t *stop, uint32_t iters,
                      const int32_t *cpus, int ncpus, int *pos)
{
    if (ncpus < 1)
        return -EINVAL;
    cpu_set_t *set = CPU_ALLOC(SL_CPU_WORDS * 64);
    size_t size = CPU_ALLOC_SIZE(SL_CPU_WORDS * 64);
    if (!set)
        return -ENOMEM;
    int rc = 0;
    do {
        int cpu = cpus[*pos % ncpus];
        *pos = (*pos + 1) % ncpus;
        CPU_ZERO_S(size, set);
        CPU_SET_S(cpu, size, set);
        if (sched_setaffinity(0, size, set) < 0) {
            rc = -errno;
            break;
        }
        sl_spin_iters(iters);
        unit(m);
    } while (!done(m, deadline, stop));
    CPU_FREE(set);
    return rc;
}

int sl_policy_churn(sl_meter *m, uint64_t deadline, const int32_t *stop, uint32_t iters,
                    const int32_t *policies, int npolicies, int *pos)
{
    if (npolicies < 1)
        return -EINVAL;
    do {
        int pol = policies[*pos % npolicies];
        *pos = (*pos + 1) % npolicies;
        struct sched_param p = {.sched_priority = (pol == SCHED_FIFO || pol == SCHED_RR) ? 1 : 0};
        if (sched_setscheduler(0, pol, &p) < 0)
            return -errno;
        sl_spin_iters(iters);
        unit(m);
    } while (!done(m, deadline, stop));
    return 0;
}

/*
 * Page-fault churn over a private anonymous region: touch pages at pseudo-random offsets
 * (each first touch is a fault), spin between touches, then drop the pages (MADV_DONTNEED)
 * so the next round faults again. A touch is a work unit, a round an iteration.
 */
int sl_page_faults(sl_meter *m, uint64_t deadline, const int32_t *stop, uint8_t *region,
                   uint64_t bytes, uint32_t touches, uint32_t spins, uint64_t *seed)
{
    uint64_t pages = bytes / 4096u, x = *seed ? *seed : 0x9E3779B97F4A7C15ull;
    if (!pages)
        return -EINVAL;
    do {
        for (uint32_t t = 0; t < touches; t++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            region[(x % pages) * 4096u] = (uint8_t)t;
            sl_spin_iters(spins);
            m->units++;
            sl_checkpoint(m);
        }
        if (madvise(region, bytes, MADV_DONTNEED) < 0)
            return -errno;
        m->iterations++;
    } while (!done(m, deadline, stop));
    *seed = x;
    return 0;
}
