"""Unlearning methods by name: the installed ones (entry point group `erasure.methods`), Erasure's own among them.

A method is one module with one `UnlearningMethod` subclass (see base.py); its package lists it under
`[project.entry-points."erasure.methods"]`, so adding a method touches no file here.
"""

from unlearning.methods.base import METHODS, UnlearningMethod, UnlearningProblem, create_method, register

__all__ = ["METHODS", "UnlearningMethod", "UnlearningProblem", "create_method", "register"]
