"""A reader of the kernel's BTF (``/sys/kernel/btf/vmlinux``): bytes in, facts out.

Only what :mod:`sockscope.kernel.bpf` needs to build its task_file iterator
against the running kernel: the type id of a function (``bpf_iter_task_file``,
the iterator's attach point), the names of its parameters (the iterator's
context is one 8-byte slot per parameter), the byte offset of a struct member
(looking into anonymous struct and union members, as C does), and the value
of an enumerator.  No I/O here: the caller reads the file.

The format (include/uapi/linux/btf.h): a header, then the type section (each
type a 12-byte ``btf_type`` plus a kind-dependent tail; ids count from 1 in
order), then NUL-terminated names.  Walking every type is the expensive part
(~125k types, ~45 ms here): callers cache what they learn (see ``bpf``).
"""

from __future__ import annotations

import struct

from sockscope.errors import DecodeError

_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
_TYPE = struct.Struct("<III")  # name_off, info, size|type
_U32 = struct.Struct("<I")
MAGIC = 0xEB9F

# kinds (BTF_KIND_*)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
FUNC, FUNC_PROTO, VAR, DATASEC, DECL_TAG, ENUM64 = 12, 13, 14, 15, 17, 19
# bytes after the btf_type: a fixed part and a part per vlen item, by kind
_FIXED = {INT: 4, ARRAY: 12, VAR: 4, DECL_TAG: 4}
_PER_ITEM = {STRUCT: 12, UNION: 12, ENUM: 8, FUNC_PROTO: 8, DATASEC: 12, ENUM64: 12}
_MAX_KIND = 31


