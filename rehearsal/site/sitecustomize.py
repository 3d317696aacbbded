"""Loaded at start-up by every Python process of the rehearsal (it is on their PYTHONPATH).

The stand-ins under ``rehearsal/standins.py`` have the real datasets' layout but not their
bytes, so torchvision's md5 checks would reject them. This hook is the only thing the
rehearsal bypasses: once ``torchvision.datasets.cifar`` or ``.flowers102`` is imported, their
``check_integrity`` accepts any file that exists. Nothing in ``imgcls_helpers`` or the
chapters is changed, and nothing is imported early: the patch runs when torchvision's own
module is first imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

PATCHED = {"torchvision.datasets.cifar", "torchvision.datasets.flowers102"}


def _exists(fpath, md5=None) -> bool:
    return os.path.isfile(fpath)


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Find the patched modules with the normal machinery, then patch them once loaded."""

    def find_spec(self, name, path, target=None):
        if name not in PATCHED:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            module.check_integrity = _exists

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, _PatchAfterImport())

# make coverage: measure every process of the run (the notebook kernels included) with
# coverage.py's documented start-up hook, when it asks for it.
if os.environ.get("COVERAGE_PROCESS_START"):
    try:
        import coverage
    except ImportError:
        pass
    else:
        coverage.process_startup()
