"""safepip: a drop-in ``pip install`` that is safe by default."""

__version__ = "0.1.0"

__all__ = ["__version__"]
