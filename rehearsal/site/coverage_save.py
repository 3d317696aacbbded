"""make coverage: an IPython start-up file that saves the kernel's coverage data after every cell.

coverage.py saves a process's data from an exit handler, and a notebook kernel that nbmake
shuts down does not always get to run it, so whole chapters went missing from the report.
Saving after each cell (in the kernel's main thread) loses at most the cell that was running.
rehearsal/coverage copies this file into the start-up folder of a throwaway IPYTHONDIR.
"""

import coverage

_coverage = coverage.Coverage.current()
if _coverage is not None:  # this kernel is measured (COVERAGE_PROCESS_START is set)
    get_ipython().events.register("post_run_cell", lambda result: _coverage.save())  # noqa: F821
