"""A slow disk for the throttled-target scenario: a FUSE passthrough file system whose writes
cost time, like an NFS share on a congested link.

`python slow_fs.py ROOT MOUNTPOINT --bytes-per-s N` mounts ROOT at MOUNTPOINT in the foreground
(mfusepy over libfuse 3; Debian's `libfuse3-3`) until it is unmounted or gets SIGTERM. Every
write waits `len(data) / N` seconds, one write at a time (the share's link is shared), and then
goes to ROOT; everything else passes straight through. A writer into it therefore really blocks
in write(2), as it would on a slow share.
"""

from __future__ import annotations

import argparse
import errno
import os
import threading
import time

import mfusepy as fuse


class SlowPassthrough(fuse.Operations):
    use_ns = True  # times in integer nanoseconds (mfusepy's non-deprecated mode)

    def __init__(self, root: str, bytes_per_s: float) -> None:
        self.root = os.path.realpath(root)
        self.bytes_per_s = bytes_per_s
        self._link = threading.Lock()  # one write on the wire at a time
        self.written = 0

    def _full(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def _os(self, func, *args):
        try:
            return func(*args)
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno or errno.EIO) from None

    # --- metadata ---------------------------------------------------------------------------
    def getattr(self, path, fh=None):
        st = self._os(os.fstat, fh) if fh is not None else self._os(os.lstat, self._full(path))
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime_ns",
                "st_mtime_ns", "st_ctime_ns")
        attrs = {k.removesuffix("_ns"): getattr(st, k) for k in keys}
        return attrs

    def access(self, path, amode):
        if not os.access(self._full(path), amode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    def readdir(self, path, fh):
        return [".", "..", *self._os(os.listdir, self._full(path))]

    def statfs(self, path):
        st = self._os(os.statvfs, self._full(path))
        return {k: getattr(st, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize",
                                            "f_favail", "f_ffree", "f_files", "f_flag",
                                            "f_frsize", "f_namemax")}

    def chmod(self, path, mode):
        return self._os(os.chmod, self._full(path), mode)

    def chown(self, path, uid, gid):
        return self._os(os.chown, self._full(path), uid, gid)

    def utimens(self, path, times=None):
        return self._os(os.utime, self._full(path), None, times)

    def mkdir(self, path, mode):
        return self._os(os.mkdir, self._full(path), mode)

    def rmdir(self, path):
        return self._os(os.rmdir, self._full(path))

    def unlink(self, path):
        return self._os(os.unlink, self._full(path))

    def rename(self, old, new):
        return self._os(os.rename, self._full(old), self._full(new))

    def link(self, target, source):
        return self._os(os.link, self._full(source), self._full(target))

    def truncate(self, path, length, fh=None):
        if fh is not None:
            return self._os(os.ftruncate, fh, length)
        return self._os(os.truncate, self._full(path), length)

    # --- files ------------------------------------------------------------------------------
    def open(self, path, flags):
        return self._os(os.open, self._full(path), flags)

    def create(self, path, mode, flags):
        return self._os(os.open, self._full(path), flags | os.O_CREAT, mode)

    def read(self, path, size, offset, fh):
        return self._os(os.pread, fh, size, offset)

    def write(self, path, data, offset, fh):
        with self._link:
            time.sleep(len(data) / self.bytes_per_s)  # the slowness itself, not a wait
            self.written += len(data)
        return self._os(os.pwrite, fh, data, offset)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        return self._os(os.fsync, fh)

    def release(self, path, fh):
        return self._os(os.close, fh)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("mountpoint")
    parser.add_argument("--bytes-per-s", type=float, required=True)
    args = parser.parse_args()
    fuse.FUSE(SlowPassthrough(args.root, args.bytes_per_s), args.mountpoint, foreground=True,
              nothreads=False, fsname="pushcap-slowfs")


if __name__ == "__main__":
    main()
