// runtime.cpp: the emulator's scheduler, fault checks and guarded memory (see cuda_host.h and
// kernels/README.md, "Emulation"). Built once into its own shared library, loaded before the
// kernel libraries, which call into it.
//
// A launch runs its blocks one after another. The threads of a block are fibers (ucontext), each
// on its own stack, switched only at __syncthreads, warp collectives and their end. A fault (a
// divergent barrier, a collective with inactive lanes, __trap, an access outside every buffer)
// ends the launch with a message naming the kernel, the block and the thread. Accesses to the
// guard pages around buffers allocated with cnnkit_emulator_alloc are counted by a SIGSEGV
// handler, which opens the page (its bytes read as NaN) and closes it again at the next switch.
#define CNNKIT_EMULATOR_RUNTIME 1
#include "cuda_host.h"

#include <algorithm>
#include <csetjmp>
#include <csignal>
#include <cstdarg>
#include <mutex>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "the kernel emulator passes kernel arguments by the x86-64 System V convention; it supports x86-64 only"
#endif

namespace cnnkit_emulator {

ThreadState* current = nullptr;
uint3 block_index;
dim3 block_dim, grid_dim;

namespace {

constexpr unsigned char POISON = 0xff;  // every float and double of it is a NaN, every int -1
constexpr size_t STACK_BYTES = 256 * 1024;
constexpr size_t GUARD_PAGES = 16;
constexpr int MAX_ARGS = 64;
constexpr int INTEGER_REGISTERS = 6, SSE_REGISTERS = 8, STACK_SLOTS = MAX_ARGS;

size_t page_size() {
    static const size_t size = (size_t)sysconf(_SC_PAGESIZE);
    return size;
}

enum class State { runnable, barrier, warp, done };

struct Copy {
    void* dst;
    const void* src;
    unsigned bytes, src_bytes;
};

struct Fiber : ThreadState {
    ucontext_t context;
    char* stack = nullptr;
    State state = State::done;
    int barrier_line = 0;
    // a pending warp collective
    unsigned mask = 0, bytes = 0;
    const void* value = nullptr;
    void* out = nullptr;
    const char* what = nullptr;
    // cp.async: copies not yet committed, then the committed groups, oldest first
    std::vector<Copy> uncommitted;
    std::vector<std::vector<Copy>> groups;
};

// ---------------------------------------------------------------- guarded buffers

struct Access {
    long long count = 0;
    long long first_offset = 0;  // bytes from the buffer's start
    uint3 block{}, thread{};
};

struct Buffer {
    char* mapping;
    size_t mapping_bytes;
    char* data;  // nbytes of data, ending within 16 bytes of the back guard
    size_t nbytes;
    char* front_guard_end;  // [mapping, front_guard_end) and [back_guard, mapping end) are guard pages
    char* back_guard;
    std::string label;
    Access reads, writes;
};

std::vector<Buffer*> buffers;
std::vector<char*> opened_pages;  // guard pages opened by the fault handler since the last switch

Buffer* buffer_guarding(const char* address) {
    for (Buffer* b : buffers) {
        const bool front = address >= b->mapping && address < b->front_guard_end;
        const bool back = address >= b->back_guard && address < b->mapping + b->mapping_bytes;
        if (front || back) return b;
    }
    return nullptr;
}

void close_opened_pages() {
    for (char* page : opened_pages) mprotect(page, page_size(), PROT_NONE);
    opened_pages.clear();
}

// ---------------------------------------------------------------- the launch

struct Launch {
    const char* kernel_name;
    void* kernel;
    unsigned long long integer_args[INTEGER_REGISTERS] = {};
    double sse_args[SSE_REGISTERS] = {};
    struct Stack {
        unsigned long long slot[STACK_SLOTS];
    } stack_args = {};
    std::vector<Fiber> fibers;
    unsigned live = 0, at_barrier = 0;
    Buffer* dynamic_shared = nullptr;
    size_t dynamic_bytes = 0;
    ucontext_t scheduler;
    sigjmp_buf abort;
    std::string message;
};

Launch* active = nullptr;
std::mutex launch_mutex;

Fiber* self() { return static_cast<Fiber*>(current); }

std::string where(const ThreadState* thread) {
    char text[200];
    std::snprintf(text, sizeof text, "kernel %s, block (%u, %u, %u), thread (%u, %u, %u)", active->kernel_name,
                  block_index.x, block_index.y, block_index.z, thread->index.x, thread->index.y, thread->index.z);
    return text;
}

[[noreturn]] void fail(const ThreadState* thread, const char* format, ...) {
    char text[1024];
    va_list args;
    va_start(args, format);
    std::vsnprintf(text, sizeof text, format, args);
    va_end(args);
    active->message = where(thread) + ": " + text;
    siglongjmp(active->abort, 1);
}

void yield(Fiber* fiber) { swapcontext(&fiber->context, &active->scheduler); }

std::string thread_list(const std::vector<unsigned>& threads) {
    std::string text;
    for (size_t i = 0; i < threads.size() && i < 8; ++i) text += (i ? ", " : "") + std::to_string(threads[i]);
    if (threads.size() > 8) text += ", ... (" + std::to_string(threads.size()) + " in all)";
    return text;
}

// Releases the barrier once every thread that has not returned waits at it; a thread that returned
// while others wait, or threads waiting at different lines, are faults.
void check_barrier(const ThreadState* reporter) {
    Launch& l = *active;
    if (l.at_barrier == 0 || l.at_barrier != l.live) return;
    std::vector<unsigned> exited;
    const Fiber* first = nullptr;
    for (const Fiber& f : l.fibers) {
        if (f.state == State::done) exited.push_back(f.linear);
        if (f.state == State::barrier) {
            if (first == nullptr) first = &f;
            if (f.barrier_line != first->barrier_line)
                fail(&f, "divergent __syncthreads(): this thread waits at line %d, thread %u at line %d",
                     f.barrier_line, first->linear, first->barrier_line);
        }
    }
    if (!exited.empty())
        fail(first, "__syncthreads() at line %d is never reached by thread(s) %s, which returned; the barrier "
                    "would hang or misbehave on the GPU", first->barrier_line, thread_list(exited).c_str());
    (void)reporter;
    for (Fiber& f : l.fibers)
        if (f.state == State::barrier) f.state = State::runnable;
    l.at_barrier = 0;
}

// Completes the collective of the warp of `fiber` when every lane of its mask has arrived.
void check_warp(Fiber* fiber) {
    Launch& l = *active;
    const unsigned warp = fiber->linear / 32, mask = fiber->mask;
    for (unsigned lane = 0; lane < 32; ++lane) {
        if (!(mask >> lane & 1u)) continue;
        const Fiber& other = l.fibers[warp * 32 + lane];
        if (other.state != State::warp) return;  // not there yet
        if (other.mask != mask)
            fail(fiber, "%s with mask 0x%08x, but lane %u of the warp calls %s with mask 0x%08x", fiber->what, mask,
                 lane, other.what, other.mask);
    }
    for (unsigned lane = 0; lane < 32; ++lane) {
        if (!(mask >> lane & 1u)) continue;
        Fiber& receiver = l.fibers[warp * 32 + lane];
        for (unsigned source = 0; source < 32; ++source) {
            if (!(mask >> source & 1u)) continue;
            const Fiber& sender = l.fibers[warp * 32 + source];
            std::memcpy(static_cast<char*>(receiver.out) + source * fiber->bytes, sender.value, fiber->bytes);
        }
        receiver.state = State::runnable;
    }
}

// A returning thread may leave warp-mates waiting for it in a collective: that is a fault.
void check_waiting_warp_mates(Fiber* fiber) {
    Launch& l = *active;
    const unsigned warp = fiber->linear / 32, lane = fiber->linear % 32;
    for (unsigned other = 0; other < 32 && warp * 32 + other < l.fibers.size(); ++other) {
        const Fiber& mate = l.fibers[warp * 32 + other];
        if (mate.state == State::warp && (mate.mask >> lane & 1u))
            fail(&mate, "%s with mask 0x%08x: lane %u returned without taking part (an inactive lane in the mask)",
                 mate.what, mate.mask, lane);
    }
}

void run_copies(std::vector<Copy>& copies) {
    for (const Copy& c : copies) {
        std::memcpy(c.dst, c.src, c.src_bytes);
        std::memset(static_cast<char*>(c.dst) + c.src_bytes, 0, c.bytes - c.src_bytes);
    }
    copies.clear();
}

void call_kernel() {
    using Entry = void (*)(unsigned long long, unsigned long long, unsigned long long, unsigned long long,
                           unsigned long long, unsigned long long, double, double, double, double, double, double,
                           double, double, Launch::Stack);
    const Launch& l = *active;
    const unsigned long long* r = l.integer_args;
    const double* x = l.sse_args;
    // The SysV convention passes the first six integer and eight floating-point arguments in
    // registers and the rest, in order, in 8-byte stack slots, where a struct of more than 16 bytes
    // passed by value lies too: the kernel finds each argument where it expects it.
    reinterpret_cast<Entry>(l.kernel)(r[0], r[1], r[2], r[3], r[4], r[5], x[0], x[1], x[2], x[3], x[4], x[5], x[6],
                                      x[7], l.stack_args);
}

void fiber_main() {
    call_kernel();
    Fiber* fiber = self();
    for (auto& group : fiber->groups) run_copies(group);
    fiber->groups.clear();
    run_copies(fiber->uncommitted);
    fiber->state = State::done;
    --active->live;
    check_waiting_warp_mates(fiber);
    check_barrier(fiber);
    yield(fiber);  // never resumed
}

char* allocate_stacks(size_t count) {
    static char* stacks = nullptr;
    static size_t allocated = 0;
    if (count > allocated) {
        const size_t each = STACK_BYTES + page_size();
        void* memory = mmap(nullptr, each * count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                            -1, 0);
        if (memory == MAP_FAILED) return nullptr;
        for (size_t i = 0; i < count; ++i) mprotect(static_cast<char*>(memory) + i * each, page_size(), PROT_NONE);
        if (stacks) munmap(stacks, (STACK_BYTES + page_size()) * allocated);
        stacks = static_cast<char*>(memory);
        allocated = count;
    }
    return stacks;
}

void run_block(const unsigned long* static_shared, int static_ranges) {
    Launch& l = *active;
    for (int r = 0; r < static_ranges; ++r)
        std::memset(reinterpret_cast<void*>(static_shared[2 * r]), POISON, static_shared[2 * r + 1]);
    if (l.dynamic_shared) std::memset(l.dynamic_shared->data, POISON, l.dynamic_shared->nbytes);
    char* stacks = allocate_stacks(l.fibers.size());
    for (size_t i = 0; i < l.fibers.size(); ++i) {
        Fiber& f = l.fibers[i];
        f.state = State::runnable;
        f.uncommitted.clear();
        f.groups.clear();
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = stacks + i * (STACK_BYTES + page_size()) + page_size();
        f.context.uc_stack.ss_size = STACK_BYTES;
        f.context.uc_link = nullptr;
        makecontext(&f.context, fiber_main, 0);
    }
    l.live = (unsigned)l.fibers.size();
    l.at_barrier = 0;
    while (l.live > 0) {
        bool ran = false;
        for (Fiber& f : l.fibers) {
            if (f.state != State::runnable) continue;
            current = &f;
            swapcontext(&l.scheduler, &f.context);
            close_opened_pages();
            ran = true;
        }
        if (!ran) {  // everyone waits, and nobody can arrive: describe the first waiting thread
            for (Fiber& f : l.fibers) {
                if (f.state == State::warp)
                    fail(&f, "deadlock: %s with mask 0x%08x waits for lanes that wait at __syncthreads()", f.what,
                         f.mask);
                if (f.state == State::barrier)
                    fail(&f, "deadlock: __syncthreads() at line %d waits for threads stuck in warp collectives",
                         f.barrier_line);
            }
        }
    }
}

// ---------------------------------------------------------------- signals

struct sigaction previous_segv, previous_bus;
char alternate_stack[64 * 1024];

void on_memory_fault(int signal, siginfo_t* info, void* context) {
    char* address = static_cast<char*>(info->si_addr);
    Buffer* buffer = active && current ? buffer_guarding(address) : nullptr;
    if (active == nullptr || current == nullptr) {
        sigaction(signal, signal == SIGSEGV ? &previous_segv : &previous_bus, nullptr);
        return;  // not ours: the access repeats under the previous handler
    }
    const bool write = (static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
    if (buffer == nullptr) {
        fail(current, "invalid %s of address %p, outside every argument buffer and its guard zones (a stack "
                      "overflow, or an index far out of range)", write ? "write" : "read", (void*)address);
    }
    Access& access = write ? buffer->writes : buffer->reads;
    if (access.count++ == 0) {
        access.first_offset = address - buffer->data;
        access.block = block_index;
        access.thread = current->index;
    }
    char* page = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(address) & ~(uintptr_t)(page_size() - 1));
    mprotect(page, page_size(), PROT_READ | PROT_WRITE);
    opened_pages.push_back(page);
}

void install_handlers() {
    stack_t alternate{};
    alternate.ss_sp = alternate_stack;
    alternate.ss_size = sizeof alternate_stack;
    sigaltstack(&alternate, nullptr);
    struct sigaction action {};
    action.sa_sigaction = on_memory_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &previous_segv);
    sigaction(SIGBUS, &action, &previous_bus);
}

void restore_handlers() {
    sigaction(SIGSEGV, &previous_segv, nullptr);
    sigaction(SIGBUS, &previous_bus, nullptr);
    stack_t disable{};
    disable.ss_flags = SS_DISABLE;
    sigaltstack(&disable, nullptr);
}

Buffer* allocate_buffer(size_t nbytes, size_t misalignment, const char* label) {
    const size_t page = page_size();
    const size_t guard = GUARD_PAGES * page;
    const size_t data_pages = (nbytes + 16 + page - 1) / page + 1;
    const size_t total = 2 * guard + data_pages * page;
    void* memory = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) return nullptr;
    auto* b = new Buffer();
    b->mapping = static_cast<char*>(memory);
    b->mapping_bytes = total;
    b->front_guard_end = b->mapping + guard;
    b->back_guard = b->front_guard_end + data_pages * page;
    std::memset(b->mapping, POISON, total);
    // The data ends as close to the back guard as its alignment (address mod 16) allows.
    uintptr_t start = reinterpret_cast<uintptr_t>(b->back_guard) - nbytes;
    start -= (start - misalignment) % 16;
    b->data = reinterpret_cast<char*>(start);
    b->nbytes = nbytes;
    b->label = label;
    mprotect(b->mapping, guard, PROT_NONE);
    mprotect(b->back_guard, guard, PROT_NONE);
    return b;
}

