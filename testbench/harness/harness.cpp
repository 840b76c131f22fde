// knpu Verilator harness: the whole NPU core clocked from C++, loaded by Python with ctypes.
//
// The DRAM is a port of sim_models.cycle_model.AxiRamTiming (the handshake timing of
// cocotbext-axi's AxiRam as the cocotb core bench uses it): per rising edge the pause
// generators step, the sinks (AR, AW, W) queue what handshook in the cycle before, the
// sources (R, B) drive their next beat, ready is recomputed, then the read and write
// processes advance until they block; every queue holds at most 2 entries.  Data: a
// byte array owned by the caller; addresses wrap modulo its size, as AxiRam does.
//
// The host drives the AXI4-Lite port: program address/length, DRAM window, START, wait
// for irq (with a cycle limit), then STATUS, ERR_PC and every counter.
//
// knpu_cfg.h is generated per configuration by testbench/harness/build.py: the bus width,
// the register map, the configuration string the library answers with, the trace switch.

#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "Vcore.h"
#include "verilated.h"
#include "knpu_cfg.h"
#if KNPU_TRACE
#include "verilated_fst_c.h"
#endif

// Verilator escapes the "__" of Amaranth's flattened port names (m_axi__araddr).
#define AXI(name) m_axi___05F##name
#define LITE(name) s_axil___05F##name

namespace {

constexpr int B = KNPU_BUS_BYTES;
constexpr size_t LIMIT = 2;
constexpr int RESP_OKAY = 0, RESP_SLVERR = 2, RESP_DECERR = 3;
enum { CH_AR, CH_R, CH_AW, CH_W, CH_B, NCH };
constexpr int NCOUNTERS = sizeof(KNPU_COUNTER_ADDRS) / sizeof(KNPU_COUNTER_ADDRS[0]);

// splitmix64 finaliser; testbench/harness/pauses.py computes the same stream.
inline uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

struct Range { uint64_t lo, hi; };
struct Burst { uint32_t addr, len; };
struct RBeat { bool last; int resp; uint8_t data[B]; };
struct WBeat { uint64_t strb; uint8_t data[B]; };

// What the core drives towards the DRAM, sampled before the edge.
struct CoreOut {
    bool arvalid, rready, awvalid, wvalid, bready;
    uint32_t araddr, arlen, awaddr, awlen;
    uint64_t wstrb;
    uint8_t wdata[B];
};

template <typename T> inline void get_bytes(const T& port, uint8_t* dst) {
    uint64_t v = port;
    std::memcpy(dst, &v, B);
}
template <std::size_t N> inline void get_bytes(const VlWide<N>& port, uint8_t* dst) {
    std::memcpy(dst, port.data(), B);
}
template <typename T> inline void put_bytes(T& port, const uint8_t* src) {
    uint64_t v = 0;
    std::memcpy(&v, src, B);
    port = v;
}
template <std::size_t N> inline void put_bytes(VlWide<N>& port, const uint8_t* src) {
    std::memcpy(port.data(), src, B);
}

struct Dram {
    uint8_t* mem = nullptr;
    uint64_t size = 0;
    std::vector<Range> slverr, decerr;
    uint64_t key[NCH] = {};
    uint64_t threshold = 0;        // pause when the top 32 bits of a draw are below it
    uint64_t edge_index = 0;       // edges since the run began (pause stream position)
    bool paused[NCH] = {}, before[NCH] = {};
    std::deque<Burst> ar_q, aw_q;
    std::deque<RBeat> r_q;
    std::deque<WBeat> w_q;
    std::deque<int> b_q;
    bool arready = false, awready = false, wready = false, rvalid = false, bvalid = false;
    RBeat r_beat = {};
    int b_resp = RESP_OKAY;
    bool rd_active = false, wr_active = false, rd_decerr = false, wr_decerr = false;
    uint32_t rd_addr = 0, rd_left = 0, wr_addr = 0, wr_left = 0;
    int wr_resp = RESP_OKAY;

    void clear_state() {
        ar_q.clear(); aw_q.clear(); r_q.clear(); w_q.clear(); b_q.clear();
        arready = awready = wready = rvalid = bvalid = false;
        rd_active = wr_active = rd_decerr = wr_decerr = false;
        for (int ch = 0; ch < NCH; ch++) paused[ch] = before[ch] = false;
    }
    bool idle() const {
        return ar_q.empty() && r_q.empty() && aw_q.empty() && w_q.empty() && b_q.empty()
            && !rvalid && !bvalid && !rd_active && !wr_active;
    }
    bool pause_at(int ch, uint64_t k) const {
        return threshold && (mix64(key[ch] + k) >> 32) < threshold;
    }
    static bool hits(const std::vector<Range>& rs, uint64_t addr, uint64_t n) {
        for (const Range& r : rs)
            if (addr < r.hi && addr + n > r.lo && r.lo < r.hi) return true;
        return false;
    }
    int fault(uint64_t addr, uint64_t n) const {
        if (hits(slverr, addr, n)) return RESP_SLVERR;
        if (hits(decerr, addr, n)) return RESP_DECERR;
        return RESP_OKAY;
    }
    uint8_t& at(uint64_t addr) { return mem[addr % size]; }

