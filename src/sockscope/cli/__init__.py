"""Command-line entry point: a small registry of subcommands, loaded lazily.

``sockscope [ss options] [state …] [filter]`` is the ss-compatible listing
(:mod:`sockscope.cli.ls`); a first argument naming a subcommand runs that one
instead.  Each subcommand module exposes ``main(argv: list[str]) -> int`` and
may raise :class:`~sockscope.errors.SockscopeError`; this module turns errors
into one line on stderr and an exit status, in one place.
"""

from __future__ import annotations

import io
import sys

#: name -> (module, one-line summary).  Only the chosen module is imported.
COMMANDS: dict[str, tuple[str, str]] = {
    "ls": ("sockscope.cli.ls", "list sockets, like ss (the default)"),
    "serve": ("sockscope.cli.serve", "run the greeting/echo server"),
    "connect": ("sockscope.cli.connect", "connect to a server, print what it sends; tcping"),
    "who": ("sockscope.cli.who", "explain who uses a port, socket file or process's sockets"),
    "top": ("sockscope.cli.top", "live full-screen view of sockets"),
    "exporter": ("sockscope.cli.exporter", "serve Prometheus metrics"),
    "completion": ("sockscope.cli.completion", "print a shell completion script: completion bash|zsh|fish"),
}


#: A listing process's first allocation, freed at once (:func:`entry`).  glibc's malloc maps a block
#: this large with ``mmap``; freeing it raises the process's mmap threshold to its size and its trim
#: threshold to twice that (glibc's dynamic thresholds, mallopt(3)).  From then on the listing's
#: big buffers (datagrams joined, texts, lists of a batch) come from the heap and are used again once
#: freed, instead of being mapped and unmapped, and the heap is not given back to the kernel
#: (``brk``) between batches to be faulted in again: a page first touched costs a few µs here, and
#: a listing's page faults are ~11-16 % of its CPU time (bench/README.md, session 43).  The block
#: itself costs two system calls: untouched, it is never faulted in.  Other allocators ignore it.
#: Only sockscope's own listing process does this (the library leaves its caller's malloc alone).
MALLOC_HINT = 8 << 20

#: Set by :func:`entry` alone: this process is sockscope's own, so a listing may restore SIGPIPE's
#: default (die quietly when the reader leaves, as ss).  A caller of :func:`main` in its own process
#: (a test, a tool) keeps its signal dispositions.
OWN_PROCESS = False

#: the modules every listing imports, each after those it imports (see :func:`_preload`)
LISTING_MODULES = (
    "sockscope.errors", "sockscope._addr", "sockscope.filter", "sockscope.filter.states", "sockscope.cli.options",
    "sockscope.cli.ls", "sockscope.query", "sockscope.render", "sockscope.render.width", "sockscope.render.table",
    "sockscope.render.writer", "sockscope.kernel", "sockscope.kernel.layout", "sockscope.kernel.netlink",
    "sockscope.kernel.transport",
)


def _preload(names: tuple[str, ...]) -> None:
    """Load the modules ``names`` (each after those it imports) from their ``.pyc`` files directly.

    The import system spends ~300k instructions on each module before its code runs (finders,
    locks, the spec and its loader's checks, all Python code): for a listing's 14 modules,
    about 9 % of a whole small listing, two thirds of which this saves.  Here each one costs a
    ``stat``, a read and the check the import system makes of a timestamped ``.pyc`` (magic
    number, source mtime and size): a file that fails it, or any other case (hash-based or
    optimized ``.pyc``, a ``PYTHONPYCACHEPREFIX``, no file), ends the preloading, and the import
    system loads the rest as usual (it writes or mends the ``.pyc``).  The modules get what the
    import system gives them (spec, loader, file, cached, path, parent attribute)."""
    if sys.flags.optimize or sys.pycache_prefix is not None:
        return
    import marshal
    import _imp
    from _frozen_importlib import ModuleSpec
    from _frozen_importlib_external import MAGIC_NUMBER, SourceFileLoader
    from os import stat

    modules = sys.modules
    root = __file__.rpartition("/cli/")[0]  # the sockscope package's directory
    tail = f".{sys.implementation.cache_tag}.pyc"
    fix_filename = getattr(_imp, "_fix_co_filename")  # noqa: B009 - typeshed lacks it; the import system uses it
    for name in names:
        if name in modules:
            continue
        parent, _, attr = name.rpartition(".")
        folder = root + parent[len("sockscope"):].replace(".", "/")
        try:
            st = stat(f"{folder}/{attr}/__init__.py")
            folder, base, is_package = f"{folder}/{attr}", "__init__", True
        except OSError:
            base, is_package = attr, False
        source, cached = f"{folder}/{base}.py", f"{folder}/__pycache__/{base}{tail}"
        try:
            if not is_package:
                st = stat(source)
            with open(cached, "rb") as f:
                data = f.read()
        except OSError:
            return
        stamp = (int(st.st_mtime) & 0xFFFFFFFF) | (st.st_size & 0xFFFFFFFF) << 32  # as the .pyc records them
        if data[:4] != MAGIC_NUMBER or data[4:8] != bytes(4) or data[8:16] != stamp.to_bytes(8, "little"):
            return  # (flags 0: a .pyc checked by timestamp)
        try:
            code = marshal.loads(memoryview(data)[16:])
        except (ValueError, EOFError, TypeError):
            return
        fix_filename(code, source)
        loader = SourceFileLoader(name, source)
        spec = ModuleSpec(name, loader, origin=source, is_package=is_package)
        spec.has_location, spec.cached = True, cached
        module = type(sys)(name)
        module.__dict__.update(__spec__=spec, __loader__=loader, __file__=source, __cached__=cached,
                               __package__=name if is_package else parent)
        if is_package:
            module.__path__ = spec.submodule_search_locations = [folder]
        modules[name] = module
        try:
            exec(code, module.__dict__)
        except BaseException:
            del modules[name]
            raise
        setattr(modules[parent], attr, module)


