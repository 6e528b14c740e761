"""cli.commands: one module per group of ``arraystore`` subcommands (click commands,
registered on the ``main`` group in :mod:`arraystore.cli`)."""
