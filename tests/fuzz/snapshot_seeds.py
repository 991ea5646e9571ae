#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Write seeds for fuzz_snapshot from real snapshots.

usage: snapshot_seeds.py SBX_VMM OUT_DIR

Runs `SBX_VMM --snapshot-to` (needs /dev/kvm). For each snapshot it
writes the header and state sections alone, and the same with the first
8 KiB of RAM, whose second page contains the GDT. A third seed adds two
queued exec records with both checksums fixed, because a standalone
snapshot always has an empty queue.
"""
import os
import struct
import subprocess
import sys
import tempfile

HEADER = struct.Struct("<8sIIIIQQQQQQQQQII64s")
STATE_SIZE = 104          # struct snap_vmm_state
QUEUE_LEN_OFFSET = 96     # u32 queue_len in struct snap_vmm_state
RAM_SEED_BYTES = 8192


def crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


TABLE = crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def with_queue(meta):
    """Return meta with two exec records after the VMM state."""
    fields = list(HEADER.unpack_from(meta))
    vmm_offset, vmm_size, ram_offset = fields[10], fields[11], fields[12]
    records = b""
    for seq, text in ((7, b"echo queued"), (8, b"counter")):
        padded = text + b"\0" * (-len(text) % 8)
        records += struct.pack("<QII", seq, len(text), 0) + padded
    end = vmm_offset + STATE_SIZE + len(records)
    if vmm_size != STATE_SIZE or end > ram_offset:
        return None
    out = bytearray(meta)
    out[vmm_offset + STATE_SIZE:end] = records
    struct.pack_into("<I", out, vmm_offset + QUEUE_LEN_OFFSET, 2)
    fields[11] = STATE_SIZE + len(records)
    fields[14] = 0                      # meta_crc is computed as 0
    HEADER.pack_into(out, 0, *fields)
    # The RAM is unchanged, so ram_crc stays valid.
    fields[14] = crc32c(out)
    HEADER.pack_into(out, 0, *fields)
    return bytes(out)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    vmm, out_dir = sys.argv[1], sys.argv[2]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    with tempfile.TemporaryDirectory() as tmp:
        for command in ("echo hi", "counter"):
            path = os.path.join(tmp, "seed.snap")
            result = subprocess.run(
                [vmm, "--snapshot-to", path, "--", command], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if result.returncode != 0:
                sys.stderr.write(result.stderr)
                sys.exit(f"snapshot_seeds: {vmm} --snapshot-to failed with "
                         f"exit status {result.returncode}")
            with open(path, "rb") as f:
                data = f.read()
            os.unlink(path)
            ram_offset = HEADER.unpack_from(data)[12]
            meta = data[:ram_offset]
            name = command.replace(" ", "_")
            seeds = {
                name + ".meta": meta,
                name + ".meta_ram8k": data[:ram_offset + RAM_SEED_BYTES],
                name + ".queue": with_queue(meta),
            }
            for seed, content in seeds.items():
                if content is None:
                    continue
                with open(os.path.join(out_dir, seed), "wb") as f:
                    f.write(content)


if __name__ == "__main__":
    main()