void free_buffer(Buffer* b) {
    munmap(b->mapping, b->mapping_bytes);
    delete b;
}

// Bytes outside the data that no longer hold the poison: writes the guard pages did not trap
// (the gaps beside the data within its pages) or that they let through.
long long first_changed_guard_byte(const Buffer* b) {
    for (char* p = b->front_guard_end; p < b->data; ++p)
        if ((unsigned char)*p != POISON) return p - b->data;
    for (char* p = b->data + b->nbytes; p < b->back_guard; ++p)
        if ((unsigned char)*p != POISON) return p - b->data;
    return 0;
}

std::string describe_access(const Buffer* b, const Access& a, const char* kind) {
    char text[400];
    std::snprintf(text, sizeof text,
                  "%lld out-of-bounds %s of %s (%zu bytes), the first at byte offset %lld by block (%u, %u, %u), "
                  "thread (%u, %u, %u)",
                  a.count, kind, b->label.c_str(), b->nbytes, a.first_offset, a.block.x, a.block.y, a.block.z,
                  a.thread.x, a.thread.y, a.thread.z);
    return text;
}

}  // namespace

// ---------------------------------------------------------------- called by the kernels

void syncthreads(const char* /*file*/, int line) {
    Fiber* fiber = self();
    fiber->state = State::barrier;
    fiber->barrier_line = line;
    ++active->at_barrier;
    check_barrier(fiber);
    if (fiber->state == State::barrier) yield(fiber);
}

