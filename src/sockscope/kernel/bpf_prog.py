"""The BPF programs :mod:`sockscope.kernel.bpf` loads, assembled here (no compiler, no libbpf).

Both write 16-byte records ``(inode, pid, fd)`` of every socket fd of every thread-group leader
(what ``/proc/PID/fd`` shows), in pid then fd order, and end with a trailer carrying the reader's
pid as the kernel sees it:

* :func:`program` — over the kernel's ``task_file`` iterator: called once per open file of every
  process.  The kernel finds each file by looking at every slot of the process's fd table in turn,
  up to the table's size, so a process whose table once grew large (a forked worker of a holder of
  thousands of sockets keeps the holder's table size) costs its whole size however few fds it has
  left: 1,000 such workers with 8,192 slots each took ~20 ms of kernel time.
* :func:`walk_program` — over the ``task`` iterator: called once per task, it walks the leader's
  fd table itself by its bitmap of open fds (``open_fds``: a word of zeros stands for 64 empty
  slots), with ``bpf_loop`` (one call per word, one per open fd).  Memory is read by loads the
  kernel guards (``bpf_rdonly_cast``: a read that faults gives 0), without the locks the kernel's
  own iterator takes: under RCU (the program runs in an RCU read section), a process that closes or
  opens fds meanwhile may be seen before or after the change, as a ``/proc`` walk sees it.  The
  kernel writes a task's records into one buffer of 32 KiB (an object longer than that fails the
  whole read), so a process with :data:`CAP` fds or more (its lowest free fd, ``next_fd``, says so
  without a walk) or found to hold that many sockets is left to :func:`program` (a ``task_file``
  iterator of that one process): its walk writes a marker ``(0, pid, BIG_FD)`` instead of the rest.
  An exiting process is left to it too: the walk takes none of the locks the kernel's iterator
  takes, and a process's fd table goes away when it exits.  Where the walk finds the file it is read
  from it writes ``(fd | table size << 32, pid, SELF_FD)``; a fd table that cannot be one (no bitmap, a size that is no
  multiple of 64: what a wrong layout reads, or a table freed meanwhile) gets ``(0, pid, BAD_FD)``
  and is read again as the large ones are.  The reader checks that its own fd table was walked (or
  is large indeed), its fd found there and the table's size read as ``/proc/self/status`` shows it
  (``FDSize``): a cached layout that is wrong fails that.

Offsets and ids come from the kernel's BTF (:func:`sockscope.kernel.bpf.layout`).
"""

from __future__ import annotations

import struct

RECORD = struct.Struct("<QII")  # inode, pid, fd (little-endian machines only: see bpf._NR_BPF)
TRAILER_FD = 0xFFFFFFFF
BIG_FD = 0xFFFFFFFE  # the walk's marker: this process's fds come from a task_file iterator of its own
SELF_FD = 0xFFFFFFFD  # the walk's record (fd | size << 32, pid, SELF_FD): the file being read is at fd of pid
BAD_FD = 0xFFFFFFFC  # the walk's marker: this fd table cannot be one (read again by task_file)
PF_EXITING = 0x4  # include/linux/sched.h: set before an exiting task's files are let go
CAP = 1900  # records a task's walk writes at most (+63 at the last word, + the marker: < 32 KiB)
MAX_WORDS = 1 << 15  # a fd table of more than 2M slots is left to the task_file iterator too

# the facts learned from BTF, in this order (see layout())
FIELDS = (
    "attach_btf_id", "ctx_meta", "ctx_task", "ctx_fd", "ctx_file", "meta_seq",
    "task_pid", "task_tgid", "file_inode", "inode_mode", "inode_ino",
    "func_seq_write", "func_pid_tgid", "prog_type", "attach_type",
    # the fd table walk (bpf_prog.walk_program); walk_btf_id 0: not on this kernel
    "walk_btf_id", "walk_ctx_meta", "walk_ctx_task", "task_files", "files_fdt", "files_next_fd", "fdt_max_fds",
    "fdt_fd", "fdt_open_fds", "cast_btf_id", "word_btf_id", "func_loop", "func_probe_read", "seq_file",
    "task_flags",
)
WALK_FIELDS = FIELDS[FIELDS.index("walk_btf_id"):]


