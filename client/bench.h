// `cropshield bench` lives in client/bench/ (library cropshield_bench); this header keeps the
// include path the command line uses.
#ifndef CROPSHIELD_CLIENT_BENCH_H_
#define CROPSHIELD_CLIENT_BENCH_H_

#include "client/bench/bench.h"

#endif  // CROPSHIELD_CLIENT_BENCH_H_
