"""counterfake: find reposts and manipulated derivatives of registered photos."""

__version__ = "0.1.0"
