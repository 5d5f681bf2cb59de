"""``--web.config.file``: the exporter-toolkit web configuration (TLS, basic auth, headers).

The file is the YAML that node_exporter and the other Prometheus exporters
read (prometheus/exporter-toolkit ``docs/web-configuration.md``)::

    tls_server_config:
      cert_file: server.crt          # or cert: <PEM text>
      key_file: server.key           # or key: <PEM text>
      client_auth_type: RequireAndVerifyClientCert   # default NoClientCert
      client_ca_file: clients-ca.crt # or client_ca: <PEM text>
      client_allowed_sans: [scraper.example]
      min_version: TLS12             # default TLS12; max_version default TLS13
      prefer_server_cipher_suites: true
    http_server_config:
      headers: {X-Content-Type-Options: nosniff}
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hashes

What Python's ``ssl`` cannot do is refused with a one-line error rather than
ignored: ``client_auth_type: RequireAnyClientCert`` (a certificate demanded
but not verified), ``cipher_suites`` and ``curve_preferences`` (Go's names),
``rate_limit``.  ``RequestClientCert`` asks for nothing (the certificate would
go unchecked and unused, so this is the same access), and ``http2`` is
accepted and ignored: the server speaks HTTP/1.1, which Prometheus uses.
As in exporter-toolkit, changes are picked up while serving (a renewed
certificate, say): :func:`changed` tells when a file read has changed since,
and the server loads the config again for the next connections (keeping the
old one, with a line on stderr, if the new one is bad).  That load runs on
the server's event loop, so every file read (the config, ``cert_file``,
``key_file``, ``client_ca_file``) is opened without blocking and must be a
regular file of bounded size (:func:`_opened`): a FIFO or a device put in
place of one would hang or flood the server.  YAML is parsed by PyYAML
(``safe_load``) and passwords are checked by ``bcrypt``: both come with the
``[exporter]`` extra and are imported only when a web config is given.
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from sockscope.errors import SockscopeError

#: bigger is not a web config (and would be read into memory)
MAX_FILE_SIZE = 1 << 20
#: bigger is not a PEM certificate, key or CA bundle (Mozilla's whole bundle is ~0.2 MiB), and OpenSSL
#: would read it all into memory, on the server's event loop when reloading
MAX_PEM_SIZE = 4 << 20
_TLS_KEYS = {"cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
             "client_allowed_sans", "min_version", "max_version", "cipher_suites", "prefer_server_cipher_suites",
             "curve_preferences"}
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
             "TLS13": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_NONE,
                "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL, "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
_HEADERS = {"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "X-XSS-Protection",
            "Strict-Transport-Security"}
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


class WebConfigError(SockscopeError):
    """A web config file that cannot be used (one line: the file, then the problem)."""


@dataclass(frozen=True, slots=True)
class WebConfig:
    """What a web config asks for: a server TLS context, basic auth, extra response headers."""

    tls: ssl.SSLContext | None = None
    auth: BasicAuth | None = None
    headers: tuple[tuple[str, str], ...] = ()
    allowed_sans: frozenset[str] = field(default_factory=frozenset)
    #: (path, inode, mtime_ns, size) of every file read, taken before reading it: see :func:`changed`
    stamps: tuple[tuple[str, int, int, int], ...] = ()

    def peer_allowed(self, peercert: Any) -> bool:
        """Whether a verified client certificate passes ``client_allowed_sans`` (True when unset)."""
        if not self.allowed_sans:
            return True
        sans = {str(v) for _, v in (peercert or {}).get("subjectAltName", ())}
        return bool(sans & self.allowed_sans)


class BasicAuth:
    """HTTP basic auth against bcrypt hashes; successful checks are cached (bcrypt costs ~50-250 ms)."""

    _DUMMY = b"$2b$10$" + b"C" * 53  # checked for unknown users, so that they take as long as known ones

    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = users
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _credentials(header: str | None) -> tuple[str, bytes] | None:
        if not header:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(token.strip(), validate=True).partition(b":")
            return (user.decode("utf-8"), password) if sep else None
        except (ValueError, UnicodeDecodeError):
            return None

    def _key(self, user: str, password: bytes) -> bytes:
        return hashlib.sha256(user.encode() + b"\0" + password + b"\0" + self.users.get(user, b"")).digest()

    def quick(self, header: str | None) -> bool | None:
        """True or False when decided without bcrypt (cached, or no credentials); None: call :meth:`verify`."""
        cred = self._credentials(header)
        if cred is None:
            return False
        with self._lock:
            return True if self._key(*cred) in self._ok else None

    def verify(self, header: str | None) -> bool:
        """The full check (bcrypt): slow, so the server runs it off the event loop."""
        import bcrypt

        cred = self._credentials(header)
        if cred is None:
            return False
        user, password = cred
        hashed = self.users.get(user)
        try:
            ok = bcrypt.checkpw(password, hashed or self._DUMMY) and hashed is not None
        except ValueError:
            ok = False
        if ok:
            with self._lock:
                self._ok.add(self._key(user, password))
        return ok


def _stamp(path: str) -> tuple[str, int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1, -1)
    return (path, st.st_ino, st.st_mtime_ns, st.st_size)


def changed(cfg: WebConfig) -> bool:
    """Whether a file ``cfg`` was read from has changed (or gone) since: then :func:`load` it again."""
    return any(_stamp(st[0]) != st for st in cfg.stamps)


@contextmanager
def _opened(path: str, what: str, limit: int) -> Iterator[int]:
    """``path`` opened for reading, checked to be a regular file of at most ``limit`` bytes: its
    descriptor, closed after the block; else :class:`WebConfigError` ``WHAT: problem``.

    Opened without blocking (a FIFO would block the open, a device the reads, and the server loads
    the files again from its event loop), and checked once opened, so that what is read is what was
    checked, even when the path is swapped meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise WebConfigError(f"{what}: {exc.strerror}") from exc
    try:
        try:
            st = os.fstat(fd)
        except OSError as exc:
            raise WebConfigError(f"{what}: {exc.strerror}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise WebConfigError(f"{what}: not a regular file")
        if st.st_size > limit:
            raise WebConfigError(f"{what}: larger than {limit} bytes")
        yield fd
    finally:
        os.close(fd)


def _fd_path(fd: int, path: str) -> str:
    """A name that opens the very file open at ``fd``, for OpenSSL, which takes names only (nothing
    can be swapped in after :func:`_opened` checked it); ``path`` when /proc is not mounted."""
    name = f"/proc/self/fd/{fd}"
    return name if os.path.exists(name) else path


def load(path: str) -> WebConfig:
    """Read and check a web config file; :class:`WebConfigError` says what is wrong."""
    where = repr(path)
    stamp = _stamp(path)
    with _opened(path, f"web config {where}", MAX_FILE_SIZE) as fd:
        raw = b""
        try:
            while len(raw) <= MAX_FILE_SIZE:  # (bounded also when the file grows meanwhile)
                chunk = os.read(fd, MAX_FILE_SIZE + 1 - len(raw))
                if not chunk:
                    break
                raw += chunk
        except OSError as exc:
            raise WebConfigError(f"web config {where}: {exc.strerror}") from exc
    if len(raw) > MAX_FILE_SIZE:
        raise WebConfigError(f"web config {where}: larger than {MAX_FILE_SIZE} bytes")
    try:
        import yaml
    except ImportError:
        raise WebConfigError("--web.config.file needs PyYAML and bcrypt: install the [exporter] extra "
                             "(pip install '.[exporter]' in the sockscope checkout)") from None
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise WebConfigError(f"web config {where}: not YAML{at}: {problem}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise WebConfigError(f"web config {where}: nested too deeply") from None
    try:
        cfg = _build(doc if doc is not None else {}, os.path.dirname(os.path.abspath(path)))
    except WebConfigError as exc:
        raise WebConfigError(f"web config {where}: {exc}") from None
    return replace(cfg, stamps=(stamp, *cfg.stamps))


def _mapping(value: Any, what: str, allowed: set[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WebConfigError(f"{what} must be a mapping")
    for key in value:
        if not isinstance(key, str) or (allowed is not None and key not in allowed):
            raise WebConfigError(f"unknown field {key!r} in {what}")
    return value


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise WebConfigError(f"{what} must be a string")
    return value


def _build(doc: Any, base: str) -> WebConfig:
    top = _mapping(doc, "the file", {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"})
    if "rate_limit" in top:
        raise WebConfigError("rate_limit is not supported")
    tls: ssl.SSLContext | None = None
    sans: frozenset[str] = frozenset()
    stamps: list[tuple[str, int, int, int]] = []
    if top.get("tls_server_config") is not None:
        tls, sans, stamps = _tls(_mapping(top["tls_server_config"], "tls_server_config", _TLS_KEYS), base)
    headers: list[tuple[str, str]] = []
    http = top.get("http_server_config")
    if http is not None:
        http = _mapping(http, "http_server_config", {"http2", "headers"})
        if not isinstance(http.get("http2", True), bool):
            raise WebConfigError("http_server_config.http2 must be true or false")
        for name, value in _mapping(http.get("headers") or {}, "http_server_config.headers", _HEADERS).items():
            text = _string(value, f"header {name}")
            if any(c in text for c in "\r\n\0"):
                raise WebConfigError(f"header {name} holds a line break")
            if text:
                headers.append((name, text))
    auth = None
    users = top.get("basic_auth_users")
    if users:
        hashes: dict[str, bytes] = {}
        for user, hashed in _mapping(users, "basic_auth_users").items():
            h = _string(hashed, f"the hash of user {user!r}")
            if not h.startswith(_BCRYPT_PREFIXES) or len(h) != 60:
                raise WebConfigError(f"the password of user {user!r} is not a bcrypt hash ($2y$10$..., 60 chars)")
            hashes[user] = h.encode("ascii", "replace")
        auth = BasicAuth(hashes)
    return WebConfig(tls, auth, tuple(headers), sans, tuple(stamps))


def _pem(cfg: dict[str, Any], inline: str, file_key: str, base: str) -> tuple[str | None, str | None]:
    """(path, inline PEM text) of one certificate or key; at most one of them."""
    text, path = cfg.get(inline), cfg.get(file_key)
    if text and path:
        raise WebConfigError(f"tls_server_config: give {inline} or {file_key}, not both")
    if path:
        return os.path.join(base, _string(path, file_key)), None
    return None, _string(text, inline) if text else None


def _tls(cfg: dict[str, Any], base: str) -> tuple[ssl.SSLContext, frozenset[str], list[tuple[str, int, int, int]]]:
    cert_file, cert = _pem(cfg, "cert", "cert_file", base)
    key_file, key = _pem(cfg, "key", "key_file", base)
    if not (cert_file or cert):
        raise WebConfigError("tls_server_config: missing cert_file")
    if not (key_file or key):
        raise WebConfigError("tls_server_config: missing key_file")
    for unsupported in ("cipher_suites", "curve_preferences"):
        if cfg.get(unsupported):
            raise WebConfigError(f"tls_server_config.{unsupported} is not supported (Go's names; "
                                 "Python's ssl chooses OpenSSL's defaults)")
    kind = _string(cfg.get("client_auth_type") or "NoClientCert", "client_auth_type")
    if kind == "RequireAnyClientCert":
        raise WebConfigError("client_auth_type RequireAnyClientCert is not supported (Python's ssl verifies every "
                             "certificate it requires): use RequireAndVerifyClientCert with client_ca_file")
    if kind not in _CLIENT_AUTH:
        raise WebConfigError(f"client_auth_type {kind!r} is not one of {', '.join(_CLIENT_AUTH)}")
    ca_file, ca = _pem(cfg, "client_ca", "client_ca_file", base)
    if (ca_file or ca) and _CLIENT_AUTH[kind] == ssl.CERT_NONE:
        raise WebConfigError(f"client CA configured, but client_auth_type is {kind}")
    if _CLIENT_AUTH[kind] != ssl.CERT_NONE and not (ca_file or ca):
        raise WebConfigError(f"client_auth_type {kind} needs client_ca_file")
    sans = cfg.get("client_allowed_sans") or []
    if not isinstance(sans, list) or not all(isinstance(s, str) for s in sans):
        raise WebConfigError("client_allowed_sans must be a list of strings")
    if sans and kind != "RequireAndVerifyClientCert":
        raise WebConfigError("client_allowed_sans needs client_auth_type RequireAndVerifyClientCert")
    stamps = [_stamp(p) for p in (cert_file, key_file, ca_file) if p]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    lo, hi = (_version(cfg, k, d) for k, d in (("min_version", "TLS12"), ("max_version", "TLS13")))
    if lo > hi:
        raise WebConfigError("min_version is above max_version")
    try:
        ctx.minimum_version, ctx.maximum_version = lo, hi
    except (ValueError, ssl.SSLError) as exc:
        raise WebConfigError(f"this OpenSSL cannot set TLS versions {lo.name}..{hi.name}: {exc}") from None
    if cfg.get("prefer_server_cipher_suites", True):
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    with ExitStack() as files:
        # each file opened and checked here; OpenSSL reads the same files through their descriptors
        names: list[str | None] = []
        for field_name, path in (("cert_file", cert_file), ("key_file", key_file), ("client_ca_file", ca_file)):
            if path is None:
                names.append(None)
            else:
                fd = files.enter_context(_opened(path, f"{field_name} {path}", MAX_PEM_SIZE))
                names.append(_fd_path(fd, path))
        cf, kf, caf = names
        _load_chain(ctx, (cf, cert_file), cert, (kf, key_file), key)
        if _CLIENT_AUTH[kind] != ssl.CERT_NONE:
            try:
                ctx.load_verify_locations(cafile=caf, cadata=ca)
            except (OSError, ssl.SSLError) as exc:
                raise WebConfigError(f"client CA {ca_file or 'client_ca'}: {_ssl_text(exc)}") from None
            ctx.verify_mode = _CLIENT_AUTH[kind]
    return ctx, frozenset(sans), stamps


def _version(cfg: dict[str, Any], key: str, default: str) -> ssl.TLSVersion:
    name = _string(cfg.get(key) or default, key)
    if name not in _VERSIONS:
        raise WebConfigError(f"{key} {name!r} is not one of {', '.join(_VERSIONS)}")
    return _VERSIONS[name]


def _load_chain(ctx: ssl.SSLContext, cert_file: tuple[str | None, str | None], cert: str | None,
                key_file: tuple[str | None, str | None], key: str | None) -> None:
    """``load_cert_chain`` takes file names only: inline PEM goes through a private temp file.  A file
    is (the name OpenSSL opens, the name the config gives)."""
    tmp: list[str] = []
    try:
        for text in (cert, key):
            if text is not None:
                fd, name = tempfile.mkstemp(prefix="sockscope-web-")  # mode 0600
                tmp.append(name)
                with os.fdopen(fd, "w") as f:
                    f.write(text)
        it = iter(tmp)
        cf = cert_file[0] or next(it)
        kf = key_file[0] or next(it)
        try:
            ctx.load_cert_chain(cf, kf)
        except (OSError, ssl.SSLError) as exc:
            what = f"{cert_file[1] or 'cert'} / {key_file[1] or 'key'}"
            raise WebConfigError(f"certificate and key {what}: {_ssl_text(exc)}") from None
    finally:
        for name in tmp:
            os.unlink(name)


def _ssl_text(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


__all__ = ["BasicAuth", "MAX_FILE_SIZE", "MAX_PEM_SIZE", "WebConfig", "WebConfigError", "changed", "load"]
