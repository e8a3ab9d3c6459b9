// Inline code and ISA flags.
//
// Every inline function lowbit ships in a header sits inside
// LOWBIT_CODEGEN_BEGIN / LOWBIT_CODEGEN_END, an inline namespace named after the
// code generation it was compiled with. Baseline code sees `baseline`; the
// generated ISA translation units define LOWBIT_CODEGEN_NAMESPACE as `isa_avx2`,
// `isa_avx512_vnni`, ... before including anything. The two copies then have
// different mangled names, so the linker can never pick an AVX-512 copy of a
// helper for a baseline caller (the SIGILL that bit other kernel libraries).
// Types are not wrapped: they carry no code and cross the ISA boundary freely.
#pragma once

#ifndef LOWBIT_CODEGEN_NAMESPACE
#define LOWBIT_CODEGEN_NAMESPACE baseline
#endif

#define LOWBIT_CODEGEN_BEGIN inline namespace LOWBIT_CODEGEN_NAMESPACE {
#define LOWBIT_CODEGEN_END }
