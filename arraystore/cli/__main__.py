"""``python -m arraystore.cli``: the command line."""

from arraystore.cli import main

main(prog_name="arraystore")
