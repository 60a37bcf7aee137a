"""rawtcp: a userspace TCP stack in Python that talks to real Linux kernels over raw packets."""

__version__ = "0.1.0"
