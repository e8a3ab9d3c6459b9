#!/usr/bin/env bash
# Usage: baseline_code.sh OBJDUMP BINARY...
#
# Fails when a function of a lowbit binary outside the ISA units' inline
# namespaces (isa_avx2, isa_avx512_vnni, ...) holds a VEX, EVEX or AMX
# instruction. Everything outside those units is compiled for the baseline
# (x86-64): such an instruction there came from an ISA unit's flags, through
# code that runs on every CPU (a registration function, once) or through a
# template instance the unit compiled (a std::vector member, say) that the
# linker then picked for baseline callers too. Either dies of SIGILL on a CPU
# without the unit's ISA, whichever CPU this test runs on.
set -euo pipefail
objdump=$1
shift
status=0
for bin in "$@"; do
  found=$("${objdump}" -d -C --no-show-raw-insn "${bin}" | awk -F'\t' '
    function hex(s,    i, n) { n = 0; for (i = 1; i <= length(s); ++i) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return n }
    /^[0-9a-f]+ <.*>:$/ {
      fn = substr($0, index($0, "<") + 1); fn = substr(fn, 1, length(fn) - 2)
      start = hex(substr($0, 1, index($0, " ") - 1)); first = 1; skip_end = 0; next
    }
    fn == "" || fn ~ /isa_/ || NF < 2 { next }
    {
      addr = $1; gsub(/[ :]/, "", addr); at = hex(addr)
      # GNU objdump puts the operands after spaces, llvm-objdump after a tab.
      ins = $2; for (i = 3; i <= NF; ++i) ins = ins " " $i
      sub(/#.*/, "", ins)
      # UBSan (-fsanitize=function) puts a jump over 6 bytes of data at
      # the start of a function; those bytes are not code.
      if (first && ins ~ /^jmp / && index($0, "<" fn "+0x8>")) skip_end = start + 8
      first = 0
      if (at < skip_end) next
      split(ins, word, " ")
      if (word[1] ~ /^v/ || ins ~ /%[yz]mm|%k[0-7]|%tmm/) {
        if (!(fn in seen)) { seen[fn] = 1; print "  " fn ": " ins }
      }
    }')
  if [[ -n "${found}" ]]; then
    echo "${bin}: VEX/EVEX/AMX code outside the ISA units:"
    echo "${found}" | head -20
    status=1
  else
    echo "${bin}: baseline code only outside the ISA units"
  fi
done
exit "${status}"
