#!/usr/bin/env bash
# scripts/test-cpu.sh LOG... [CACHE_LOG]: sum the per-test CPU logs that the suites write with
# SLM_TEST_CPU_LOG (tests/testutil.c: "suite::test self children slm oracle other", CPU seconds), and
# count the oracle cache's hits and misses (SLM_ORACLE_CACHE/log). Missing files are left out.
# TOP=N (default 12) also lists each log's N most expensive tests.
top=${TOP:-12}
for f in "$@"; do
    [ -f "$f" ] || continue
    case "$f" in
    */log)
        awk '{ n[$3 " " $1]++; b[$3] = 1 }
             END { for (k in b) printf "oracle cache, %s: %d hit, %d miss, %d again, %d fail (%s)\n", k, n[k " hit"],
                                        n[k " miss"], n[k " again"], n[k " fail"], FILENAME }' "$f" | sort
        continue ;;
    esac
    awk '{ t++; s += $2; c += $3; q += $4; o += $5; x += $6 }
         END { printf "%s: %d tests, CPU s: %.0f in all = test processes %.0f + slm %.0f + oracles %.0f + other %.0f\n",
                      FILENAME, t, s + c, s, q, o, x }' "$f"
    awk '{ printf "%8.1f  %6.1f %6.1f %6.1f  %s\n", $2 + $3, $2 + $4, $5, $6, $1 }' "$f" | sort -rn | head -n "$top" |
        awk 'NR == 1 { print "  total s  ours  oracle other  test" } { print }'
done
