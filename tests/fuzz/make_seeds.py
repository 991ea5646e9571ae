#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Write the committed seed corpora of the fuzz harnesses.

Run it from anywhere after changing a seed; it rewrites
tests/fuzz/corpus/{http,json,elf,control}/. The snapshot seeds are not
here: scripts/fuzz.sh makes them at fuzz time with sbx-vmm --snapshot-to.
"""
import os
import struct

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(harness, name, data):
    folder = os.path.join(CORPUS, harness)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def request(method, path, body=None, headers=()):
    lines = [f"{method} {path} HTTP/1.1", "Host: sbxd"]
    lines += headers
    if body is not None:
        lines.append(f"Content-Length: {len(body.encode())}")
    text = "\r\n".join(lines) + "\r\n\r\n"
    return text + (body or "")


CREATE = '{"vcpus":1,"memory_mib":16,"args":"a b","boot_delay_ms":0,' \
         '"ignore_stop":false,"metadata":{"team":"core"}}'


def http_seeds():
    write("http", "healthz", request("GET", "/healthz"))
    write("http", "node", request("GET", "/v1/node?pretty=1"))
    write("http", "metrics", request("GET", "/metrics"))
    write("http", "list", request("GET", "/v1/sandboxes"))

    write("http", "create", request("POST", "/v1/sandboxes", CREATE))
    write("http", "create_small_memory",
          request("POST", "/v1/sandboxes", '{"memory_mib":4}'))
    write("http", "create_no_length",
          "POST /v1/sandboxes HTTP/1.1\r\nHost: sbxd\r\n"
          "Connection: close\r\n\r\n")
    chunked = ("POST /v1/sandboxes HTTP/1.1\r\nHost: sbxd\r\n"
               "Transfer-Encoding: chunked\r\n\r\n"
               "a\r\n{\"vcpus\":1\r\n1\r\n}\r\n0\r\n\r\n")
    write("http", "create_chunked", chunked)
    write("http", "expect_continue",
          request("POST", "/v1/sandboxes", '{"memory_mib":32}',
                  ["Expect: 100-continue"]))

    write("http", "exec_unknown",
          request("POST", "/v1/sandboxes/0123456789ab/exec",
                  '{"command":"echo hi","timeout_ms":1000}'))
    write("http", "stop_unknown",
          request("POST", "/v1/sandboxes/0123456789ab/stop",
                  '{"grace_ms":500}'))
    write("http", "pause_unknown",
          request("POST", "/v1/sandboxes/0123456789ab/pause", ""))
    write("http", "delete_unknown",
          request("DELETE", "/v1/sandboxes/0123456789ab"))
    write("http", "force_stop", request("POST", "/v1/node/force-stop", ""))

    write("http", "wrong_method", request("PUT", "/healthz", "{}"))
    write("http", "http10", "GET /healthz HTTP/1.0\r\n\r\n")
    write("http", "http2_version", "GET /healthz HTTP/2.0\r\n\r\n")
    write("http", "pipelined",
          request("GET", "/healthz") + request("GET", "/v1/node") +
          request("GET", "/metrics", headers=["Connection: close"]))
    write("http", "bad_utf8_path",
          b"GET /v1/\xc3\x28\xe2\x82/x HTTP/1.1\r\nHost: sbxd\r\n\r\n")


def json_seeds():
    write("json", "create", CREATE)
    write("json", "create_guest",
          '{"guest":"/nonexistent/guest.elf","memory_mib":8}')
    write("json", "create_metadata",
          '{"metadata":{"a":"1","b":"\\u00e9\\ud83d\\ude00"}}')
    write("json", "exec", '{"command":"echo hi","timeout_ms":5000}')
    write("json", "exec_nul", '{"command":"echo\\u0000hi"}')
    write("json", "grace", '{"grace_ms":3600000}')
    write("json", "empty", "")
    write("json", "unknown_fields", '{"vcpu":2,"memory":16,"x":null}')
    write("json", "duplicate", '{"command":"a","command":"b"}')
    write("json", "numbers", '{"memory_mib":1e3,"timeout_ms":-1,'
                             '"grace_ms":18446744073709551615}')
    write("json", "not_object", '["command","echo"]')
    write("json", "bad_utf8", b'{"command":"\xff\xfe"}')


def tiny_elf():
    """A 64-bit static guest that makes the EXIT hypercall with code 0.

    One RWX PT_LOAD segment at 2 MiB contains the headers, the code and the
    hypercall request; its 3 MiB of zeroed memory make the guest need
    6 MiB of RAM, so that a create with memory_mib 4 is rejected.
    """
    base = 0x200000
    code_off = 64 + 56
    request_off = 0x100
    code = (b"\xba\x00\x5b\x00\x00"                         # mov edx, 0x5b00
            + b"\xb8" + struct.pack("<I", base + request_off)  # mov eax, req
            + b"\xef"                                       # out dx, eax
            + b"\xf4")                                      # hlt
    request = struct.pack("<IIQQQQq", 7, 0, 0, 0, 0, 0, 0)  # SBX_HC_EXIT
    size = request_off + len(request)
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH",
                       b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7,
                       2, 62, 1,                  # ET_EXEC, EM_X86_64
                       base + code_off, 64, 0,    # entry, phoff, shoff
                       0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 7, 0, base, base, size,
                       0x300000, 0x1000)          # PT_LOAD, RWX
    image = bytearray(size)
    image[0:64] = ehdr
    image[64:120] = phdr
    image[code_off:code_off + len(code)] = code
    image[request_off:size] = request
    return bytes(image)


def control_seeds():
    def msg(kind, seq=0, arg=0, payload=b""):
        data = struct.pack("<IIQq", kind, len(payload), seq, arg) + payload
        return struct.pack("<H", len(data)) + data

    exec_, stop, pause, resume, snapshot = 1, 2, 3, 4, 5
    write("control", "exec", msg(exec_, 1, 1000, b"echo hi"))
    write("control", "exec_twice",
          msg(exec_, 1, 0, b"counter") + msg(exec_, 2, 0, b"sleep 10"))
    write("control", "stop", msg(stop))
    # One exec more than the VMM queues (VMM_EXEC_QUEUE_MAX is 256).
    write("control", "exec_queue_full",
          b"".join(msg(exec_, seq, 0, b"x") for seq in range(1, 258)))
    write("control", "pause_resume",
          msg(pause, 1) + msg(pause, 2) + msg(resume, 3) + msg(resume, 4))
    write("control", "snapshot", msg(snapshot, 7, 0, b"/tmp/s.snap\0"))
    write("control", "snapshot_relative", msg(snapshot, 8, 0, b"s.snap\0"))
    write("control", "snapshot_no_nul", msg(snapshot, 9, 0, b"/tmp/s"))
    write("control", "unknown_type", msg(99, 5))
    write("control", "short", struct.pack("<H", 8) + b"\1\0\0\0\0\0\0\0")
    header = struct.pack("<IIQq", exec_, 10, 3, 0)
    write("control", "len_mismatch",
          struct.pack("<H", len(header) + 4) + header + b"abcd")
    write("control", "oversized", struct.pack("<H", 0xffff) +
          struct.pack("<IIQq", exec_, 65537, 4, 0))


def main():
    http_seeds()
    json_seeds()
    write("elf", "tiny.elf", tiny_elf())
    control_seeds()


if __name__ == "__main__":
    main()
