"""The CLI reference, generated from --help: `python -m monitorctl.docs > docs/cli.md`.

tests/integration/test_cli_docs.py fails when docs/cli.md is out of date, when a command has no help
text or example, or when an option's environment variable is not shown.
"""

from __future__ import annotations

import typer.main

WIDTH = 100

HEADER = """# monitorctl command reference

Generated from `monitorctl --help` by `python -m monitorctl.docs > docs/cli.md`; do not edit by hand
(a test fails when this file and the CLI disagree). Data goes to stdout, progress and messages to
stderr; exit 0 on success, 2 on a usage error (the valid values are named), 3 when the database cannot
be reached or monitor is not installed (the line names `monitorctl install`), 1 for any other failure.
How to use these commands day to day is in [operations.md](operations.md).

Every command finds its database the same way: `--dsn`, else `MONITOR_DSN`, else `DATABASE_URL`, else
libpq's `PG*` variables. A URL (`postgresql://…`) and a keyword string (`host=… dbname=…`) both work.
"""


def commands(group=None, ctx=None, path=("monitorctl",)):
    """Yield (path, command, context) for the root and every command and sub-command, in CLI order."""
    if group is None:
        from .cli import app

        group = typer.main.get_command(app)
        ctx = group.context_class(group, info_name="monitorctl", **group.context_settings,
                                  terminal_width=WIDTH, max_content_width=WIDTH)
        yield path, group, ctx
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = cmd.context_class(cmd, info_name=name, parent=ctx, terminal_width=WIDTH, max_content_width=WIDTH)
        yield path + (name,), cmd, sub
        if hasattr(cmd, "list_commands"):
            yield from commands(cmd, sub, path + (name,))


def render() -> str:
    parts = [HEADER, "## Commands\n"]
    entries = list(commands())
    for path, cmd, _ctx in entries[1:]:
        anchor = "-".join(path).replace("_", "-")
        summary = (cmd.get_short_help_str(limit=300) or "").rstrip(".")
        parts.append(f"- [`{' '.join(path)}`](#{anchor}): {summary}")
    parts.append("")
    for path, cmd, ctx in entries:
        parts.append(f"## {' '.join(path)}\n")
        parts.append("```text")
        parts.append(cmd.get_help(ctx).rstrip())
        parts.append("```\n")
    return "\n".join(parts).rstrip() + "\n"


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()
