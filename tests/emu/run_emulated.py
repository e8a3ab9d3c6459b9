#!/usr/bin/env python3
"""Run lowbit's test suites on an emulated x86-64 CPU that has AVX-512.

A machine without AVX-512 cannot run the avx512, avx512_vnni and amx kernels,
so its tests skip them. This runs the same GoogleTest suites on Bochs' CPU model
of a Sapphire Rapids (AVX-512 F/BW/DQ/VL, VNNI, BF16, FP16, AVX-VNNI; the
emulator is built without AMX, so a library built with LOWBIT_SOFT_AMX runs the
amx tier's tile products as functions, tests/emu/soft_amx.hpp), through the
bochscpu-python wheel:

  * tests/emu/entry.cpp's library (lowbit-tests-emu) is loaded into this
    process, so its relocations and static constructors are done natively and
    the emulated CPU shares this process's memory: its page tables map each
    GiB of address space that the process uses onto a guest-physical slot
    whose pages are this process's pages.
  * The CPU starts in 64-bit mode at lowbit_emu_main, with this thread's FS
    base (thread-locals) and a stack of its own. Each SYSCALL lands on a HLT
    that hands the call to this process: memory calls (mmap, brk, ...) and
    I/O run natively and their new pages are mapped for the guest; a call
    that would create a thread or process ends the run (one emulated CPU
    runs one thread), and signal set-up is acknowledged without touching
    this process's handlers. So the suites run single-threaded
    (LOWBIT_NUM_THREADS=1, set here), without the thread tests.
  * glibc's malloc is shared with the host; it is set up so that the guest's
    allocations do not grow the heap while Python code runs beside it.
  * Every symbol is bound at load (LD_BIND_NOW): the lazy-binding trampoline
    would save the AVX-512 state into a frame sized for the host CPU's.

Usage: run_emulated.py LIB [gtest arguments...]
The exit status is the suites' (0 when all selected tests passed); 2 when the
emulator cannot run here or its CPU lacks an ISA these tests need; 3 when a
test starts a thread.
"""
import ctypes
import os
import sys
import time

PAGE = 4096
GIB = 1 << 30

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long] * 7
libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]


def fail(msg, status=2):
    print(f"run_emulated.py: {msg}", file=sys.stderr)
    sys.exit(status)


def import_bochscpu():
    # The wheel is linked against glibc 2.38's C23 names of strtoull and
    # sscanf; older C libraries (Debian 12 has 2.36) get them from a shim
    # that tests/emu/setup.sh builds beside the virtual environment.
    shim = os.environ.get("LOWBIT_EMU_SHIM", os.path.join(sys.prefix, "lib", "liblowbit_emu_shim.so"))
    if os.path.exists(shim):
        ctypes.CDLL(shim, mode=ctypes.RTLD_GLOBAL)
    try:
        import bochscpu  # noqa: F401
        import bochscpu.cpu
        import bochscpu.memory
        import bochscpu.utils
    except ImportError as e:
        fail(f"cannot import bochscpu ({e}); run tests/emu/setup.sh")
    return bochscpu


bochscpu = import_bochscpu()

# Bochs' CPU models, by their index in its model table. The wheel's enum of
# names stops at tigerlake (27) but its table goes on; 30 is sapphire_rapids
# (checked by its CPUID below, not trusted).
SAPPHIRE_RAPIDS = 30


def select_cpu_model(index):
    so = ctypes.CDLL(bochscpu._bochscpu.__file__)
    get = so.sim_get_param_enum
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.c_char_p]
    param = get(b"cpu.model")
    if not param:
        fail("the emulator has no cpu.model parameter")
    # bx_param_num_c: min, max, value, initial value as 64-bit words from
    # word 14 (this wheel's layout; checked before writing).
    words = (ctypes.c_int64 * 18).from_address(param)
    if not (words[14] == 0 and words[15] == words[16] == words[17] and 20 <= words[15] < 64):
        fail("unexpected layout of the emulator's cpu.model parameter: pin bochscpu-python to the version in tests/emu/setup.sh")
    words[15] = max(words[15], index)
    words[16] = index
    words[17] = index


def host_alloc(size, prot=3):
    p = libc.mmap(None, size, prot, 0x22, -1, 0)  # MAP_PRIVATE | MAP_ANONYMOUS
    if not p or p == ctypes.c_void_p(-1).value:
        fail(f"mmap of {size} bytes failed")
    return p