    void edge(const CoreOut& o) {
        for (int ch = 0; ch < NCH; ch++) {
            before[ch] = paused[ch];
            paused[ch] = pause_at(ch, edge_index);
        }
        edge_index++;
        // Sinks: what handshook in the cycle before.
        if (arready && o.arvalid) ar_q.push_back({o.araddr, o.arlen});
        if (awready && o.awvalid) aw_q.push_back({o.awaddr, o.awlen});
        if (wready && o.wvalid) {
            WBeat w;
            w.strb = o.wstrb;
            std::memcpy(w.data, o.wdata, B);
            w_q.push_back(w);
        }
        // Sources.
        if (!rvalid || o.rready) {
            if (!r_q.empty() && !paused[CH_R]) {
                r_beat = r_q.front();
                r_q.pop_front();
                rvalid = true;
            } else {
                rvalid = false;
            }
        }
        if (!bvalid || o.bready) {
            if (!b_q.empty() && !paused[CH_B]) {
                b_resp = b_q.front();
                b_q.pop_front();
                bvalid = true;
            } else {
                bvalid = false;
            }
        }
        arready = ar_q.size() < LIMIT && !before[CH_AR];
        awready = aw_q.size() < LIMIT && !before[CH_AW];
        wready = w_q.size() < LIMIT && !before[CH_W];
        run_read();
        run_write();
    }

    void run_read() {
        for (;;) {
            if (!rd_active) {
                if (ar_q.empty()) return;
                Burst b = ar_q.front();
                ar_q.pop_front();
                rd_addr = b.addr / B * B;
                rd_left = b.len + 1;
                rd_active = true;
            }
            if (r_q.size() >= LIMIT) return;
            RBeat beat;
            int resp = fault(rd_addr, B);
            if (resp == RESP_DECERR) { rd_decerr = true; resp = RESP_OKAY; }
            if (rd_decerr) {
                resp = RESP_DECERR;
                if (rd_left == 1) rd_decerr = false;
            }
            beat.last = rd_left == 1;
            beat.resp = resp;
            if (resp == RESP_SLVERR) std::memset(beat.data, 0, B);
            else for (int i = 0; i < B; i++) beat.data[i] = at(uint64_t(rd_addr) + i);
            r_q.push_back(beat);
            if (rd_left == 1) rd_active = false;
            else { rd_addr += B; rd_left--; }
        }
    }

    // One W beat: write the strobed byte runs (a run stops at a SLVERR range, as AxiRam's
    // write loop stops at the first failing write); the response as AxiRamTiming gives it.
    void write_beat(const WBeat& w, uint32_t addr) {
        bool stopped = false;
        int i = 0;
        while (i < B) {
            if (!((w.strb >> i) & 1)) { i++; continue; }
            int j = i;
            while (j < B && ((w.strb >> j) & 1)) j++;
            int resp = fault(uint64_t(addr) + i, j - i);
            if (resp == RESP_SLVERR) { wr_resp = RESP_SLVERR; stopped = true; }
            else if (resp == RESP_DECERR) wr_decerr = true;
            if (!stopped)
                for (int k = i; k < j; k++) at(uint64_t(addr) + k) = w.data[k];
            i = j;
        }
    }

    void run_write() {
        for (;;) {
            if (!wr_active) {
                if (aw_q.empty()) return;
                Burst b = aw_q.front();
                aw_q.pop_front();
                wr_addr = b.addr / B * B;
                wr_left = b.len + 1;
                wr_resp = RESP_OKAY;
                wr_active = true;
            }
            if (wr_left) {
                if (w_q.empty()) return;
                write_beat(w_q.front(), wr_addr);
                w_q.pop_front();
                wr_addr += B;
                wr_left--;
                continue;
            }
            if (b_q.size() >= LIMIT) return;
            b_q.push_back(wr_decerr ? RESP_DECERR : wr_resp);
            wr_decerr = false;
            wr_active = false;
        }
    }
};

}  // namespace

