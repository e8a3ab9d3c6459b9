// lowbit C++ API: include this one header.
#pragma once

#include "lowbit/attention.hpp"
#include "lowbit/dispatch.hpp"
#include "lowbit/error.hpp"
#include "lowbit/formats.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/kv_cache.hpp"
#include "lowbit/parallel.hpp"
#include "lowbit/quant.hpp"