def where(address):
    """An address as FILE+OFFSET (for addr2line), from this process's map."""
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            a, b = (int(x, 16) for x in fields[0].split("-"))
            if a <= address < b and len(fields) >= 6:
                return f"{fields[5]}+{address - a + int(fields[2], 16):#x}"
    return f"{address:#x}"


def mapped_regions():
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            a, b = (int(x, 16) for x in line.split()[0].split("-"))
            if b <= 1 << 47:
                out.append((a, b))
    return out


class AddressSpace:
    """Page tables for the guest, in host memory.

    Each GiB of the lower half that the process uses (and a window around
    each, where new mappings land) is one 1 GiB page on its own
    guest-physical slot; slot 0 holds the tables. The guest's physical
    addresses are 40 bits wide, too narrow to map host addresses 1:1."""

    def __init__(self, window_below=128, window_above=16):
        # The PML4, and a PDPT for each of its 256 lower-half entries at most.
        self.tables = host_alloc(257 * PAGE)
        self.tables_gpa = PAGE
        self.pdpt = {}  # PML4 index -> page of the tables holding its PDPT
        self.slot_of = {}
        self.slot_va = {}
        gibs = set()
        for a, b in mapped_regions():
            gibs.update(range(a >> 30, ((b - 1) >> 30) + 1))
        want = set()
        for g in gibs:
            want.update(x for x in range(g - window_below, g + window_above + 1) if 0 <= x < 1 << 17)
        for g in sorted(want):
            self._map_gib(g)
        for i in range(1 + len(self.pdpt)):
            bochscpu.memory.page_insert(self.tables_gpa + i * PAGE, self.tables + i * PAGE)

    @property
    def cr3(self):
        return self.tables_gpa

    def _map_gib(self, g):
        i, j = g >> 9, g & 511
        if i not in self.pdpt:
            t = self.pdpt[i] = 1 + len(self.pdpt)
            ctypes.c_uint64.from_address(self.tables + 8 * i).value = (self.tables_gpa + t * PAGE) | 0x3
        slot = len(self.slot_of) + 1
        if slot >= 1 << 10:
            fail("address space too large for the guest's 40-bit physical addresses")
        self.slot_of[g] = slot
        self.slot_va[slot] = g << 30
        pdpt = self.tables + self.pdpt[i] * PAGE
        ctypes.c_uint64.from_address(pdpt + 8 * j).value = (slot << 30) | 0x83  # present, writable, 1 GiB

    def gpa_of(self, va):
        slot = self.slot_of.get(va >> 30)
        return None if slot is None else (slot << 30) | (va & (GIB - 1))

    def va_of(self, gpa):
        va = self.slot_va.get(gpa >> 30)
        return None if va is None else va + (gpa & (GIB - 1))

    def insert_range(self, a, b):
        """Map the host pages of [a, b) for the guest now (again, for pages
        already mapped: the same page), so that the emulator never asks for
        them while guest code (possibly inside malloc) is halfway through
        something."""
        for va in range(a & ~(PAGE - 1), b, PAGE):
            gpa = self.gpa_of(va)
            if gpa is None:
                fail(f"host memory at {va:#x} lies outside the guest's address space")
            bochscpu.memory.page_insert(gpa, va)

    def insert_all(self):
        for a, b in mapped_regions():
            self.insert_range(a, b)


# Linux x86-64 system call numbers handled here rather than natively.
SYS_MMAP, SYS_MREMAP, SYS_BRK = 9, 25, 12
SYS_RT_SIGACTION, SYS_RT_SIGPROCMASK, SYS_SIGALTSTACK = 13, 14, 131
SYS_CLONE, SYS_FORK, SYS_VFORK, SYS_CLONE3 = 56, 57, 58, 435
SYS_EXIT, SYS_EXIT_GROUP, SYS_ARCH_PRCTL = 60, 231, 158
EINVAL = 22