void warp_exchange(unsigned mask, const void* mine, unsigned bytes, void* all, const char* what) {
    Fiber* fiber = self();
    const unsigned lane = fiber->linear % 32, warp = fiber->linear / 32;
    const unsigned lanes = std::min<unsigned>(32, (unsigned)active->fibers.size() - warp * 32);
    if (!(mask >> lane & 1u)) fail(fiber, "%s with mask 0x%08x, which leaves out the calling lane %u", what, mask, lane);
    for (unsigned other = 0; other < 32; ++other) {
        if (!(mask >> other & 1u)) continue;
        if (other >= lanes)
            fail(fiber, "%s with mask 0x%08x names lane %u, but this warp has only %u lanes (block of %zu threads)",
                 what, mask, other, lanes, active->fibers.size());
        if (active->fibers[warp * 32 + other].state == State::done)
            fail(fiber, "%s with mask 0x%08x: lane %u has already returned (an inactive lane in the mask)", what, mask,
                 other);
    }
    fiber->state = State::warp;
    fiber->mask = mask;
    fiber->value = mine;
    fiber->bytes = bytes;
    fiber->out = all;
    fiber->what = what;
    check_warp(fiber);
    if (fiber->state == State::warp) yield(fiber);
}

void trap(const char* what) { fail(current, "%s", what); }