#: numbers fixed by the kernel's ABI (include/uapi/linux/bpf.h); BTF is asked anyway and must agree
UAPI = {"func_seq_write": 127, "func_pid_tgid": 14, "prog_type": 26, "attach_type": 28}
WALK_UAPI = {"func_loop": 181, "func_probe_read": 113}  # where the walk is learned

# opcodes (include/uapi/linux/bpf.h, bpf_common.h)
_LDX_DW, _LDX_W, _LDX_H = 0x79, 0x61, 0x69
_STX_DW, _STX_W, _ST_DW, _ST_W = 0x7B, 0x63, 0x7A, 0x62
_MOV_X, _MOV_K, _ADD_K, _ADD_X, _AND_K, _AND_X, _XOR_X = 0xBF, 0xB7, 0x07, 0x0F, 0x57, 0x5F, 0xAF
_RSH_K, _LSH_K, _NEG, _SUB_X, _MUL_X = 0x77, 0x67, 0x87, 0x1F, 0x2F
_JEQ_K, _JNE_K, _JNE_X, _JGE_K, _JGT_K, _JGT_X, _JLT_K, _JA = 0x15, 0x55, 0x5D, 0x35, 0x25, 0x2D, 0xA5, 0x05
_CALL, _EXIT, _LD_IMM64 = 0x85, 0x95, 0x18
_PSEUDO_KFUNC_CALL, _PSEUDO_FUNC = 2, 4
_S_IFMT, _S_IFSOCK = 0o170000, 0o140000

Insn = tuple[int, int, int, "int | str", "int | str"]


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


def assemble(code: list[Insn | str]) -> tuple[bytes, dict[str, int]]:
    """Instructions (``(op, dst, src, off, imm)``; a str is a label) -> (bytecode, label -> instruction
    index).  A label as ``off`` is a jump's target, as ``imm`` of a ``ld_imm64`` a function's (both
    relative to the next instruction); a ``ld_imm64`` takes two slots."""
    labels: dict[str, int] = {}
    at = 0
    for item in code:
        if isinstance(item, str):
            labels[item] = at
        else:
            at += 2 if item[0] == _LD_IMM64 else 1
    out = []
    i = 0
    for item in code:
        if isinstance(item, str):
            continue
        op, dst, src, off, imm = item
        if isinstance(off, str):
            off = labels[off] - i - 1
        if isinstance(imm, str):
            imm = labels[imm] - i - 1
        if op == _LD_IMM64:  # a 64-bit immediate: its low word here, its high word in the next slot
            low, high = imm & 0xFFFFFFFF, (imm >> 32) & 0xFFFFFFFF if src == 0 else 0
            out.append(_insn(op, dst, src, off, low - (1 << 32) * (low >> 31)))
            out.append(_insn(0, 0, 0, 0, high - (1 << 32) * (high >> 31)))
            i += 2
            continue
        out.append(_insn(op, dst, src, off, imm))
        i += 1
    return b"".join(out), labels


def _trailer(L: dict[str, int]) -> list[Insn | str]:
    """Write (0, the reader's tgid, TRAILER_FD) to the seq_file in ``r7``, from ``r10-16``."""
    return [
        (_CALL, 0, 0, 0, L["func_pid_tgid"]),
        (_RSH_K, 0, 0, 0, 32),
        (_STX_W, 10, 0, -8, 0),
        (_ST_DW, 10, 0, -16, 0),
        (_ST_W, 10, 0, -4, -1),
        (_MOV_X, 1, 7, 0, 0),
        (_MOV_X, 2, 10, 0, 0),
        (_ADD_K, 2, 0, 0, -16),
        (_MOV_K, 3, 0, 0, RECORD.size),
        (_CALL, 0, 0, 0, L["func_seq_write"]),
    ]


