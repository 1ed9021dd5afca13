#!/usr/bin/env bash
# The one closing line of `make test`: "N passed, M failed", summed over every layer.
#
#   scripts/test-summary.sh begin          forget the counts of an earlier run
#   scripts/test-summary.sh run CMD ARGS   run CMD (its output shown as usual and kept), then
#                                          count what it reported; exits with CMD's status
#   scripts/test-summary.sh end            print the counts of every layer and the closing
#                                          line; exits 1 when anything failed
#
# What counts as a test: each test of a cargo test binary ("test result: ok. X passed; Y
# failed"), each pg_regress test ("All N tests passed", "M of N tests failed"), and the fuzz
# layer as one test (scripts/fuzz.sh's "passed" or "failed" line). A command that fails without
# reporting a failed test (lint, a build, the cluster not starting) counts as one failed test,
# so the closing line never says 0 failed when something failed.
#
# Settings (environment): TESSERA_TEST_SUMMARY_DIR  where the counts are kept
#                         (default /var/tmp/tessera/test-summary)
set -uo pipefail

DIR=${TESSERA_TEST_SUMMARY_DIR:-/var/tmp/tessera/test-summary}
COUNTS="$DIR/counts.tsv"

# "passed<TAB>failed" reported in the output file $1.
count() {
    awk '
        /^test result: / {
            for (i = 1; i <= NF; i++) {
                if ($(i + 1) ~ /^passed;?$/) p += $i
                if ($(i + 1) ~ /^failed;?$/) f += $i
            }
        }
        /^ *All [0-9]+ tests passed/ { p += $2 }
        /^ *[0-9]+ of [0-9]+ tests failed/ { f += $1; p += $3 - $1 }
        /^ *[0-9]+ of [0-9]+ tests passed, [0-9]+ failed test/ { p += $1 }
        /^\[fuzz [0-9]+\] .*: passed$/ { p += 1 }
        /^\[fuzz [0-9]+\] failed/ { f += 1 }
        END { printf "%d\t%d\n", p, f }' "$1"
}

case "${1:-}" in
begin)
    mkdir -p "$DIR"
    : >"$COUNTS"
    ;;
run)
    shift
    [ $# -gt 0 ] || { echo "usage: $0 run CMD [ARGS...]" >&2; exit 2; }
    mkdir -p "$DIR"
    out=$(mktemp "$DIR/output.XXXXXX")
    "$@" 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    IFS=$'\t' read -r passed failed < <(count "$out")
    if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1
    fi
    printf '%s\t%s\t%s\t%s\n' "$passed" "$failed" "$status" "$*" >>"$COUNTS"
    rm -f "$out"
    exit "$status"
    ;;
end)
    [ -f "$COUNTS" ] || { echo "0 passed, 1 failed"; exit 1; }
    awk -F'\t' '
        { printf "test summary: %d passed, %d failed (exit %d): %s\n", $1, $2, $3, $4; p += $1; f += $2 }
        END { printf "%d passed, %d failed\n", p, f; exit (f > 0) }' "$COUNTS"
    ;;
*)
    echo "usage: $0 {begin|run CMD [ARGS...]|end}" >&2
    exit 2
    ;;
esac
