// Dispatch: detection decoders on synthetic registers, tier names, the
// selection rule on a synthetic registry, the overrides and their errors, and
// the public API under every ISA subset this host supports.
#include <gtest/gtest.h>

#include "dispatch/registry.hpp"
#include "tester/tester.hpp"

namespace lowbit::test {
namespace {

using detail::x86_registers;

x86_registers sapphire_rapids() {
  x86_registers r;
  r.max_leaf = 0x20;
  r.leaf1_ecx = (1u << 12) | (1u << 27) | (1u << 28) | (1u << 29);
  r.leaf7_ebx = (1u << 5) | (1u << 8) | (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);
  r.leaf7_ecx = 1u << 11;
  r.leaf7_edx = (1u << 22) | (1u << 24) | (1u << 25);
  r.leaf7_1_eax = (1u << 4) | (1u << 5);
  r.xcr0 = 0x600e7;
  r.amx_permitted = true;
  return r;
}

TEST(Detect, X86FullFeatureSet) {
  std::vector<std::string> features;
  const isa_set s = detail::decode_x86(sapphire_rapids(), &features);
  EXPECT_EQ(s, (isa_set{isa::scalar, isa::avx2, isa::avx2_vnni, isa::avx512, isa::avx512_vnni, isa::amx}));
  EXPECT_NE(std::find(features.begin(), features.end(), "amx_int8"), features.end());
  EXPECT_NE(std::find(features.begin(), features.end(), "os_zmm"), features.end());
}

TEST(Detect, X86RequiresOsSupportAndEveryBit) {
  auto r = sapphire_rapids();
  r.xcr0 = 0x7;  // OS saves YMM but not ZMM or tiles
  EXPECT_EQ(detail::decode_x86(r), (isa_set{isa::scalar, isa::avx2, isa::avx2_vnni}));
  r = sapphire_rapids();
  r.amx_permitted = false;  // kernel refused XTILEDATA
  EXPECT_FALSE(detail::decode_x86(r).contains(isa::amx));
  EXPECT_TRUE(detail::decode_x86(r).contains(isa::avx512_vnni));
  r = sapphire_rapids();
  r.leaf7_1_eax = 1u << 5;  // AVX-512 VNNI and BF16 but no AVX-VNNI
  EXPECT_EQ(detail::decode_x86(r),
            (isa_set{isa::scalar, isa::avx2, isa::avx512, isa::avx512_vnni, isa::amx}));
  r = sapphire_rapids();
  r.leaf7_edx &= ~(1u << 22);  // AMX int8 without AMX bf16: the amx tier needs both
  EXPECT_FALSE(detail::decode_x86(r).contains(isa::amx));
  EXPECT_TRUE(detail::decode_x86(r).contains(isa::avx512_vnni));
  r = sapphire_rapids();
  r.leaf7_1_eax = 1u << 4;  // no AVX-512 BF16
  EXPECT_FALSE(detail::decode_x86(r).contains(isa::amx));
  r = sapphire_rapids();
  r.leaf7_ebx &= ~(1u << 30);  // no AVX-512 BW: no AVX-512 tier at all
  EXPECT_EQ(detail::decode_x86(r), (isa_set{isa::scalar, isa::avx2, isa::avx2_vnni}));
  r = sapphire_rapids();
  r.leaf1_ecx &= ~(1u << 29);  // no F16C: the avx2 tier needs it, and everything builds on avx2
  EXPECT_EQ(detail::decode_x86(r), isa_set{isa::scalar});
  r = sapphire_rapids();
  r.leaf1_ecx &= ~(1u << 27);  // no OSXSAVE: XCR0 means nothing
  EXPECT_EQ(detail::decode_x86(r), isa_set{isa::scalar});
  r = sapphire_rapids();
  r.max_leaf = 6;  // leaf 7 absent: its registers must be ignored
  EXPECT_EQ(detail::decode_x86(r), isa_set{isa::scalar});
  // Each AVX2-tier bit alone is not enough (a logical-AND bug would pass this).
  x86_registers lone;
  lone.max_leaf = 7;
  lone.leaf1_ecx = 1u << 27;
  lone.xcr0 = 0x6;
  lone.leaf7_ebx = 1u << 5;
  EXPECT_EQ(detail::decode_x86(lone), isa_set{isa::scalar});
}

TEST(Detect, ArmHwcaps) {
  EXPECT_EQ(detail::decode_arm(0, 0), isa_set{isa::scalar});
  EXPECT_EQ(detail::decode_arm(1u << 1, 0), (isa_set{isa::scalar, isa::neon}));
  EXPECT_EQ(detail::decode_arm((1u << 1) | (1u << 20), 0), (isa_set{isa::scalar, isa::neon, isa::dotprod}));
  EXPECT_EQ(detail::decode_arm((1u << 1) | (1u << 20), 1u << 13),
            (isa_set{isa::scalar, isa::neon, isa::dotprod, isa::i8mm}));
  EXPECT_EQ(detail::decode_arm(1u << 1, 1u << 13), (isa_set{isa::scalar, isa::neon}));  // i8mm needs dotprod
  EXPECT_EQ(detail::decode_arm(1u << 20, 0), isa_set{isa::scalar});                     // no ASIMD at all
}

TEST(Detect, ThisCpuIsConsistent) {
  const cpu_info& cpu = detected_cpu();
  EXPECT_TRUE(cpu.isas.contains(isa::scalar));
  EXPECT_TRUE(compiled_isas().contains(isa::scalar));
  for (isa t : cpu.isas.list())
    EXPECT_TRUE(isa_family(t) == "any" || (cpu.arch == "x86_64" ? isa_family(t) == "x86" : isa_family(t) == "arm"))
        << isa_name(t);
}

TEST(Isa, NamesRoundTrip) {
  for (int i = 0; i < isa_count; ++i) {
    const isa t = static_cast<isa>(i);
    EXPECT_EQ(parse_isa(isa_name(t)), t);
  }
  EXPECT_EQ(parse_isa("AVX512-VNNI"), isa::avx512_vnni);
  EXPECT_EQ(parse_isa("avxvnni"), isa::avx2_vnni);
  EXPECT_FALSE(parse_isa("sse2").has_value());
  EXPECT_EQ(to_string(isa_set{isa::scalar, isa::avx2}), "scalar avx2");
}

void fake_quant(const float*, void*, size_t) {}
void fake_linear(const kernels::linear_args&, size_t, size_t) {}
size_t fake_size(format, size_t, size_t) { return 0; }
void fake_pack(format, const void*, size_t, size_t, void*, size_t, size_t) {}

TEST(Selection, MostPreferredEnabledTierWinsPerOpAndMClass) {
  detail::kernel_registry reg;
  reg.quantize = {{isa::scalar, "q_scalar", format::q8_0, fake_quant},
                  {isa::avx512_vnni, "q_avx512_vnni", format::q8_0, fake_quant},
                  {isa::avx2, "q_avx2", format::q8_0, fake_quant}};
  reg.packers = {{isa::scalar, "rows", fake_size, fake_pack}, {isa::amx, "tiles", fake_size, fake_pack}};
  reg.linear = {{isa::scalar, "l_scalar", format::q4_0, format::q8_0, 1, 1, "rows", 7, fake_linear},
                {isa::avx2, "l_avx2_gemv", format::q4_0, format::q8_0, 1, 8, "rows", 1, fake_linear},
                {isa::amx, "l_amx_large", format::q4_0, format::q8_0, 16, 16, "tiles", 4, fake_linear}};
  const size_t q8 = detail::format_slot(format::q8_0), q4 = detail::format_slot(format::q4_0);

  auto t = detail::build_table(reg, isa_set{isa::scalar, isa::avx2, isa::avx512_vnni, isa::amx});
  EXPECT_STREQ(t.quantize[q8]->name, "q_avx512_vnni");
  EXPECT_STREQ(t.linear[q4][0]->name, "l_avx2_gemv");
  EXPECT_STREQ(t.linear[q4][1]->name, "l_scalar");  // small M: only scalar serves it
  EXPECT_STREQ(t.linear[q4][2]->name, "l_amx_large");
  EXPECT_STREQ(t.linear_packer[q4][2]->name, "tiles");
  EXPECT_STREQ(t.linear_packer[q4][0]->name, "rows");
  EXPECT_EQ(t.quantize[detail::format_slot(format::q4_k)], nullptr);

  t = detail::build_table(reg, isa_set{isa::scalar, isa::avx2});
  EXPECT_STREQ(t.quantize[q8]->name, "q_avx2");
  EXPECT_STREQ(t.linear[q4][2]->name, "l_scalar");
  t = detail::build_table(reg, isa_set{isa::scalar});
  EXPECT_STREQ(t.quantize[q8]->name, "q_scalar");
  EXPECT_STREQ(t.linear[q4][0]->name, "l_scalar");
}

TEST(Selection, MClasses) {
  EXPECT_EQ(detail::classify_m(1), detail::m_class::gemv);
  EXPECT_EQ(detail::classify_m(2), detail::m_class::small);
  EXPECT_EQ(detail::classify_m(31), detail::m_class::small);
  EXPECT_EQ(detail::classify_m(32), detail::m_class::large);
}

TEST(Selection, EveryOpHasAKernelAndTheRegistryIsConsistent) {
  const auto& reg = detail::registry();
  for (const auto& e : reg.linear) {
    bool packer_found = false;
    for (const auto& p : reg.packers) packer_found |= std::string_view(p.name) == e.packer;
    EXPECT_TRUE(packer_found) << e.name << " names an unregistered packer " << e.packer;
    EXPECT_EQ(traits(e.weights).activation, e.activations) << e.name;
    EXPECT_TRUE(std::string_view(e.name).ends_with(std::string("__") + std::string(isa_name(e.tier)))) << e.name;
  }
  const auto choices = selected_kernels();
  for (format f : {format::q4_0, format::q4_1, format::q8_0, format::q4_k, format::q6_k})
    for (const char* c : {"gemv", "small", "large"}) EXPECT_NO_THROW(selected_kernel("linear." + std::string(traits(f).name) + "." + c));
  EXPECT_NO_THROW(selected_kernel("quantize.q8_k"));
  EXPECT_NO_THROW(selected_kernel("attention.f32_f32"));
  EXPECT_THROW(selected_kernel("linear.q5_0.gemv"), Error);
}

TEST(Overrides, IsaMaxCapsAndErrorsNameWhatIsAvailable) {
  isa_guard guard;
  const isa_set avail = compiled_isas() & detected_cpu().isas;
  for (isa t : avail.list()) {
    set_isa_max(t);
    for (isa e : enabled_isas().list()) EXPECT_LE(static_cast<int>(e), static_cast<int>(t));
    EXPECT_TRUE(enabled_isas().contains(t));
    for (const auto& c : selected_kernels()) EXPECT_LE(static_cast<int>(c.tier), static_cast<int>(t)) << c.op;
  }
  // A tier of the other architecture is never available here.
  const isa foreign = detected_cpu().arch == "x86_64" ? isa::neon : isa::avx2;
  const isa_set before = enabled_isas();
  try {
    set_isa_max(foreign);
    FAIL() << "capping at an unavailable tier must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), status::isa_unavailable);
    EXPECT_NE(std::string(e.what()).find("available: scalar"), std::string::npos) << e.what();
  }
  EXPECT_EQ(enabled_isas(), before) << "a failed override must not change dispatch";
  EXPECT_THROW(set_disabled_isas(isa_set{isa::scalar}), Error);
  EXPECT_THROW(set_disabled_isas(isa_set{foreign}), Error);
  try {
    set_isa_overrides("avx3", "");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), status::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("unknown ISA 'avx3'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(set_isa_overrides("", "scalar,bogus"), Error);
  clear_isa_overrides();
  EXPECT_EQ(enabled_isas(), avail);
}

TEST(Overrides, TextFormsMatchTheEnvironmentSyntax) {
  isa_guard guard;
  set_isa_overrides("scalar", "");
  EXPECT_EQ(enabled_isas(), isa_set{isa::scalar});
  const isa_set avail = compiled_isas() & detected_cpu().isas;
  if (avail.list().size() < 2) GTEST_SKIP() << "only the scalar tier is available on this host";
  const isa top = avail.list().back();
  set_isa_overrides("", std::string(isa_name(top)));
  EXPECT_FALSE(enabled_isas().contains(top));
  EXPECT_TRUE(enabled_isas().contains(isa::scalar));
  if (avail.list().size() >= 3) {
    const isa second = avail.list()[avail.list().size() - 2];
    set_isa_overrides("", std::string(isa_name(top)) + "," + std::string(isa_name(second)));
    EXPECT_EQ(enabled_isas(), avail.without(isa_set{top, second}));
    set_isa_overrides(std::string(isa_name(second)), "");  // a cap alone
    EXPECT_EQ(enabled_isas(), avail.without(isa_set{top}));
  }
}

TEST(Overrides, PublicApiMatchesOracleUnderEveryIsaSubset) {
  isa_guard guard;
  const size_t n = 19, k = 512;
  const auto x = make_data(3 * k, data_kind::gaussian, 42);
  std::vector<float> want(3 * n), got(3 * n);
  for (const auto& subset : available_isa_subsets()) {
    SCOPED_TRACE("enabled: " + to_string(subset.enabled));
    set_disabled_isas(subset.disabled);
    ASSERT_EQ(enabled_isas(), subset.enabled);
    for (const auto& c : selected_kernels()) ASSERT_TRUE(subset.enabled.contains(c.tier)) << c.op << " " << c.kernel;
    for (format f : {format::q4_0, format::q4_1, format::q8_0, format::q4_k, format::q6_k}) {
      const auto w = ref_quantize(f, make_data(n * k, data_kind::gaussian, 9), n, k);
      ref::linear(f, w.data(), n, k, x.data(), k, 3, want.data(), n);
      const auto packed = pack_weights(f, w.data(), w.size(), n, k);
      for (size_t m : {1, 3}) {
        linear(packed, x.data(), m, got.data());
        for (size_t i = 0; i < m * n; ++i)
          ASSERT_NEAR(got[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << traits(f).name << " m=" << m;
      }
    }
    const auto q = ref_quantize(format::q8_k, x, 3, k);
    std::vector<unsigned char> api(q.size());
    quantize_rows(format::q8_k, x.data(), 3, k, api.data(), api.size());
    ASSERT_EQ(api, q);
  }
}

TEST(Overrides, WeightsPackedBeforeAnOverrideStillWorkOrSayWhy) {
  isa_guard guard;
  const auto w = ref_quantize(format::q4_0, make_data(16 * 64, data_kind::gaussian, 1), 16, 64);
  const auto packed = pack_weights(format::q4_0, w.data(), w.size(), 16, 64);
  const auto layouts = packed.packers();
  const bool scalar_layout_held = std::find(layouts.begin(), layouts.end(), "pack_rows") != layouts.end();
  set_isa_max(isa::scalar);
  const auto x = make_data(64, data_kind::gaussian, 2);
  std::vector<float> y(16, poison_value()), want(16);
  if (scalar_layout_held) {
    // Packed on a scalar-only host: the scalar kernel reads what was packed.
    linear(packed, x.data(), 1, y.data());
    ref::linear(format::q4_0, w.data(), 16, 64, x.data(), 64, 1, want.data(), 16);
    EXPECT_EQ(std::memcmp(y.data(), want.data(), sizeof(float) * 16), 0);
  } else {
    // Packed for a SIMD layout: the scalar kernel cannot read it, and says so.
    try {
      linear(packed, x.data(), 1, y.data());
      FAIL() << "the scalar kernel cannot read " << layouts.front();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("pack the weights again"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(std::all_of(y.begin(), y.end(), is_poison));
  }
}

}  // namespace
}  // namespace lowbit::test
