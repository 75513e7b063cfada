"""`python -m ibash_index` runs the command line."""

from .cli import app

app(prog_name="ibash-index")
