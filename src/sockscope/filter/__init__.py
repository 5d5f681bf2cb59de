"""The ss filter language.

:mod:`.states` — the state part (``state NAME…``, ``exclude NAME…``).
The expression part (src/dst/sport/dport…, kernel bytecode) is still to come.
"""
