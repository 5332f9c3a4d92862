#!/usr/bin/env bash
# Runs a command under /usr/bin/time and samples its /proc/PID/status every 20 ms, printing one line:
#   wall s, peak RSS (time's %M), peak RssAnon (allocated memory), peak RssFile (file pages mapped and resident)
# RssAnon is what the process allocated; RssFile counts pages of memory-mapped files, which the kernel can
# drop and re-read at will (page cache), so the two are reported apart.
#
#   bench/peakmem.sh CMD [ARGS...]      (the command's own output goes to stderr)
set -euo pipefail
out=$(mktemp)
/usr/bin/time -f "%e %M" -o "$out" "$@" >&2 &
tpid=$!
pid=""
anon=0 file=0
while kill -0 "$tpid" 2>/dev/null; do
  [[ -z "$pid" ]] && pid=$(pgrep -P "$tpid" | head -1 || true)
  if [[ -n "$pid" && -r /proc/$pid/status ]]; then
    while read -r key value _; do
      case "$key" in
        RssAnon:) (( value > anon )) && anon=$value ;;
        RssFile:) (( value > file )) && file=$value ;;
      esac
    done < /proc/$pid/status 2>/dev/null || true
  fi
  sleep 0.02
done
wait "$tpid" || { echo "command failed: $*" >&2; cat "$out" >&2; rm -f "$out"; exit 1; }
read -r wall rss < <(tail -1 "$out")
rm -f "$out"
printf '%s s  rss %.1f MiB  anon %.1f MiB  file %.1f MiB\n' "$wall" "$(echo "$rss/1024" | bc -l)" "$(echo "$anon/1024" | bc -l)" "$(echo "$file/1024" | bc -l)"