extern "C" {

struct KnpuResult {
    uint32_t status;
    uint32_t err_pc;
    uint64_t counters[NCOUNTERS];
    int64_t pause_first;     // irq's edge minus the cycles counted: the edge ending START's cycle
    int64_t start_edge;      // the edge ending START's cycle, from the host's side
    uint64_t edges;          // clock edges of this run (host accesses included)
    int32_t timed_out;
    int32_t irq_seen;
};

struct KnpuSim {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vcore> top;
    Dram dram;
    uint64_t time_ps = 0;
    bool irq_prev = false;
    int64_t irq_rise_edge = -1;   // dram.edge_index of the edge irq rose at
    int64_t start_edge = -1;      // the edge that ends the START cycle
#if KNPU_TRACE
    std::unique_ptr<VerilatedFstC> trace;
    int64_t trace_from = 0, trace_to = -1;
#endif

    void dump() {
#if KNPU_TRACE
        if (trace && start_edge >= 0) {
            int64_t cycle = int64_t(dram.edge_index) - start_edge;
            if (cycle >= trace_from && cycle <= trace_to) trace->dump(time_ps);
        }
#endif
    }
    void drive() {
        Vcore* t = top.get();
        t->AXI(arready) = dram.arready;
        t->AXI(awready) = dram.awready;
        t->AXI(wready) = dram.wready;
        t->AXI(rvalid) = dram.rvalid;
        t->AXI(rlast) = dram.r_beat.last;
        t->AXI(rresp) = dram.r_beat.resp;
        put_bytes(t->AXI(rdata), dram.r_beat.data);
        t->AXI(bvalid) = dram.bvalid;
        t->AXI(bresp) = dram.b_resp;
    }
    // The low half of a cycle: inputs applied, combinational outputs settled.
    void settle() {
        top->clk = 0;
        top->eval();
        dump();
        time_ps += 5000;
        bool irq = top->irq;
        if (irq && !irq_prev) irq_rise_edge = int64_t(dram.edge_index) - 1;
        irq_prev = irq;
    }
    // The rising edge: the core samples its inputs, then the DRAM takes its edge.
    void rise() {
        Vcore* t = top.get();
        CoreOut o;
        o.arvalid = t->AXI(arvalid);
        o.araddr = t->AXI(araddr);
        o.arlen = t->AXI(arlen);
        o.rready = t->AXI(rready);
        o.awvalid = t->AXI(awvalid);
        o.awaddr = t->AXI(awaddr);
        o.awlen = t->AXI(awlen);
        o.wvalid = t->AXI(wvalid);
        o.wstrb = t->AXI(wstrb);
        get_bytes(t->AXI(wdata), o.wdata);
        o.bready = t->AXI(bready);
        t->clk = 1;
        t->eval();
        dump();
        time_ps += 5000;
        dram.edge(o);
        drive();
    }
    void cycle() { settle(); rise(); }

    void lite_write(uint32_t addr, uint32_t data) {
        Vcore* t = top.get();
        t->LITE(awaddr) = addr;
        t->LITE(awvalid) = 1;
        t->LITE(wdata) = data;
        t->LITE(wstrb) = 0xF;
        t->LITE(wvalid) = 1;
        for (;;) {
            settle();
            bool fire = t->LITE(awready) && t->LITE(wready);
            rise();
            if (fire) break;
        }
        if (addr == KNPU_REG_CTRL && (data & KNPU_CTRL_START))
            start_edge = int64_t(dram.edge_index);   // START is high in the next cycle
        t->LITE(awvalid) = 0;
        t->LITE(wvalid) = 0;
        t->LITE(bready) = 1;
        for (;;) {
            settle();
            bool fire = t->LITE(bvalid);
            rise();
            if (fire) break;
        }
        t->LITE(bready) = 0;
    }
    uint32_t lite_read(uint32_t addr) {
        Vcore* t = top.get();
        t->LITE(araddr) = addr;
        t->LITE(arvalid) = 1;
        for (;;) {
            settle();
            bool fire = t->LITE(arready);
            rise();
            if (fire) break;
        }
        t->LITE(arvalid) = 0;
        t->LITE(rready) = 1;
        uint32_t data = 0;
        for (;;) {
            settle();
            bool fire = t->LITE(rvalid);
            data = t->LITE(rdata);
            rise();
            if (fire) break;
        }
        t->LITE(rready) = 0;
        return data;
    }
    void reset() {
        dram.clear_state();
        drive();
        top->rst = 1;
        for (int i = 0; i < 4; i++) cycle();
        // A burst the core had in flight when reset came is forgotten by both sides.
        dram.clear_state();
        drive();
        top->rst = 0;
        for (int i = 0; i < 3; i++) cycle();   // the wrapper's reset flop: one cycle later
    }
    void read_results(KnpuResult* out) {
        out->status = lite_read(KNPU_REG_STATUS);
        out->err_pc = lite_read(KNPU_REG_ERR_PC);
        for (int i = 0; i < NCOUNTERS; i++) {
            uint64_t lo = lite_read(KNPU_COUNTER_ADDRS[i]);
            uint64_t hi = lite_read(KNPU_COUNTER_ADDRS[i] + 4);
            out->counters[i] = lo | (hi << 32);
        }
    }
};

const char* knpu_config(void) { return KNPU_CONFIG_JSON; }
int knpu_traced(void) { return KNPU_TRACE; }
int knpu_ncounters(void) { return NCOUNTERS; }

KnpuSim* knpu_open(int threads) {
    KnpuSim* s = new KnpuSim;
    s->ctx.reset(new VerilatedContext);
    if (threads > 0) s->ctx->threads(threads);
#if KNPU_TRACE
    s->ctx->traceEverOn(true);
#endif
    s->top.reset(new Vcore(s->ctx.get(), "core"));
    s->reset();
    return s;
}

void knpu_close(KnpuSim* s) {
#if KNPU_TRACE
    if (s->trace) s->trace->close();
#endif
    if (s->top) s->top->final();
    delete s;
}

uint32_t knpu_read_reg(KnpuSim* s, uint32_t addr) { return s->lite_read(addr); }
void knpu_reset(KnpuSim* s) { s->reset(); }

void knpu_soft_reset(KnpuSim* s) {
    s->lite_write(KNPU_REG_CTRL, KNPU_CTRL_SOFT_RESET);
    for (int i = 0; i < 4; i++) s->cycle();
}

// Open an FST file that receives the cycles [from, to] of the runs (cycle 0 = START's).
int knpu_trace_open(KnpuSim* s, const char* path, int64_t from, int64_t to) {
#if KNPU_TRACE
    s->trace.reset(new VerilatedFstC);
    s->top->trace(s->trace.get(), 99);
    s->trace->open(path);
    s->trace_from = from;
    s->trace_to = to;
    return s->trace->isOpen() ? 0 : -1;
#else
    (void)s; (void)path; (void)from; (void)to;
    return -2;
#endif
}

// One program: returns 0 when irq rose, 1 at the cycle limit (results hold what the
// registers said then).  mem (size bytes, a multiple of the bus width) is used in place.
int knpu_run(KnpuSim* s, uint8_t* mem, uint64_t size, uint32_t prog_addr, uint32_t prog_len,
             uint32_t dram_base, uint32_t dram_size, uint64_t max_cycles, uint64_t pause_seed,
             uint64_t pause_threshold, const uint64_t* slverr, int n_slverr,
             const uint64_t* decerr, int n_decerr, KnpuResult* out) {
    Dram& d = s->dram;
    d.mem = mem;
    d.size = size;
    d.slverr.clear();
    d.decerr.clear();
    for (int i = 0; i < n_slverr; i++) d.slverr.push_back({slverr[2 * i], slverr[2 * i + 1]});
    for (int i = 0; i < n_decerr; i++) d.decerr.push_back({decerr[2 * i], decerr[2 * i + 1]});
    for (int ch = 0; ch < NCH; ch++)
        d.key[ch] = mix64(pause_seed ^ (0xD1B54A32D192ED03ull * uint64_t(ch + 1)));
    d.threshold = pause_threshold;
    d.edge_index = 0;
    s->start_edge = -1;
    s->irq_rise_edge = -1;
    std::memset(out, 0, sizeof(*out));
    s->lite_write(KNPU_REG_PROG_ADDR, prog_addr);
    s->lite_write(KNPU_REG_PROG_LEN, prog_len);
    s->lite_write(KNPU_REG_DRAM_BASE, dram_base);
    s->lite_write(KNPU_REG_DRAM_SIZE, dram_size);
    s->lite_write(KNPU_REG_CTRL, KNPU_CTRL_START);
    int64_t start = s->start_edge;
    int rc = 0;
    while (s->irq_rise_edge <= start) {
        if (int64_t(d.edge_index) - start > int64_t(max_cycles)) { rc = 1; break; }
        s->cycle();
    }
    out->irq_seen = rc == 0;
    out->timed_out = rc;
    s->read_results(out);
    out->pause_first = rc == 0 ? s->irq_rise_edge - int64_t(out->counters[0]) : -1;
    out->start_edge = start;
    out->edges = d.edge_index;
    d.threshold = 0;     // no pauses between runs
    return rc;
}

}  // extern "C"
