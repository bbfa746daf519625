// kwq-bench-tbb: workload W2 `ordered` (BENCHMARKS.md) with oneTBB's parallel_pipeline
// (serial_in_order input -> parallel work -> serial_in_order fold), at most
// `--inflight` live tokens. Same flags and JSON as `kwq-bench ordered`.
//
//   kwq-bench-tbb [--items N] [--threads T] [--rounds R] [--inflight K]
//                 [--rep K] [--expect 0xHEX]
//
// Build: crates/kwq-bench/tbb/build.sh (g++ against Debian's libtbb-dev).
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/version.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

static const uint64_t H0 = 0xcbf29ce484222325ULL;

// Keeps `rounds` opaque to the optimiser (Rust: std::hint::black_box).
static uint64_t black_box(uint64_t v) {
    asm volatile("" : "+r"(v));
    return v;
}

__attribute__((noinline)) static uint64_t work(uint64_t i, uint64_t rounds) {
    uint64_t x = (i + 0x9E3779B97F4A7C15ULL) * 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 31;
    for (uint64_t r = 0; r < rounds; r++) {
        x ^= x >> 30;
        x *= 0xBF58476D1CE4E5B9ULL;
        x ^= x >> 27;
        x *= 0x94D049BB133111EBULL;
        x ^= x >> 31;
    }
    return x;
}

static inline uint64_t fold(uint64_t h, uint64_t x) { return ((h << 5) | (h >> 59)) ^ x; }

static uint64_t sequential(uint64_t n, uint64_t rounds) {
    uint64_t h = H0;
    for (uint64_t i = 0; i < n; i++) h = fold(h, work(i, black_box(rounds)));
    return h;
}

static uint64_t pipeline(uint64_t n, uint64_t rounds, size_t inflight) {
    using namespace oneapi::tbb;
    uint64_t next = 0, h = H0;
    parallel_pipeline(
        inflight,
        make_filter<void, uint64_t>(filter_mode::serial_in_order,
                                    [&](flow_control& fc) -> uint64_t {
                                        if (next == n) {
                                            fc.stop();
                                            return 0;
                                        }
                                        return next++;
                                    }) &
            make_filter<uint64_t, uint64_t>(
                filter_mode::parallel,
                [rounds](uint64_t i) -> uint64_t { return work(i, black_box(rounds)); }) &
            make_filter<uint64_t, void>(filter_mode::serial_in_order,
                                        [&](uint64_t x) { h = fold(h, x); }));
    return h;
}

static long peak_rss_kib() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return 0;
}

static void usage_error(const std::string& msg) {
    std::fprintf(stderr, "kwq-bench-tbb: %s\n", msg.c_str());
    std::exit(2);
}

int main(int argc, char** argv) {
    uint64_t n = 200000, rounds = 500, rep = 1;
    size_t threads = std::max(1u, std::thread::hardware_concurrency()), inflight = 4096;
    bool have_expect = false;
    uint64_t expect = 0;
    for (int a = 1; a < argc; a++) {
        std::string arg = argv[a], name, val;
        if (arg.rfind("--", 0) != 0) usage_error("unexpected argument " + arg);
        auto eq = arg.find('=');
        if (eq != std::string::npos) {
            name = arg.substr(2, eq - 2);
            val = arg.substr(eq + 1);
        } else {
            name = arg.substr(2);
            if (a + 1 >= argc) usage_error("--" + name + " needs a value");
            val = argv[++a];
        }
        char* end = nullptr;
        int base = (name == "expect") ? 16 : 10;
        const char* s = val.c_str();
        if (base == 16 && val.rfind("0x", 0) == 0) s += 2;
        unsigned long long v = std::strtoull(s, &end, base);
        if (end == s || *end) usage_error("--" + name + ": bad number " + val);
        if (name == "items") n = v;
        else if (name == "threads") threads = v;
        else if (name == "rounds") rounds = v;
        else if (name == "inflight") inflight = v;
        else if (name == "rep") rep = v;
        else if (name == "expect") { have_expect = true; expect = v; }
        else usage_error("unknown flag --" + name);
    }
    if (threads == 0 || inflight == 0 || rep == 0) usage_error("--threads/--inflight/--rep must be >= 1");

    // At most T threads run the pipeline (the calling thread takes one slot).
    oneapi::tbb::global_control gc(oneapi::tbb::global_control::max_allowed_parallelism, threads);
    oneapi::tbb::task_arena arena((int)threads);
    std::vector<double> runs;
    std::vector<uint64_t> sums;
    arena.execute([&] {
        pipeline(std::min<uint64_t>(n, 10000), rounds, inflight);  // warm-up
        for (uint64_t r = 0; r < rep; r++) {
            auto t0 = std::chrono::steady_clock::now();
            uint64_t h = pipeline(n, rounds, inflight);
            auto t1 = std::chrono::steady_clock::now();
            runs.push_back(std::chrono::duration<double>(t1 - t0).count());
            sums.push_back(h);
        }
    });
    long peak = peak_rss_kib();
    if (!have_expect) expect = sequential(n, rounds);
    for (uint64_t h : sums) {
        if (h != expect) {
            std::fprintf(stderr, "kwq-bench-tbb: check failed: checksum 0x%016" PRIx64
                                 " != expected 0x%016" PRIx64 "\n", h, expect);
            return 1;
        }
    }
    std::vector<double> sorted = runs;
    std::sort(sorted.begin(), sorted.end());
    size_t m = sorted.size();
    double med = (m % 2) ? sorted[m / 2] : (sorted[m / 2 - 1] + sorted[m / 2]) / 2;
    std::printf("{\"workload\":\"ordered\",\"impl\":\"tbb\",\"items\":%" PRIu64
                ",\"seconds\":%.6f,\"items_per_s\":%.6f,\"threads\":%zu",
                n, med, (double)n / med, threads);
    if (m > 1) {
        std::printf(",\"reps\":%zu,\"runs_s\":[", m);
        for (size_t i = 0; i < m; i++) std::printf("%s%.6f", i ? "," : "", runs[i]);
        std::printf("]");
    }
    std::printf(",\"rounds\":%" PRIu64 ",\"inflight\":%zu,\"checksum\":\"0x%016" PRIx64
                "\",\"peak_rss_kib\":%ld,\"tbb_version\":\"%d.%d\"}\n",
                rounds, inflight, sums[0], peak, TBB_VERSION_MAJOR, TBB_VERSION_MINOR);
    return 0;
}