// Without dynamic shared memory the pointer is null, so that any use of it faults.
void* dynamic_shared() { return active->dynamic_shared ? active->dynamic_shared->data : nullptr; }

unsigned dynamic_shared_size() { return (unsigned)active->dynamic_bytes; }

// cp.async copies land when a wait_group lets them (or when the thread ends): as late as the PTX
// rules allow, so that a missing wait shows up as poison in shared memory.
void cp_async(void* shared_dst, const void* global_src, unsigned bytes, unsigned src_bytes) {
    if (src_bytes > bytes) fail(current, "cp.async of %u bytes with a source size of %u", bytes, src_bytes);
    self()->uncommitted.push_back(Copy{shared_dst, global_src, bytes, src_bytes});
}

void cp_async_commit() {
    Fiber* fiber = self();
    fiber->groups.push_back(std::move(fiber->uncommitted));
    fiber->uncommitted.clear();
}

void cp_async_wait(int pending) {
    Fiber* fiber = self();
    while ((int)fiber->groups.size() > pending) {
        run_copies(fiber->groups.front());
        fiber->groups.erase(fiber->groups.begin());
    }
}

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, d = a·b + d, with the fragment layout of the
// PTX ISA ("Matrix Fragments for mma.m16n8k8", .tf32), g = lane / 4, t = lane % 4:
//   A (16×8, row): a0 (g, t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4)
//   B (8×8, col):  b0 (t, g), b1 (t + 4, g)
//   C, D (16×8):   c0 (g, 2t), c1 (g, 2t + 1), c2 (g + 8, 2t), c3 (g + 8, 2t + 1)
// The tensor core reads only the 19 TF32 bits of each input; the products are exact in FP32 and
// summed in k order.
void mma_m16n8k8_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    struct Fragments {
        unsigned a[4], b[2];
    } mine{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}}, all[32];
    warp_exchange(0xffffffffu, &mine, sizeof mine, all, "mma.sync.m16n8k8");
    float A[16][8], B[8][8];
    for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = lane % 4;
        const unsigned* fa = all[lane].a;
        const unsigned* fb = all[lane].b;
        A[g][t] = __uint_as_float(fa[0] & 0xffffe000u);
        A[g + 8][t] = __uint_as_float(fa[1] & 0xffffe000u);
        A[g][t + 4] = __uint_as_float(fa[2] & 0xffffe000u);
        A[g + 8][t + 4] = __uint_as_float(fa[3] & 0xffffe000u);
        B[t][g] = __uint_as_float(fb[0] & 0xffffe000u);
        B[t + 4][g] = __uint_as_float(fb[1] & 0xffffe000u);
    }
    const int lane = (int)lane_id(), g = lane / 4, t = lane % 4;
    const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int e = 0; e < 4; ++e) {
        float sum = d[e];
        for (int k = 0; k < 8; ++k) sum += A[rows[e]][k] * B[k][cols[e]];
        d[e] = sum;
    }
}

}  // namespace cnnkit_emulator

