"""``python -m bindsearch.cli``: the same as the ``bindsearch`` command."""

from .app import main

main()
