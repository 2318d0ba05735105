"""The ``bindsearch`` command line: parses arguments, calls the Python API, renders its dataclasses."""