def program(layout: dict[str, int]) -> bytes:
    """The ``task_file`` iterator program's instructions for a kernel with ``layout``.

    ``r6`` ctx, ``r7`` the seq_file; the record is built at ``r10-16``.
    """
    L = layout
    code: list[Insn | str] = [
        (_MOV_X, 6, 1, 0, 0),
        (_LDX_DW, 7, 6, L["ctx_meta"], 0),
        (_LDX_DW, 7, 7, L["meta_seq"], 0),
        (_LDX_DW, 2, 6, L["ctx_task"], 0),
        (_JEQ_K, 2, 0, "TRAILER", 0),  # the last call, after the last file
        (_LDX_DW, 3, 6, L["ctx_file"], 0),
        (_JEQ_K, 3, 0, "OUT", 0),
        (_LDX_W, 4, 2, L["task_pid"], 0),
        (_LDX_W, 5, 2, L["task_tgid"], 0),
        (_JNE_X, 4, 5, "OUT", 0),  # threads with their own fd table: /proc/PID/fd does not show them
        (_STX_W, 10, 5, -8, 0),
        (_LDX_DW, 4, 3, L["file_inode"], 0),
        (_LDX_H, 5, 4, L["inode_mode"], 0),
        (_AND_K, 5, 0, 0, _S_IFMT),
        (_JNE_K, 5, 0, "OUT", _S_IFSOCK),
        (_LDX_DW, 5, 4, L["inode_ino"], 0),
        (_STX_DW, 10, 5, -16, 0),
        (_LDX_W, 5, 6, L["ctx_fd"], 0),
        (_STX_W, 10, 5, -4, 0),
        (_MOV_X, 1, 7, 0, 0),
        (_MOV_X, 2, 10, 0, 0),
        (_ADD_K, 2, 0, 0, -16),
        (_MOV_K, 3, 0, 0, RECORD.size),
        (_CALL, 0, 0, 0, L["func_seq_write"]),
        (_JA, 0, 0, "OUT", 0),
        "TRAILER",
        *_trailer(L),
        "OUT",
        (_MOV_K, 0, 0, 0, 0),
        (_EXIT, 0, 0, 0, 0),
    ]
    return assemble(code)[0]


# the walk's state, on the main program's stack (r10 - _CTX + field), shared with its callbacks
_C_SEQ, _C_OPEN, _C_FDS, _C_WORD, _C_BASE, _C_TGID, _C_COUNT, _C_SELF, _C_MAX = 0, 8, 16, 24, 32, 40, 48, 56, 64
_CTX = 72


def _and64(reg: int, mask: int) -> list[Insn | str]:
    """``reg &= mask`` for a 64-bit mask (through r4)."""
    return [(_LD_IMM64, 4, 0, 0, mask), (_AND_X, reg, 4, 0, 0)]