class BTF:
    """The types of one BTF blob, indexed by id (walked once, on creation)."""

    __slots__ = ("_data", "_strings", "_str_end", "_offsets")

    def __init__(self, data: bytes) -> None:
        if len(data) < _HEADER.size:
            raise DecodeError("BTF: shorter than its header")
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError(f"BTF: bad magic {magic:#x}")
        start, end = hdr_len + type_off, hdr_len + type_off + type_len
        self._strings = hdr_len + str_off
        self._str_end = self._strings + str_len
        if hdr_len < _HEADER.size or end > len(data) or self._str_end > len(data):
            raise DecodeError("BTF: sections beyond the data")
        self._data = data
        fixed = [_FIXED.get(k, 0) + 12 for k in range(_MAX_KIND + 1)]
        per = [_PER_ITEM.get(k, 0) for k in range(_MAX_KIND + 1)]
        unpack = _U32.unpack_from
        offsets = [0]  # id 0 is void
        append = offsets.append
        off = start
        try:
            while off < end:
                append(off)
                (info,) = unpack(data, off + 4)
                kind = (info >> 24) & _MAX_KIND
                off += fixed[kind] + per[kind] * (info & 0xFFFF)
        except struct.error:
            raise DecodeError("BTF: a type runs past the data") from None
        if off != end:
            raise DecodeError("BTF: the last type runs past the type section")
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def name(self, name_off: int) -> str:
        """The NUL-terminated name at ``name_off`` of the string section."""
        start = self._strings + name_off
        if not self._strings <= start < self._str_end:
            raise DecodeError(f"BTF: name offset {name_off} outside the strings")
        stop = self._data.find(b"\0", start, self._str_end)
        return self._data[start : stop if stop >= 0 else self._str_end].decode("ascii", "replace")

    def _type(self, type_id: int) -> tuple[int, int, int, int, int]:
        """(byte offset, name_off, kind, vlen, size_or_type) of ``type_id``."""
        if not 0 < type_id < len(self._offsets):
            raise DecodeError(f"BTF: no type {type_id}")
        off = self._offsets[type_id]
        name_off, info, size = _TYPE.unpack_from(self._data, off)
        return off, name_off, (info >> 24) & _MAX_KIND, info & 0xFFFF, size

    def find(self, name: str, kind: int) -> int:
        """The id of the first type of ``kind`` called ``name``."""
        wanted = name.encode()
        key = b"\0" + wanted + b"\0"
        # the candidates' name offsets: every place the name occurs in the strings
        name_offs = set()
        pos = self._data.find(key, self._strings - 1, self._str_end)
        while pos >= 0:
            name_offs.add(pos + 1 - self._strings)
            pos = self._data.find(key, pos + 1, self._str_end)
        if self._data[self._strings : self._strings + len(wanted) + 1] == wanted + b"\0":
            name_offs.add(0)
        if name_offs:
            data = self._data
            unpack = _TYPE.unpack_from
            for type_id in range(1, len(self._offsets)):
                name_off, info, _ = unpack(data, self._offsets[type_id])
                if name_off in name_offs and (info >> 24) & _MAX_KIND == kind:
                    return type_id
        raise DecodeError(f"BTF: no {_KIND_NAMES.get(kind, kind)} {name}")

    def params(self, func_id: int) -> list[str]:
        """The parameter names of function ``func_id`` (a FUNC), in order."""
        _, _, kind, _, proto = self._type(func_id)
        if kind != FUNC:
            raise DecodeError(f"BTF: type {func_id} is not a function")
        off, _, kind, vlen, _ = self._type(proto)
        if kind != FUNC_PROTO:
            raise DecodeError(f"BTF: function {func_id} has no prototype")
        return [self.name(_U32.unpack_from(self._data, off + 12 + 8 * i)[0]) for i in range(vlen)]

    def _resolve(self, type_id: int) -> int:
        """``type_id`` with typedefs and qualifiers (volatile, const, restrict, type tags) taken off."""
        for _ in range(64):
            _, _, kind, _, nxt = self._type(type_id)
            if kind not in (TYPEDEF, 9, 10, 11, 18):
                return type_id
            type_id = nxt
        raise DecodeError("BTF: a loop of typedefs")

    def member_offset(self, struct_name: str, member: str) -> int:
        """The byte offset of ``member`` in ``struct struct_name`` (found in
        anonymous members too); DecodeError when absent or a bitfield."""
        found = self._member(self.find(struct_name, STRUCT), member, 0)
        if found is None:
            raise DecodeError(f"BTF: struct {struct_name} has no member {member}")
        return found

    def _member(self, type_id: int, member: str, depth: int) -> int | None:
        off, _, kind, vlen, _ = self._type(type_id)
        if kind not in (STRUCT, UNION) or depth > 8:
            return None
        kind_flag = _TYPE.unpack_from(self._data, off)[1] >> 31
        anonymous = []
        for i in range(vlen):
            name_off, mtype, bits = _TYPE.unpack_from(self._data, off + 12 + 12 * i)
            bit_offset = bits & 0xFFFFFF if kind_flag else bits
            if name_off == 0:
                anonymous.append((mtype, bit_offset))
            elif self.name(name_off) == member:
                if bit_offset % 8 or (kind_flag and bits >> 24):
                    raise DecodeError(f"BTF: member {member} is a bitfield")
                return int(bit_offset) // 8
        for mtype, bit_offset in anonymous:
            inner = self._member(self._resolve(mtype), member, depth + 1)
            if inner is not None:
                return int(bit_offset) // 8 + inner
        return None

    def enum_value(self, enum_name: str, enumerator: str) -> int:
        """The value of ``enumerator`` in ``enum enum_name``."""
        type_id = self.find(enum_name, ENUM)
        off, _, _, vlen, _ = self._type(type_id)
        for i in range(vlen):
            name_off, value = struct.unpack_from("<Ii", self._data, off + 12 + 8 * i)
            if self.name(name_off) == enumerator:
                return int(value)
        raise DecodeError(f"BTF: enum {enum_name} has no {enumerator}")


_KIND_NAMES = {STRUCT: "struct", UNION: "union", ENUM: "enum", FUNC: "function", TYPEDEF: "typedef"}

__all__ = ["BTF", "STRUCT", "UNION", "ENUM", "FUNC"]