def main(argv: list[str] | None = None) -> int:
    """Run sockscope with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    if argv is None:
        argv = sys.argv[1:]
    name = "ls"
    if argv and argv[0] in COMMANDS:
        name, argv = argv[0], argv[1:]
    if sys.stdout is None:  # started with fd 1 closed: writing to it fails, and says so in one line
        sys.stdout = _Closed()
    if sys.stderr is None:  # started with fd 2 closed: messages go nowhere (print's None is stdout)
        import os

        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process's life
    _unencodable_escaped()
    if name == "ls":
        _preload(LISTING_MODULES)
    module = __import__(COMMANDS[name][0], fromlist=["main"])  # not importlib: start-up time
    from sockscope.errors import SockscopeError

    try:
        status: int = module.main(argv)
    except SockscopeError as exc:
        _flush_quietly()
        print(f"sockscope: {exc}", file=sys.stderr)
        caret = getattr(exc, "caret", None)
        if caret:
            print(caret, file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        _flush_quietly()
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except OSError as exc:  # writing the output (a full disk, say), or any system call not caught below
        return _os_error(exc)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    except OSError as exc:
        return _os_error(exc)
    return status


class _Closed(io.TextIOBase):
    """Standard output when the process started without one."""

    def write(self, text: str) -> int:
        import errno

        raise OSError(errno.EBADF, "standard output is closed")


def _escape(exc: UnicodeError) -> tuple[str | bytes, int]:
    """The codec error handler of our output streams.  Text from the kernel
    and /proc (UNIX paths, process names) keeps bytes that are not UTF-8 as
    surrogates (``surrogateescape``): to a UTF-8 stream they go out as the
    original bytes, as ss writes them; what a stream cannot carry
    (``PYTHONIOENCODING=ascii``) is written as ``\\xNN``, byte by byte of its UTF-8."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text = exc.object[exc.start:exc.end]
    data = b"".join(bytes((ord(c) - 0xDC00,)) if 0xDC80 <= ord(c) <= 0xDCFF else c.encode("utf-8", "surrogatepass")
                    for c in text)
    if exc.encoding.lower().replace("-", "").replace("_", "") == "utf8" and all(
            0xDC80 <= ord(c) <= 0xDCFF for c in text):
        return data, exc.end
    return "".join(f"\\x{byte:02x}" for byte in data), exc.end


def _unencodable_escaped() -> None:
    """Make stdout and stderr write what their encoding cannot carry with :func:`_escape`, never fail."""
    import codecs  # already loaded by the interpreter's own start-up

    codecs.register_error("sockscope", _escape)
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # not on a StringIO a caller swapped in
        if reconfigure is not None:
            try:
                reconfigure(errors="sockscope")
            except (ValueError, OSError):  # closed: whatever writes to it reports that
                pass


def _os_error(exc: OSError) -> int:
    """One line on stderr for an unexpected system error; exit status 1."""
    _silence_stdout()
    what = f"{exc.filename}: " if exc.filename else ""
    print(f"sockscope: {what}{exc.strerror or exc}", file=sys.stderr)
    return 1


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        _silence_stdout()


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's exit flush is quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except OSError:
        pass


def entry() -> None:
    """Console-script entry point (and ``python -m sockscope``'s).

    The listing ends with ``os._exit`` once its output is flushed: the
    interpreter's own tear-down (freeing every module and object one by one)
    costs a few milliseconds, more than some whole listings.  The other
    subcommands (servers, curses) exit normally."""
    global OWN_PROCESS
    OWN_PROCESS = True
    argv = sys.argv[1:]
    listing = not (argv and argv[0] in COMMANDS and argv[0] != "ls")
    if listing:
        import gc

        gc.disable()  # a listing makes no reference cycles to collect; the collector's passes cost ~1/10 of it
        bytes(MALLOC_HINT)  # (made and freed at once: see MALLOC_HINT)
    status = main(argv)
    if listing:
        import os

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BrokenPipeError:
                pass  # the reader left: quiet, like ss
            except OSError as exc:  # a full disk, say: never a silent success
                os.write(2, f"sockscope: write error: {exc.strerror or exc}\n".encode())
                status = status or 1
        os._exit(status)
    sys.exit(status)
