"""GNU ``getopt_long`` as ss uses it, without the stdlib ``getopt`` (whose
gettext/re imports cost more start-up time than the whole listing).

Options and operands may be mixed; ``--`` ends the options; short options
bundle (``-tulpn``) and take their argument attached or as the next word
(``-Atcp``, ``-A tcp``); long options take ``=value`` or the next word and
may be abbreviated to a unique prefix.
"""

from __future__ import annotations

from sockscope.errors import UsageError


def parse(argv: list[str], short: str, long: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Return ``([(option, value)], operands)``; option is the letter or the long name."""
    takes_arg = {c: short[i + 1 : i + 2] == ":" for i, c in enumerate(short) if c != ":"}
    long_args = {name.rstrip("="): name.endswith("=") for name in long}
    opts: list[tuple[str, str]] = []
    operands: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            operands.extend(argv[i:])
            break
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            if name in long_args:
                full = name
            else:
                matches = [n for n in long_args if n.startswith(name)]
                if not matches:
                    raise UsageError(f"unrecognized option '--{name}'")
                if len(matches) > 1:
                    raise UsageError(f"option '--{name}' is ambiguous; possibilities: "
                                     + " ".join("'--" + m + "'" for m in sorted(matches)))
                full = matches[0]
            if long_args[full]:
                if not eq:
                    if i >= len(argv):
                        raise UsageError(f"option '--{full}' requires an argument")
                    value = argv[i]
                    i += 1
            elif eq:
                raise UsageError(f"option '--{full}' doesn't allow an argument")
            opts.append((full, value))
        elif a.startswith("-") and a != "-":
            j = 1
            while j < len(a):
                c = a[j]
                j += 1
                if c not in takes_arg:
                    raise UsageError(f"invalid option -- '{c}'")
                if takes_arg[c]:
                    if j < len(a):
                        value = a[j:]
                    elif i < len(argv):
                        value = argv[i]
                        i += 1
                    else:
                        raise UsageError(f"option requires an argument -- '{c}'")
                    opts.append((c, value))
                    break
                opts.append((c, ""))
        else:
            operands.append(a)
    return opts, operands