// ---------------------------------------------------------------- called from Python (ctypes)

using namespace cnnkit_emulator;

extern "C" __attribute__((visibility("default"))) void* cnnkit_emulator_alloc(unsigned long nbytes,
                                                                              unsigned long misalignment,
                                                                              const char* label) {
    std::lock_guard<std::mutex> lock(launch_mutex);
    Buffer* b = allocate_buffer(nbytes, misalignment % 16, label);
    if (b == nullptr) return nullptr;
    buffers.push_back(b);
    return b->data;
}

extern "C" __attribute__((visibility("default"))) void cnnkit_emulator_free(void* data) {
    std::lock_guard<std::mutex> lock(launch_mutex);
    for (size_t i = 0; i < buffers.size(); ++i) {
        if (buffers[i]->data == data) {
            free_buffer(buffers[i]);
            buffers.erase(buffers.begin() + (long)i);
            return;
        }
    }
}

// Describes the out-of-bounds accesses to the buffer at `data` since it was allocated into
// `message`; returns how many problems it found (0: none).
extern "C" __attribute__((visibility("default"))) int cnnkit_emulator_check(void* data, char* message,
                                                                            unsigned long size) {
    std::lock_guard<std::mutex> lock(launch_mutex);
    for (const Buffer* b : buffers) {
        if (b->data != data) continue;
        std::string text;
        int problems = 0;
        if (b->writes.count) text += (problems++ ? "; " : "") + describe_access(b, b->writes, "writes");
        if (b->reads.count) text += (problems++ ? "; " : "") + describe_access(b, b->reads, "reads (they read NaN)");
        const long long changed = first_changed_guard_byte(b);
        if (changed && !b->writes.count) {
            text += (problems++ ? "; " : "") + std::string("a write just outside ") + b->label +
                    " at byte offset " + std::to_string(changed) + " (found after the launch; the thread is unknown)";
        }
        std::snprintf(message, size, "%s", text.c_str());
        return problems;
    }
    std::snprintf(message, size, "no emulator buffer at %p", data);
    return 1;
}

