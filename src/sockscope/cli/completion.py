"""``sockscope completion bash|zsh|fish``: print a shell completion script.

The scripts are generated from the parsers themselves: the listing's option
table (:mod:`sockscope.cli.options`), the subcommand registry and each
subcommand's argparse parser, so a new option completes as soon as it parses.
Install with, e.g.::

    sockscope completion bash > /etc/bash_completion.d/sockscope
    sockscope completion zsh > "${fpath[1]}/_sockscope"
    sockscope completion fish > ~/.config/fish/completions/sockscope.fish
"""

from __future__ import annotations

import sys

from sockscope.cli import COMMANDS
from sockscope.cli.options import DB_NAMES, FAMILY_NAMES, GROUPS
from sockscope.netns import NETNS_RUN_DIR as _NETNS_DIR

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import IO

    from sockscope.cli.options import Row

SHELLS = ("bash", "zsh", "fish")


class Option:
    """One option of some parser, as the completion scripts and the man page need it."""

    __slots__ = ("flags", "metavar", "help", "values")

    def __init__(self, flags: list[str], metavar: str, help: str, values: str | list[str]) -> None:
        self.flags = flags  # ["-x", "--long", …]
        self.metavar = metavar  # "" for a flag
        self.help = help
        self.values = values  # a list of words, or a kind: "family", "query", "netns", "file", "" (anything)


def flags(row: Row) -> list[str]:
    """Every spelling of an option: ``-x`` then ``--long`` names."""
    return ([f"-{row[0]}"] if row[0] else []) + [f"--{name}" for name in row[1]]


def table() -> list[Row]:
    """The listing's option table, every row in order."""
    return [row for _title, rows in GROUPS for row in rows]


def command_parser(name: str) -> argparse.ArgumentParser | None:
    """The argparse parser of subcommand ``name`` (its module's ``build_parser``
    or ``_parser``), or None if it has none."""
    module = __import__(COMMANDS[name][0], fromlist=["main"])
    make = getattr(module, "build_parser", None) or getattr(module, "_parser", None)
    return make() if make is not None else None


def command_options(name: str) -> list[Option]:
    """The options of subcommand ``name`` (``ls``: the listing's table)."""
    if name == "ls":
        # a second help line spells out the values (FAMILY := …): those are listed from the parser's own words
        return [Option(flags(row), row[2], row[5].partition("\n")[0] if row[4] in ("family", "query")
                       else row[5].replace("\n", " "), _values(row[4])) for row in table()]
    parser = command_parser(name)
    if parser is None:
        return []
    out = []
    for action in parser._actions:  # argparse has no public way to list them
        if not action.option_strings:
            continue
        takes = action.nargs != 0
        metavar = (action.metavar or action.dest.upper()) if takes else ""
        values: str | list[str] = "file" if metavar in ("FILE", "PATH", "DIR") else ""
        if action.choices:
            values = [str(c) for c in action.choices]
        text = action.help % {**vars(action), "prog": parser.prog} if action.help else ""  # argparse's %(default)s
        out.append(Option(list(action.option_strings), str(metavar), text, values))
    return out


def command_operands(name: str) -> list[str]:
    """The words subcommand ``name``'s first operand is one of (``completion``'s shells), or []."""
    parser = command_parser(name) if name != "ls" else None
    for action in parser._actions if parser is not None else ():
        if not action.option_strings:
            return [str(c) for c in action.choices] if action.choices else []
    return []


def _values(kind: str) -> str | list[str]:
    if kind == "family":
        return [*FAMILY_NAMES, "help"]
    if kind == "query":
        return list(DB_NAMES)
    return kind


def operand_words() -> tuple[list[str], list[str]]:
    """The listing's operand words: (state names, filter expression keywords)."""
    from sockscope.filter import lexer, parser, states

    keywords = [w for w, kind in lexer.KINDS.items() if w.isalpha() and kind not in parser.OPERATORS]
    return list(states.STATE_WORDS), keywords


def _subcommands() -> list[str]:
    return [name for name in COMMANDS if name != "ls"]


def _q(word: str) -> str:
    """Quote a word for a shell script (single quotes)."""
    return "'" + word.replace("'", "'\\''") + "'"


