#!/usr/bin/env python3
"""A minimal SFTP v3 server over stdin/stdout for Cairn's unit tests.

It serves the real filesystem but behaves like an old or unusual server: no extensions
(no posix-rename, fsync or limits), RENAME fails when the target exists, and READ answers
at most MAX_READ bytes (short reads). With mode "garbage" it answers the first READ with a
packet of an unknown type; with mode "die" it exits on the first READ.
"""
import os
import stat
import struct
import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else "normal"
MAX_READ = 7000
inp = sys.stdin.buffer
out = sys.stdout.buffer
handles = {}
next_handle = [0]


def read_exact(n):
    b = b""
    while len(b) < n:
        c = inp.read(n - len(b))
        if not c:
            sys.exit(0)
        b += c
    return b


def send(ty, payload):
    out.write(struct.pack(">IB", len(payload) + 1, ty) + payload)
    out.flush()


def s(b):
    return struct.pack(">I", len(b)) + b


class R:
    def __init__(self, b):
        self.b, self.i = b, 0

    def u32(self):
        v = struct.unpack_from(">I", self.b, self.i)[0]
        self.i += 4
        return v

    def u64(self):
        v = struct.unpack_from(">Q", self.b, self.i)[0]
        self.i += 8
        return v

    def str(self):
        n = self.u32()
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def attrs(self):
        flags = self.u32()
        perm = None
        if flags & 1:
            self.u64()
        if flags & 2:
            self.u32(), self.u32()
        if flags & 4:
            perm = self.u32()
        if flags & 8:
            self.u32(), self.u32()
        return perm


def status(id, code, msg=b""):
    send(101, struct.pack(">II", id, code) + s(msg) + s(b"en"))


def attrs(st):
    return struct.pack(">IQIIIII", 1 | 2 | 4 | 8, st.st_size, st.st_uid, st.st_gid,
                       st.st_mode, int(st.st_atime), int(st.st_mtime))


def oserr(id, e):
    code = {2: 2, 13: 3}.get(e.errno, 4)
    status(id, code, str(e).encode())


def new_handle(obj):
    next_handle[0] += 1
    h = b"h%d" % next_handle[0]
    handles[h] = obj
    return h


while True:
    n, ty = struct.unpack(">IB", read_exact(5))
    r = R(read_exact(n - 1))
    if ty == 1:
        send(2, struct.pack(">I", 3))
        continue
    id = r.u32()
    try:
        if ty == 3:  # open
            path, pflags = r.str(), r.u32()
            perm = r.attrs()
            flags = 0
            if pflags & 1 and pflags & 2:
                flags = os.O_RDWR
            elif pflags & 2:
                flags = os.O_WRONLY
            if pflags & 8:
                flags |= os.O_CREAT
            if pflags & 0x20:
                flags |= os.O_EXCL
            fd = os.open(path, flags, perm if perm is not None else 0o666)
            send(102, struct.pack(">I", id) + s(new_handle(fd)))
        elif ty == 4:  # close
            h = handles.pop(r.str())
            if isinstance(h, int):
                os.close(h)
            status(id, 0)
        elif ty == 5:  # read
            h, off, ln = r.str(), r.u64(), r.u32()
            if MODE == "garbage":
                send(250, struct.pack(">I", id) + b"nonsense")
                continue
            if MODE == "die":
                sys.exit(3)
            data = os.pread(handles[h], min(ln, MAX_READ), off)
            if not data:
                status(id, 1, b"eof")
            else:
                send(103, struct.pack(">I", id) + s(data))
        elif ty == 6:  # write
            h, off, data = r.str(), r.u64(), r.str()
            os.pwrite(handles[h], data, off)
            status(id, 0)
        elif ty in (7, 17):  # lstat, stat
            p = r.str()
            st = os.lstat(p) if ty == 7 else os.stat(p)
            send(105, struct.pack(">I", id) + attrs(st))
        elif ty == 8:  # fstat
            send(105, struct.pack(">I", id) + attrs(os.fstat(handles[r.str()])))
        elif ty in (9, 10):  # setstat, fsetstat
            target = r.str()
            perm = r.attrs()
            if perm is not None:
                if ty == 9:
                    os.chmod(target, perm & 0o7777)
                else:
                    os.fchmod(handles[target], perm & 0o7777)
            status(id, 0)
        elif ty == 11:  # opendir
            p = r.str()
            names = os.listdir(p)
            send(102, struct.pack(">I", id) + s(new_handle([p, names])))
        elif ty == 12:  # readdir: 10 entries per reply
            d = handles[r.str()]
            if not d[1]:
                status(id, 1, b"eof")
                continue
            batch, d[1] = d[1][:10], d[1][10:]
            body = struct.pack(">II", id, len(batch))
            for name in batch:
                st = os.lstat(os.path.join(d[0], name))
                body += s(name) + s(b"long") + attrs(st)
            send(104, body)
        elif ty == 13:  # remove
            os.unlink(r.str())
            status(id, 0)
        elif ty == 14:  # mkdir
            p = r.str()
            perm = r.attrs()
            os.mkdir(p, perm if perm is not None else 0o777)
            status(id, 0)
        elif ty == 18:  # rename, refusing to replace like OpenSSH's plain rename
            a, b = r.str(), r.str()
            if os.path.lexists(b):
                status(id, 4, b"exists")
                continue
            os.rename(a, b)
            status(id, 0)
        else:
            status(id, 8, b"unsupported")
    except OSError as e:
        oserr(id, e)
