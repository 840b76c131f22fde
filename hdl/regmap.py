"""The core's AXI4-Lite register map, defined once (HDL, driver and tests import it)."""

from __future__ import annotations

__all__ = ["CTRL", "STATUS", "PROG_ADDR", "PROG_LEN", "DRAM_BASE", "DRAM_SIZE", "ERR_PC",
           "HWINFO", "COUNTERS", "CTRL_START", "CTRL_SOFT_RESET", "STATUS_BUSY",
           "STATUS_DONE", "STATUS_ERROR", "hwinfo", "decode_status"]

CTRL = 0x00        #: W: bit 0 start, bit 1 soft reset (taken once the bus is quiet)
STATUS = 0x04      #: R: bit 0 busy, bit 1 done, bit 2 error, bits [15:8] error code
PROG_ADDR = 0x08   #: RW: byte address of the program
PROG_LEN = 0x0C    #: RW: program length in instructions
DRAM_BASE = 0x10   #: RW: start of the window the DMA may touch
DRAM_SIZE = 0x14   #: RW: size of that window in bytes
ERR_PC = 0x18      #: R: instructions dispatched when the error was raised
HWINFO = 0x1C      #: R: see :func:`hwinfo`

CTRL_START, CTRL_SOFT_RESET = 1 << 0, 1 << 1
STATUS_BUSY, STATUS_DONE, STATUS_ERROR = 1 << 0, 1 << 1, 1 << 2

#: 64-bit performance counters (low word at the address, high word at +4), cleared by start.
COUNTERS = {
    "cycles": 0x20,               # from start to done/error
    "array_busy": 0x28,           # cycles an activation row entered the array (useful MACs)
    "stall_weights": 0x30,        # activations ready but the array still loading weights
    "stall_compute_token": 0x38,  # compute waiting for a load or store token
    "stall_load_token": 0x40,     # load waiting for compute to free a buffer
    "stall_store_token": 0x48,    # store waiting for compute results
    "stall_queue_full": 0x50,     # fetch holding an instruction for a full queue
    "dma_bytes_read": 0x58,
    "dma_bytes_written": 0x60,
}


def hwinfo(cfg) -> int:
    """[8:0] rows, [17:9] cols, [18] output-stationary, [21:19] log2(bus_bits / 64)."""
    return (cfg.rows | (cfg.cols << 9) | (int(cfg.dataflow == "os") << 18)
            | ({64: 0, 128: 1, 256: 2}[cfg.bus_bits] << 19))


def decode_status(value: int) -> dict:
    return {"busy": bool(value & STATUS_BUSY), "done": bool(value & STATUS_DONE),
            "error": bool(value & STATUS_ERROR), "code": (value >> 8) & 0xFF}
