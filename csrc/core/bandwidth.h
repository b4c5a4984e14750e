// Streaming-read memory bandwidth of this machine, measured the way a batch-1 head push reads its
// weights: a buffer much larger than the caches summed with vector loads, split over the threads
// of `pool`. The benchmark divides the bytes of weights a push reads by this to get its floor.
#pragma once

#include <cstdint>

namespace cmer_edge {

class ThreadPool;

struct BandwidthResult {
  double best_gb_per_s;    // fastest pass
  double median_gb_per_s;  // median pass
  double checksum;         // sum of the buffer (keeps the reads from being optimised away)
};

// bytes: buffer size (>= 1 MiB); passes: timed passes after one warm-up.
BandwidthResult MeasureReadBandwidth(int64_t bytes, int passes, ThreadPool* pool);

}  // namespace cmer_edge