class Guest:
    def __init__(self):
        self.sess = bochscpu.Session()
        self.space = AddressSpace()
        self.sess.missing_page_handler = self._missing_page
        self.magic = host_alloc(PAGE, 7)  # HLT at +0 (return), HLT at +16 (syscall entry)
        ctypes.memset(self.magic, 0xF4, PAGE)
        self.stack_size = 256 << 20
        self.stack = host_alloc(self.stack_size)
        self.syscalls = 0
        self.late_pages = 0
        self.grew = 0

    def _missing_page(self, gpa):
        va = self.space.va_of(gpa & ~(PAGE - 1))
        if va is None:
            raise RuntimeError(f"guest touched physical {gpa:#x}, outside every mapped slot")
        bochscpu.memory.page_insert(gpa & ~(PAGE - 1), va)
        self.late_pages += 1

    def _state(self, fs_base):
        st = bochscpu.State()
        bochscpu.cpu.set_long_mode(st)
        cr0 = bochscpu.utils.cpu.CR0(st.cr0)
        cr0.MP = True
        cr0.EM = False
        cr0.NE = True
        cr4 = bochscpu.utils.cpu.CR4(st.cr4)
        cr4.OSFXSR = True
        cr4.OSXMMEXCPT = True
        cr4.OSXSAVE = True
        cr4.FSGSBASE = True
        st.cr0 = int(cr0)
        st.cr4 = int(cr4)
        st.xcr0 = 0xE7  # x87, SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM
        st.cr3 = self.space.cr3

        def seg(attr, sel, base=0):
            s = bochscpu.Segment()
            s.base, s.limit, s.selector, s.attr, s.present = base, 0xFFFFFFFF, sel, attr, True
            return s

        self.cs, self.ss = seg(0x209B, 0x10), seg(0xC093, 0x18)  # 64-bit code, data; ring 0
        st.cs, st.ss = self.cs, self.ss
        st.ds = seg(0xC093, 0x18)
        st.es = seg(0xC093, 0x18)
        st.fs = seg(0xC093, 0, fs_base)
        st.gs = seg(0xC093, 0)
        st.lstar = self.magic + 16
        st.star = 0x10 << 32
        st.sfmask = 0
        st.mxcsr = 0x1F80
        st.fpcw = 0x37F
        st.rflags = 0x2
        return st

    def call(self, fn, args, fs_base):
        st = self._state(fs_base)
        rsp = ((self.stack + self.stack_size - 256) & ~0xF) - 8
        ctypes.c_uint64.from_address(rsp).value = self.magic  # the return address: a HLT
        st.rsp, st.rip = rsp, fn
        for reg, value in zip(("rdi", "rsi", "rdx", "rcx", "r8", "r9"), args):
            setattr(st, reg, value)
        self.space.insert_all()
        self.sess.cpu.state = st
        hook = bochscpu.Hook()
        hook.hlt = lambda sess, cpu: sess.stop()
        fault = []

        def exception(sess, cpu, vector, error):
            fault.append((vector, error, sess.cpu.rip, sess.cpu.cr2))
            sess.stop()

        hook.exception = exception
        while True:
            self.sess.run([hook])
            if fault:
                vector, error, rip, cr2 = fault[0]
                raise RuntimeError(f"guest exception {vector} (error {error:#x}) at {where(rip)}, cr2 {cr2:#x}")
            cur = self.sess.cpu.state
            if cur.rip in (self.magic, self.magic + 1):
                return cur.rax
            if cur.rip not in (self.magic + 16, self.magic + 17):
                raise RuntimeError(f"guest stopped at rip {cur.rip:#x}")
            result = self._syscall(cur)
            if isinstance(result, tuple):  # exit
                return result[1]
            cur.rax = result & 0xFFFFFFFFFFFFFFFF
            cur.rip, cur.rflags = cur.rcx, cur.r11
            cur.cs, cur.ss = self.cs, self.ss
            self.sess.cpu.state = cur

    def _syscall(self, st):
        self.syscalls += 1
        nr = st.rax
        a = (st.rdi, st.rsi, st.rdx, st.r10, st.r8, st.r9)
        if nr in (SYS_EXIT, SYS_EXIT_GROUP):
            return ("exit", a[0] & 0xFF)
        if nr in (SYS_CLONE, SYS_FORK, SYS_VFORK, SYS_CLONE3):
            # One emulated CPU runs one thread: a test that starts another
            # cannot run here; say so instead of letting it fail obscurely.
            print("run_emulated.py: the running test starts a thread (or process); leave it out "
                  "with --gtest_filter (see EMULATED_FILTER in ci/test_emulated.sh)", file=sys.stderr, flush=True)
            return ("exit", 3)
        if nr in (SYS_RT_SIGACTION, SYS_RT_SIGPROCMASK, SYS_SIGALTSTACK):
            return 0
        if nr == SYS_ARCH_PRCTL:
            return -EINVAL
        before = libc.syscall(SYS_BRK, 0, 0, 0, 0, 0, 0, 0) if nr == SYS_BRK else 0
        r = libc.syscall(nr, *a, 0)
        ok = not -4096 < r < 0
        if nr == SYS_MMAP and ok:
            self.space.insert_range(r, r + a[1])
        elif nr == SYS_MREMAP and ok:
            self.space.insert_range(r, r + a[2])
        elif nr == SYS_BRK and r > before:
            self.space.insert_range(before, r)
        self.grew += nr in (SYS_MMAP, SYS_MREMAP, SYS_BRK) and ok
        return r