def walk_program(layout: dict[str, int]) -> tuple[bytes, list[int]]:
    """The ``task`` iterator program that walks each leader's fd table (see the module doc): its
    instructions and the first instruction of each of its three functions (the main one, the
    callback per word of ``open_fds``, the callback per open fd), for the BTF func_info."""
    L = layout

    def load(dst: int, reg: int, off: int) -> list[Insn | str]:
        """``dst = *(u64 *)(reg + off)``, a guarded read (the address cast to a struct whose first
        member is a u64 scalar; the cast is no call once verified).  Clobbers r0-r5."""
        return [(_MOV_X, 1, reg, 0, 0), (_ADD_K, 1, 0, 0, off), (_MOV_K, 2, 0, 0, L["word_btf_id"]),
                (_CALL, 0, _PSEUDO_KFUNC_CALL, 0, L["cast_btf_id"]), (_LDX_DW, dst, 0, 0, 0)]

    def low32(reg: int) -> list[Insn | str]:
        return [(_LSH_K, reg, 0, 0, 32), (_RSH_K, reg, 0, 0, 32)]

    code: list[Insn | str] = [
        (_MOV_X, 6, 1, 0, 0),
        (_LDX_DW, 7, 6, L["walk_ctx_meta"], 0),
        (_LDX_DW, 7, 7, L["meta_seq"], 0),
        (_LDX_DW, 2, 6, L["walk_ctx_task"], 0),
        (_JEQ_K, 2, 0, "TRAILER", 0),  # the last call, after the last task
        (_LDX_W, 3, 2, L["task_pid"], 0),
        (_LDX_W, 4, 2, L["task_tgid"], 0),
        (_JNE_X, 3, 4, "OUT", 0),  # leaders only: /proc/PID/fd shows the leader's table
        (_STX_DW, 10, 7, -_CTX + _C_SEQ, 0),
        (_STX_DW, 10, 4, -_CTX + _C_TGID, 0),
        (_LDX_W, 3, 2, L["task_flags"], 0),
        (_AND_K, 3, 0, 0, PF_EXITING),
        (_JNE_K, 3, 0, "BIG", 0),  # exiting: its files may go while they are read (task_file locks)
        *load(8, 2, L["task_files"]),
        *load(1, 7, L["seq_file"]),  # the file being read (the reader's own fd finds it: a check of the walk)
        (_STX_DW, 10, 1, -_CTX + _C_SELF, 0),
        (_JEQ_K, 8, 0, "OUT", 0),  # a kernel thread, or an exited leader
        *load(9, 8, L["files_next_fd"]),
        *low32(9),
        (_JGE_K, 9, 0, "BIG", CAP),  # at least CAP fds (every one below next_fd is open)
        (_STX_DW, 10, 9, -_CTX + _C_WORD, 0),  # (next_fd, for a check below)
        *load(8, 8, L["files_fdt"]),
        (_JEQ_K, 8, 0, "BAD", 0),
        *load(1, 8, L["fdt_open_fds"]),
        (_JEQ_K, 1, 0, "BAD", 0),
        (_STX_DW, 10, 1, -_CTX + _C_OPEN, 0),
        *load(1, 8, L["fdt_fd"]),
        (_JEQ_K, 1, 0, "BAD", 0),
        (_STX_DW, 10, 1, -_CTX + _C_FDS, 0),
        *load(9, 8, L["fdt_max_fds"]),
        *low32(9),
        (_STX_DW, 10, 9, -_CTX + _C_MAX, 0),  # (the table's size, in the reader's SELF_FD record)
        # a table has 64 slots or more, a multiple of 64, at least next_fd: else no table is read here
        (_MOV_X, 1, 9, 0, 0), (_AND_K, 1, 0, 0, 63), (_JNE_K, 1, 0, "BAD", 0),
        (_JEQ_K, 9, 0, "BAD", 0),
        (_LDX_DW, 1, 10, -_CTX + _C_WORD, 0), (_JGT_X, 1, 9, "BAD", 0),
        (_RSH_K, 9, 0, 0, 6),
        (_JGT_K, 9, 0, "BIG", MAX_WORDS),
        # the count of records, 0, copied by a helper: a value the verifier does not follow (else it
        # would walk the callbacks once per value of the count)
        (_ST_DW, 10, 0, -_CTX + _C_WORD, 0),
        (_MOV_X, 1, 10, 0, 0), (_ADD_K, 1, 0, 0, -_CTX + _C_COUNT), (_MOV_K, 2, 0, 0, 8),
        (_MOV_X, 3, 10, 0, 0), (_ADD_K, 3, 0, 0, -_CTX + _C_WORD),
        (_CALL, 0, 0, 0, L["func_probe_read"]),
        (_JNE_K, 0, 0, "OUT", 0),
        (_MOV_X, 1, 9, 0, 0),
        (_LD_IMM64, 2, _PSEUDO_FUNC, 0, "WORD"),
        (_MOV_X, 3, 10, 0, 0), (_ADD_K, 3, 0, 0, -_CTX),
        (_MOV_K, 4, 0, 0, 0),
        (_CALL, 0, 0, 0, L["func_loop"]),
        (_LDX_DW, 1, 10, -_CTX + _C_COUNT, 0),
        (_JLT_K, 1, 0, "OUT", CAP),
        "BIG",  # (0, pid, BIG_FD) after whatever was written of this task
        (_ST_W, 10, 0, -4, BIG_FD - (1 << 32)),
        (_JA, 0, 0, "MARK", 0),
        "BAD",  # (0, pid, BAD_FD)
        (_ST_W, 10, 0, -4, BAD_FD - (1 << 32)),
        "MARK",
        (_LDX_DW, 1, 10, -_CTX + _C_TGID, 0),
        (_STX_W, 10, 1, -8, 0),
        (_ST_DW, 10, 0, -16, 0),
        (_MOV_X, 1, 7, 0, 0),
        (_MOV_X, 2, 10, 0, 0),
        (_ADD_K, 2, 0, 0, -16),
        (_MOV_K, 3, 0, 0, RECORD.size),
        (_CALL, 0, 0, 0, L["func_seq_write"]),
        "OUT",
        (_MOV_K, 0, 0, 0, 0),
        (_EXIT, 0, 0, 0, 0),
        "TRAILER",
        *_trailer(L),
        (_MOV_K, 0, 0, 0, 0),
        (_EXIT, 0, 0, 0, 0),
        # -- WORD(index, ctx): word ``index`` of open_fds; its open fds by BIT, lowest first
        "WORD",
        (_MOV_X, 6, 2, 0, 0),
        (_MOV_X, 7, 1, 0, 0),
        (_LDX_DW, 1, 6, _C_COUNT, 0),
        (_JGE_K, 1, 0, "W_STOP", CAP),
        (_LDX_DW, 3, 6, _C_OPEN, 0),
        (_MOV_X, 1, 7, 0, 0), (_LSH_K, 1, 0, 0, 3), (_ADD_X, 3, 1, 0, 0),
        *load(1, 3, 0),
        (_JEQ_K, 1, 0, "W_NEXT", 0),
        (_STX_DW, 6, 1, _C_WORD, 0),
        (_LSH_K, 7, 0, 0, 6),
        (_STX_DW, 6, 7, _C_BASE, 0),
        (_MOV_K, 1, 0, 0, 64),
        (_LD_IMM64, 2, _PSEUDO_FUNC, 0, "BIT"),
        (_MOV_X, 3, 6, 0, 0),
        (_MOV_K, 4, 0, 0, 0),
        (_CALL, 0, 0, 0, L["func_loop"]),
        "W_NEXT",
        (_MOV_K, 0, 0, 0, 0),
        (_EXIT, 0, 0, 0, 0),
        "W_STOP",
        (_MOV_K, 0, 0, 0, 1),
        (_EXIT, 0, 0, 0, 0),
        # -- BIT(i, ctx): the lowest set bit of the word left: fd = base + its index
        "BIT",
        (_MOV_X, 6, 2, 0, 0),
        (_LDX_DW, 1, 6, _C_WORD, 0),
        (_JEQ_K, 1, 0, "B_STOP", 0),
        (_MOV_X, 2, 1, 0, 0), (_NEG, 2, 0, 0, 0), (_AND_X, 2, 1, 0, 0),  # the lowest set bit
        (_XOR_X, 1, 2, 0, 0),
        (_STX_DW, 6, 1, _C_WORD, 0),
        (_LDX_DW, 7, 6, _C_BASE, 0),
    ]
    # its index: the number of ones in (bit - 1), counted without a branch (each branch is one more
    # path for the verifier to follow)
    code += [
        (_ADD_K, 2, 0, 0, -1),
        (_MOV_X, 3, 2, 0, 0), (_RSH_K, 3, 0, 0, 1), *_and64(3, 0x5555555555555555), (_SUB_X, 2, 3, 0, 0),
        (_MOV_X, 3, 2, 0, 0), (_RSH_K, 3, 0, 0, 2), *_and64(3, 0x3333333333333333), *_and64(2, 0x3333333333333333),
        (_ADD_X, 2, 3, 0, 0),
        (_MOV_X, 3, 2, 0, 0), (_RSH_K, 3, 0, 0, 4), (_ADD_X, 2, 3, 0, 0), *_and64(2, 0x0F0F0F0F0F0F0F0F),
        (_LD_IMM64, 3, 0, 0, 0x0101010101010101), (_MUL_X, 2, 3, 0, 0), (_RSH_K, 2, 0, 0, 56),
        (_ADD_X, 7, 2, 0, 0),
    ]
    code += [
        (_LDX_DW, 8, 6, _C_FDS, 0),
        (_MOV_X, 1, 7, 0, 0), (_LSH_K, 1, 0, 0, 3), (_ADD_X, 8, 1, 0, 0),
        *load(8, 8, 0),  # the file
        (_JEQ_K, 8, 0, "B_NEXT", 0),
        (_LDX_DW, 1, 6, _C_SELF, 0),
        (_JNE_X, 8, 1, "B_FILE", 0),
        (_LDX_DW, 2, 6, _C_MAX, 0), (_LSH_K, 2, 0, 0, 32), (_ADD_X, 2, 7, 0, 0),
        (_STX_DW, 10, 2, -16, 0),  # (fd | table size << 32, pid, SELF_FD)
        (_ST_W, 10, 0, -4, SELF_FD - (1 << 32)),
        (_JA, 0, 0, "B_WRITE", 0),
        "B_FILE",
        *load(8, 8, L["file_inode"]),
        (_JEQ_K, 8, 0, "B_NEXT", 0),
        *load(1, 8, L["inode_mode"]),
        (_AND_K, 1, 0, 0, _S_IFMT),
        (_JNE_K, 1, 0, "B_NEXT", _S_IFSOCK),
        *load(1, 8, L["inode_ino"]),
        (_STX_DW, 10, 1, -16, 0),
        (_STX_W, 10, 7, -4, 0),
        "B_WRITE",
        (_LDX_DW, 1, 6, _C_TGID, 0),
        (_STX_W, 10, 1, -8, 0),
        (_LDX_DW, 1, 6, _C_SEQ, 0),
        (_MOV_X, 2, 10, 0, 0),
        (_ADD_K, 2, 0, 0, -16),
        (_MOV_K, 3, 0, 0, RECORD.size),
        (_CALL, 0, 0, 0, L["func_seq_write"]),
        (_LDX_DW, 1, 6, _C_COUNT, 0),
        (_ADD_K, 1, 0, 0, 1),
        (_STX_DW, 6, 1, _C_COUNT, 0),
        "B_NEXT",
        (_MOV_K, 0, 0, 0, 0),
        (_EXIT, 0, 0, 0, 0),
        "B_STOP",
        (_MOV_K, 0, 0, 0, 1),
        (_EXIT, 0, 0, 0, 0),
    ]
    insns, labels = assemble(code)
    return insns, [0, labels["WORD"], labels["BIT"]]


