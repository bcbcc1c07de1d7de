"""Keras' ``models.Sequential``: cnnkit's :class:`~cnnkit.models.Sequential`."""
from cnnkit.models.sequential import Sequential

__all__ = ["Sequential"]
