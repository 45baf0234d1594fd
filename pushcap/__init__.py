"""pushcap: always-on packet capture with rolling push, triggered capture and flow statistics."""

import os

# numpy's OpenBLAS starts a thread pool (one thread per core) when numpy is imported, which
# nearly doubles the CPU cost of `import numpy` (measured 0.135 s -> 0.080 s of CPU with one
# thread, 2-core VM). pushcap uses numpy for vectorized packet work only and never does linear
# algebra, so one BLAS thread is enough. This must run before any pushcap module imports numpy;
# a value already in the environment wins. (numpy's wheels bundle OpenBLAS; MKL and OpenMP
# runtimes start their threads at the first parallel call, not at import.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
