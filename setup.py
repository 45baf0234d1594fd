"""The C library of the packet path (`pushcap/capture/csrc/`), built by every install.

It is a setuptools extension so that `pip install .`, `pip wheel .`, an editable install and
`make setup` all build it the same way. It exports plain C functions that `capture/native.py`
loads with ctypes (no CPython API), so the extension's module name only fixes its file name.
`optional=True`: where there is no C compiler or no libpcap headers the build warns and the
install still succeeds; pushcap then runs its numpy fallback and says so once when it starts.
"""

from pathlib import Path

from setuptools import Extension, setup

CSRC = sorted(str(p) for p in Path("pushcap/capture/csrc").glob("*.c"))

setup(
    ext_modules=[
        Extension(
            "pushcap.capture._native",
            sources=CSRC,
            libraries=["pcap"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
