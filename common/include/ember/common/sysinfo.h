// Process facts for reports: resident memory now and at its peak; the BLAS's thread count.
#pragma once

#include <cstdint>

namespace ember {

// Peak resident set size of this process in bytes (VmHWM), 0 if unknown.
uint64_t PeakRssBytes();
// Current resident set size in bytes (VmRSS), 0 if unknown.
uint64_t CurrentRssBytes();
// Sets the BLAS library's own thread pool to n threads where it has one (OpenBLAS:
// openblas_set_num_threads, found at run time); returns false where the BLAS offers none.
bool SetBlasThreads(int n);
// OpenBLAS's thread count, or -1 where the BLAS is not OpenBLAS.
int BlasThreads();

}  // namespace ember
