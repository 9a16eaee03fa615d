"""The bounds a mapping file is read within, in one place.

A mapping file is an admin's hand-written YAML, read at every start, often from a path given by
a person or a deployment tool. Whatever it holds, reading it must end quickly and in bounded
memory with a message naming the file, never a hang, ``MemoryError`` or a traceback:

- ``MAX_BYTES`` (1 MiB): the default mapping is about 15 KiB; a file seventy times larger is not
  a mapping but a mistake (``/dev/zero``, a log, a database) and is refused before it is read.
- ``MAX_DEPTH`` (50): the default nests 9 levels. PyYAML composes nodes recursively, so 10,000
  nested ``[`` would end in ``RecursionError``; the composer counts levels and stops at 50.
- ``MAX_NUMBER_CHARS`` (100): no setting needs a number of more than a few digits. Python
  refuses to convert an integer of over 4,300 digits (``ValueError``) and converting long ones
  costs quadratic time; a number longer than 100 characters is refused where it stands.
- Only a regular file is opened at all (``connectors.files.read_regular_file``): a directory, a
  FIFO (an ``open`` that waits forever) or a device is named for what it is.
"""

from __future__ import annotations

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 50
MAX_NUMBER_CHARS = 100
