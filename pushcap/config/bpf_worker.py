"""One libpcap compile in a child process: the code bpf_compile.py runs there, never in pushcap.

It exists so that a compile can be stopped: pcap_compile is one C call that holds the GIL until
it returns, and no thread can interrupt it; a process can be killed whatever it is doing. So it
imports nothing of pushcap (it starts as `python -I -S` with only pcapy's folder on its path, in
~20 ms, whatever state the daemon is in), caps its own address space, reads one request as JSON
on stdin and writes the program (libpcap's `struct bpf_insn` array as [code, jt, jf, k] lists)
or libpcap's error as JSON on stdout.
"""

from __future__ import annotations

import json
import resource
import sys


def main() -> int:
    """argv[1]: the folder pcapy is installed in (the parent's, so both use the same libpcap)."""
    sys.path.insert(0, sys.argv[1])
    import pcapy

    request = json.load(sys.stdin)
    limit = int(request["max_memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # after start-up: only the compile
    try:
        program = pcapy.compile(int(request["dlt"]), int(request["snaplen"]),
                                request["expression"], int(request["optimize"]), 0)
        reply: dict = {"program": [[int(v) for v in insn] for insn in program.get_bpf()]}
    except pcapy.PcapError as exc:
        reply = {"error": str(exc)}
    except MemoryError:
        reply = {"error": f"libpcap ran out of memory compiling it (limit {limit} bytes)"}
    json.dump(reply, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