def _bash_values(values: str | list[str], indent: str) -> str:
    if isinstance(values, list):
        return f'{indent}_sockscope_words "{" ".join(values)}"; return ;;'
    if values == "file":
        return f'{indent}COMPREPLY=($(compgen -f -- "$cur")); return ;;'
    return f'{indent}_sockscope_words "$(ls {_NETNS_DIR} 2>/dev/null)"; return ;;'  # netns


def bash() -> str:
    states, words = operand_words()
    lists = " || ".join(f"$prev == {f}" for row in table() if row[4] == "query" for f in flags(row))
    lines = [
        "# bash completion for sockscope (generated by: sockscope completion bash)",
        "_sockscope_words() {  # complete $cur from the words $1 (after a comma, in a -A list)",
        '    local pre="" last=$cur',
        f'    if [[ ({lists}) && $cur == *,* ]]; then',
        '        pre=${cur%,*},; last=${cur##*,}',
        "    fi",
        '    COMPREPLY=($(compgen -P "$pre" -W "$1" -- "$last"))',
        "}",
        "_sockscope() {",
        "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd=ls",
        '    if [[ $cur == "=" ]]; then cur=""; elif [[ $prev == "=" ]]; then prev=${COMP_WORDS[COMP_CWORD-2]}; fi',
        f"    if (( COMP_CWORD > 1 )); then case ${{COMP_WORDS[1]}} in {'|'.join(_subcommands())}) "
        "cmd=${COMP_WORDS[1]} ;; esac; fi",
        "    COMPREPLY=()",
        "    case $cmd in",
    ]
    for name in COMMANDS:
        opts = command_options(name)
        lines.append(f"    {name})")
        lines.append("        case $prev in")
        for o in opts:
            if o.metavar and o.values:
                lines.append(f"            {'|'.join(o.flags)})")
                lines.append(_bash_values(o.values, "                "))
        free = [f for o in opts if o.metavar and not o.values for f in o.flags]
        if free:  # an argument with nothing to offer
            lines.append(f"            {'|'.join(free)}) return ;;")
        lines.append("        esac")
        every = " ".join(f for o in opts for f in o.flags)
        lines.append(f'        if [[ $cur == -* ]]; then _sockscope_words "{every}"; return; fi')
        choices = command_operands(name)
        if choices:
            lines.append(f'        (( COMP_CWORD == 2 )) && _sockscope_words "{" ".join(choices)}"')
        elif name == "ls":
            lines.append("        if [[ $prev == state || $prev == exclude ]]; then "
                         f'_sockscope_words "{" ".join(states)}"; return; fi')
            lines.append(f'        local more="state exclude {" ".join(words)}"')
            lines.append(f'        (( COMP_CWORD == 1 )) && more="$more {" ".join(_subcommands())}"')
            lines.append('        _sockscope_words "$more"')
        else:
            lines.append('        COMPREPLY=($(compgen -f -- "$cur"))')
        lines.append("        ;;")
    lines += ["    esac", "}", "complete -F _sockscope sockscope", ""]
    return "\n".join(lines)


def _zsh_spec(o: Option) -> list[str]:
    text = o.help.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")
    text = text.replace("'", "'\\''")
    if isinstance(o.values, list):
        action = f":{o.metavar.lower()}:({' '.join(o.values)})"
    elif o.values == "file":
        action = f":{o.metavar.lower()}:_files"
    elif o.values == "netns":
        action = f":{o.metavar.lower()}:($(ls {_NETNS_DIR} 2>/dev/null))"
    elif o.metavar:
        action = f":{o.metavar.lower()}: "
    else:
        action = ""
    out = []
    for f in o.flags:
        if o.metavar:
            f += "+" if not f.startswith("--") else "="
        out.append(f"'{f}[{text}]{action}'")
    return out


