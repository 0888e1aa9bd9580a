"""`python -m edgemed.cli ...`: the edgemed command, for environments without the console script on PATH."""

from edgemed.cli.main import cli

cli(prog_name="edgemed")
