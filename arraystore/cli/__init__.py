"""The ``arraystore`` command line: parse, call the API, print. No logic lives here.

User errors (any ArrayStoreError, bad options) print one line on stderr and exit 1.
Heavy imports (rich, and the ops modules marked ``# lazy: start-up``) happen inside the
commands so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from arraystore.cli.commands.cast import cast_cmd
from arraystore.cli.commands.create import create
from arraystore.cli.commands.inspect import info, ls_cmd
from arraystore.cli.commands.manage import mv, rm, upgrade, verify
from arraystore.cli.commands.map import map_cmd
from arraystore.cli.commands.stats import stats
from arraystore.cli.options import remote_error
from arraystore.cli.transfer import append_cmd, export_cmd, import_cmd
from arraystore.cli.util import _one_line
from arraystore.errors import ArrayStoreError


class _Group(click.Group):
    """Turns user errors into one line on stderr and exit status 1."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            click.echo(f"error: {_one_line(exc.format_message())}", err=True)
            sys.exit(1)
        except ArrayStoreError as exc:
            click.echo(f"error: {_one_line(str(exc))}", err=True)
            sys.exit(1)
        except OSError as exc:  # disk full, permission denied, read-only file system...
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(1)
        except Exception as exc:
            msg = remote_error(exc)
            if msg is None:
                raise
            click.echo(f"error: {_one_line(msg)}", err=True)
            sys.exit(1)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
        return rv


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="arraystore")
def main() -> None:
    """Large N-dimensional arrays on disk, processed chunk by chunk in bounded memory."""


main.add_command(create)
main.add_command(ls_cmd)
main.add_command(info)
main.add_command(rm)
main.add_command(mv)
main.add_command(verify)
main.add_command(upgrade)
main.add_command(stats)
main.add_command(cast_cmd)
main.add_command(map_cmd)
main.add_command(import_cmd)
main.add_command(export_cmd)
main.add_command(append_cmd)