def walk_btf() -> tuple[bytes, list[int]]:
    """The BTF the kernel wants for a program with callbacks (func_info: a type per function):
    the blob and the type id of each of :func:`walk_program`'s three functions."""
    names = ["long", "ctx", "i", "sockscope_walk", "sockscope_word", "sockscope_bit"]
    strings = b"\0" + b"".join(n.encode() + b"\0" for n in names)
    off = {n: strings.index(b"\0" + n.encode() + b"\0") + 1 for n in names}
    t = struct.Struct("<III").pack
    types = b"".join([
        t(off["long"], 1 << 24, 8) + struct.pack("<I", (1 << 24) | 64),  # 1: INT long, signed, 64 bits
        t(0, 2 << 24, 0),  # 2: PTR to void
        t(0, (13 << 24) | 1, 1) + struct.pack("<II", off["ctx"], 2),  # 3: FUNC_PROTO long (void *ctx)
        t(off["sockscope_walk"], 12 << 24, 3),  # 4: FUNC
        t(0, (13 << 24) | 2, 1) + struct.pack("<IIII", off["i"], 1, off["ctx"], 2),  # 5: long (long, void *)
        t(off["sockscope_word"], 12 << 24, 5),  # 6: FUNC
        t(off["sockscope_bit"], 12 << 24, 5),  # 7: FUNC
    ])
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings, [4, 6, 7]


__all__ = ["RECORD", "TRAILER_FD", "BIG_FD", "CAP", "program", "walk_program", "walk_btf", "assemble"]
