// Probes of this machine for the benchmark's floors: the streaming-read memory bandwidth (a buffer
// much larger than the caches summed with vector loads, the way a batch-1 push reads its weights)
// and the multiply-add throughput of the vector unit (independent 8-lane multiply-add chains, the
// arithmetic the packed-linear kernels are made of). Both split over the threads of `pool`. The
// benchmark divides a push's weight bytes by the first and its multiply-adds by the second.
#pragma once

#include <cstdint>

namespace cmer_edge {

class ThreadPool;

struct ProbeResult {
  double best;      // fastest pass (GB/s or G multiply-adds/s)
  double median;    // median pass
  double checksum;  // keeps the work from being optimised away
};

// bytes: buffer size (>= 1 MiB); passes: timed passes after one warm-up.
ProbeResult MeasureReadBandwidth(int64_t bytes, int passes, ThreadPool* pool);

// passes: timed passes after one warm-up, each 2^28 multiply-adds per thread (~15 ms at 20 G/s).
ProbeResult MeasureMultiplyAddRate(int passes, ThreadPool* pool);

}  // namespace cmer_edge
