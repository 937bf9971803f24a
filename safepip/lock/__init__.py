"""Locks: ``requirements`` (requirements.txt with hashes, pip-compile's shape), ``pylock``
(PEP 751), ``output`` (writing one, and what ``--check`` compares) and ``memo`` (a lock
answered again while nothing it read changed).

Nothing is imported here: a lock answered from its memo imports ``memo`` and ``output``
alone, without packaging or the resolver."""
