"""Readers that turn media files into decoded data (no model input yet).

Each loader raises MediaError with the file's path and a one-line reason for
any file it cannot read, so that an indexing run can record it and go on.
"""
