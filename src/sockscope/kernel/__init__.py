"""The kernel side: a sans-IO netlink sock_diag codec plus one thin transport.

* :mod:`.netlink` — netlink framing: headers, multi-part dumps, DONE/ERROR, attributes.
* :mod:`.inet` — ``inet_diag_req_v2`` encoder, ``inet_diag_msg`` decoder.
* :mod:`.unix` — ``unix_diag_req`` encoder, ``unix_diag_msg`` decoder.
* :mod:`.transport` — the only module that opens a socket.

The codec modules import no socket: bytes in, records out.
"""
