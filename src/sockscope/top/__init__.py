"""``sockscope top``: a live, full-screen view of sockets or processes.

* :mod:`.owners` — the owner map kept up to date between ticks (only new
  inodes are looked up; no rescan of every process's fds per tick);
* :mod:`.model` — samples, rates from tcp_info counters, opened/closed
  counts, per-state totals, sorting and filtering (no curses);
* :mod:`.text` — header and table lines for a width (shared by the
  snapshot and the screen);
* :mod:`.view` — the curses loop (keys, resize, terminal restored on exit).
"""