def zsh() -> str:
    states, words = operand_words()
    colon = "\\:"
    lines = [
        "#compdef sockscope",
        "# zsh completion for sockscope (generated by: sockscope completion zsh)",
        "_sockscope() {",
        "    local -a commands",
        "    commands=(",
    ]
    lines += [f"        {_q(name + ':' + summary.replace(':', colon))}" for name, (_m, summary) in COMMANDS.items()
              if name != "ls"]
    lines += ["    )", "    if (( CURRENT > 2 )); then", "        case $words[2] in"]
    for name in _subcommands():
        specs = [s for o in command_options(name) for s in _zsh_spec(o)]
        choices = command_operands(name)
        if choices:
            specs.append(f"'1:argument:({' '.join(choices)})'")
        else:
            specs.append("'*:argument:_files'")
        lines.append(f"        {name})")
        lines.append("            words=(${words[1,1]} ${words[3,-1]}); (( CURRENT-- ))")
        lines.append("            _arguments -s -S \\")
        lines += [f"                {s} \\" for s in specs[:-1]]
        lines.append(f"                {specs[-1]}")
        lines.append("            return ;;")
    specs = [s for o in command_options("ls") for s in _zsh_spec(o)]
    lines += [
        "        esac",
        "    fi",
        "    local state",
        "    _arguments -s -S \\",
        *[f"        {s} \\" for s in specs],
        "        '*::filter:->filter'",
        '    if [[ $state == filter ]]; then',
        '        if [[ $words[CURRENT-1] == (state|exclude) ]]; then',
        f"            compadd -- {' '.join(states)}",
        "        else",
        "            (( CURRENT == 1 )) && _describe -t commands command commands",
        f"            compadd -- state exclude {' '.join(words)}",
        "        fi",
        "    fi",
        "}",
        '_sockscope "$@"',
        "",
    ]
    return "\n".join(lines)


def fish() -> str:
    states, words = operand_words()
    subs = " ".join(_subcommands())
    lines = [
        "# fish completion for sockscope (generated by: sockscope completion fish)",
        "complete -c sockscope -f",
    ]
    first = "test (count (commandline -opc)) -eq 1"  # a command is the first word only
    for name, (_m, summary) in COMMANDS.items():
        if name != "ls":
            lines.append(f"complete -c sockscope -n {_q(first)} -a {name} -d {_q(summary)}")
    for name in COMMANDS:
        cond = f"not __fish_seen_subcommand_from {subs}" if name == "ls" else f"__fish_seen_subcommand_from {name}"
        for o in command_options(name):
            parts = [f"complete -c sockscope -n {_q(cond)}"]
            for f in o.flags:
                parts.append(f"-s {f[1:]}" if not f.startswith("--") else f"-l {f[2:]}")
            if o.metavar:
                parts.append("-r -F" if o.values == "file" else "-x")  # -x: an argument, not a file name
                if isinstance(o.values, list):
                    parts.append(f"-a {_q(' '.join(o.values))}")
                elif o.values == "netns":
                    parts.append(f"-a '(ls {_NETNS_DIR} 2>/dev/null)'")
            if o.help:
                parts.append(f"-d {_q(o.help)}")
            lines.append(" ".join(parts))
        choices = command_operands(name) if name != "ls" else []
        if choices:
            lines.append(f"complete -c sockscope -n {_q(f'__fish_seen_subcommand_from {name}')} "
                         f"-a {_q(' '.join(choices))}")
        elif name != "ls":
            lines.append(f"complete -c sockscope -n {_q(f'__fish_seen_subcommand_from {name}')} -F")
    lines.append(f"complete -c sockscope -n {_q(f'not __fish_seen_subcommand_from {subs}')} "
                 f"-a {_q('state exclude ' + ' '.join(words))}")
    lines.append(f"complete -c sockscope -n {_q('__fish_prev_arg_in state exclude')} -a {_q(' '.join(states))}")
    lines.append("")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from sockscope.cli._args import OneLineParser

    p = OneLineParser(
        prog="sockscope completion", description="Print a shell completion script for sockscope.",
        epilog="Install it for your shell (or, for bash, source <(sockscope completion bash)):\n\n"
               "  sockscope completion bash > /etc/bash_completion.d/sockscope\n"
               "  sockscope completion zsh > \"${fpath[1]}/_sockscope\"\n"
               "  sockscope completion fish > ~/.config/fish/completions/sockscope.fish\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    return p


def main(argv: list[str], stdout: IO[str] | None = None) -> int:
    out = stdout if stdout is not None else sys.stdout
    shell = build_parser().parse_args(argv).shell
    out.write({"bash": bash, "zsh": zsh, "fish": fish}[shell]())
    return 0


__all__ = [
    "main", "bash", "zsh", "fish", "command_options", "command_operands", "command_parser", "flags", "table", "Option",
]