def main():
    if len(sys.argv) < 2:
        fail("usage: run_emulated.py LIB [gtest arguments...]")
    if os.environ.get("LD_BIND_NOW") != "1":
        # Every symbol of every library bound at load: the dynamic linker's
        # lazy-binding trampoline saves the vector state with XSAVEC into a
        # frame sized for the host CPU's state, which the emulated CPU's
        # AVX-512 state overflows. The setting is read at process start.
        os.environ["LD_BIND_NOW"] = "1"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    lib_path = sys.argv[1]
    os.environ["LOWBIT_NUM_THREADS"] = "1"
    select_cpu_model(SAPPHIRE_RAPIDS)
    lib = ctypes.CDLL(os.path.abspath(lib_path))
    lib.lowbit_emu_fs_base.restype = ctypes.c_uint64
    fs_base = lib.lowbit_emu_fs_base()
    entry = ctypes.cast(lib.lowbit_emu_main, ctypes.c_void_p).value
    cpuid = ctypes.cast(lib.lowbit_emu_cpuid, ctypes.c_void_p).value

    # Keep the guest's malloc from growing the heap mid-allocation: the heap
    # grown by 1 GiB once, natively, before the guest starts (the top pad),
    # never trimmed, and big blocks taken from it rather than mmap'ed.
    libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    libc.mallopt(-2, 1 << 30)  # M_TOP_PAD
    libc.mallopt(-4, 0)        # M_MMAP_MAX
    libc.free(libc.malloc(1 << 20))

    guest = Guest()
    regs = (ctypes.c_uint32 * 4)()
    guest.call(cpuid, [7, 0, ctypes.addressof(regs)], fs_base)
    leaf7 = list(regs)
    guest.call(cpuid, [7, 1, ctypes.addressof(regs)], fs_base)
    leaf7_1 = list(regs)
    need = {"avx512f": leaf7[1] >> 16 & 1, "avx512bw": leaf7[1] >> 30 & 1, "avx512vl": leaf7[1] >> 31 & 1,
            "avx512_vnni": leaf7[2] >> 11 & 1, "avx_vnni": leaf7_1[0] >> 4 & 1, "avx512_bf16": leaf7_1[0] >> 5 & 1}
    missing = [k for k, v in need.items() if not v]
    if missing:
        fail(f"the emulated CPU lacks {', '.join(missing)}: pin bochscpu-python to the version in tests/emu/setup.sh")
    print(f"run_emulated.py: emulated CPU has {', '.join(need)} (Bochs sapphire_rapids; no AMX: the amx tier's tiles only with LOWBIT_SOFT_AMX)", flush=True)

    argv = [lib_path.encode()] + [x.encode() for x in sys.argv[2:]]
    c_argv = (ctypes.c_char_p * (len(argv) + 1))(*argv, None)
    t0 = time.monotonic()
    status = guest.call(entry, [len(argv), ctypes.addressof(c_argv)], fs_base)
    print(f"run_emulated.py: status {status & 0xFF} after {time.monotonic() - t0:.0f} s emulated, "
          f"{guest.syscalls} system calls, {guest.late_pages} pages mapped late", flush=True)
    if guest.grew:
        # The Python side (and the emulator's page map) may have allocated
        # while the guest's malloc was between its system call and its
        # bookkeeping: a run that outgrew the heap prepared for it is suspect.
        print(f"run_emulated.py: warning: the guest mapped new memory {guest.grew} times "
              "(more than the heap prepared for it); rerun a smaller test selection if this run misbehaved",
              file=sys.stderr, flush=True)
    return status & 0xFF


if __name__ == "__main__":
    sys.exit(main())
