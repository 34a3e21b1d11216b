# Medians of measure.sh's output lines "r<round> <variant> tps=<tps> cpu_us=<backend CPU µs per transaction>".
import re, statistics as st, collections, sys
d = collections.defaultdict(dict)
for l in open(sys.argv[1]):
    m = re.match(r'r(\d+) (\S+) tps=([\d.]+) cpu_us=(\d+)', l)
    if m: d[int(m[1])][m[2]] = (float(m[3]), int(m[4]))
names = [n for n in ['alone', 'two', 'two_fixed', 'p0', 'comb', 'comb2', 'two_off', 'comb_off'] if n in d[0]]
rounds = [r for r in d if all(d[r][n][1] > 100 for n in names)]  # a failed CPU sample reads ~0
print(f"{len(rounds)} complete rounds")
for n in names:
    cs = [d[r][n][1] for r in rounds]
    print(f"{n:9s} backend CPU/tx median {st.median(cs):5.0f} [{min(cs)}–{max(cs)}]"
          f"  alone/x CPU {st.median([d[r]['alone'][1] / d[r][n][1] for r in rounds]):.2f}"
          f"  x/alone tps {st.median([d[r][n][0] / d[r]['alone'][0] for r in rounds]):.2f}"
          f"  extra over alone {st.median([d[r][n][1] - d[r]['alone'][1] for r in rounds]):5.0f}")
