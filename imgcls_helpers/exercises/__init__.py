"""The graded exercises of each chapter, one module per chapter (``chNN.py``).

Each module holds ``EXERCISES``, a list of :class:`imgcls_helpers.labs.Exercise`. The
chapters check their exercises with :func:`imgcls_helpers.labs.check`, and ``imgcls-grade``
grades submitted notebooks with the same judges.
"""