// Runs `kernel` over the grid. words: the kernel's arguments as 64-bit words in order, with
// is_sse[i] set for float and double ones; static_shared: (address, bytes) pairs of the kernel
// library's __shared__ variables; reverse_blocks: run the blocks last to first. Returns 0, or 1
// with the fault in `message`.
extern "C" __attribute__((visibility("default"))) int cnnkit_emulator_launch(
    void* kernel, const char* name, const unsigned* grid, const unsigned* block, unsigned long dynamic_bytes,
    const unsigned long* static_shared, int static_ranges, int nargs, const unsigned long long* words,
    const unsigned char* is_sse, int reverse_blocks, char* message, unsigned long message_size) {
    std::lock_guard<std::mutex> lock(launch_mutex);
    Launch l;
    l.kernel_name = name;
    l.kernel = kernel;
    int integers = 0, sses = 0, slots = 0;
    for (int i = 0; i < nargs; ++i) {
        if (is_sse[i] && sses < SSE_REGISTERS) {
            std::memcpy(&l.sse_args[sses++], &words[i], 8);
        } else if (!is_sse[i] && integers < INTEGER_REGISTERS) {
            l.integer_args[integers++] = words[i];
        } else if (slots < STACK_SLOTS) {
            l.stack_args.slot[slots++] = words[i];
        } else {
            std::snprintf(message, message_size, "kernel %s: more than %d arguments", name, MAX_ARGS);
            return 1;
        }
    }
    block_dim = dim3{block[0], block[1], block[2]};
    grid_dim = dim3{grid[0], grid[1], grid[2]};
    const size_t threads = (size_t)block[0] * block[1] * block[2];
    l.fibers.resize(threads);
    for (size_t i = 0; i < threads; ++i) {
        Fiber& f = l.fibers[i];
        f.linear = (unsigned)i;
        f.index = uint3{(unsigned)(i % block[0]), (unsigned)(i / block[0] % block[1]),
                        (unsigned)(i / ((size_t)block[0] * block[1]))};
    }
    l.dynamic_bytes = dynamic_bytes;
    std::string dynamic_label = "dynamic shared memory";
    if (dynamic_bytes) {
        dynamic_label += " (the launch gives " + std::to_string(dynamic_bytes) + " bytes)";
        l.dynamic_shared = allocate_buffer(dynamic_bytes, 0, dynamic_label.c_str());
        buffers.push_back(l.dynamic_shared);
    }
    active = &l;
    install_handlers();
    int status = 0;
    if (sigsetjmp(l.abort, 1) == 0) {
        const unsigned long long blocks = (unsigned long long)grid[0] * grid[1] * grid[2];
        for (unsigned long long i = 0; i < blocks; ++i) {
            const unsigned long long b = reverse_blocks ? blocks - 1 - i : i;
            block_index = uint3{(unsigned)(b % grid[0]), (unsigned)(b / grid[0] % grid[1]),
                                (unsigned)(b / ((unsigned long long)grid[0] * grid[1]))};
            run_block(static_shared, static_ranges);
        }
    } else {
        status = 1;
        close_opened_pages();
    }
    restore_handlers();
    current = nullptr;
    if (status == 0 && l.dynamic_shared) {
        const Buffer* b = l.dynamic_shared;
        std::string text;
        if (b->writes.count) text = describe_access(b, b->writes, "writes");
        else if (b->reads.count) text = describe_access(b, b->reads, "reads");
        else if (first_changed_guard_byte(b)) text = "a write just past " + b->label;
        if (!text.empty()) {
            l.message = std::string("kernel ") + name + ": shared memory used beyond the launch's size: " + text;
            status = 1;
        }
    }
    if (l.dynamic_shared) {
        buffers.pop_back();
        free_buffer(l.dynamic_shared);
    }
    active = nullptr;
    if (status) std::snprintf(message, message_size, "%s", l.message.c_str());
    return status;
}
