import subprocess, sys, collections, re
# Shares of all samples: for samples whose stack contains FRAME, the leaf function (self) and
# the direct callees of FRAME (inclusive), from `perf script`.
data, frame = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 15
out = subprocess.run(['perf','script','-i',data,'-F','comm,tid,ip,sym'],capture_output=True,text=True).stdout
samples = []; cur = None
for line in out.splitlines():
    if not line.strip():
        if cur is not None: samples.append(cur); cur = None
        continue
    if not line.startswith((' ','\t')):
        cur = []; continue
    parts = line.strip().split(None, 1)
    sym = parts[1] if len(parts) > 1 else '?'
    sym = re.sub(r'\+0x[0-9a-f]+$', '', sym)
    if cur is not None: cur.append(sym)
if cur: samples.append(cur)
total = len(samples)
leaf = collections.Counter(); callee = collections.Counter(); hit = 0
for st in samples:
    idx = [i for i, s in enumerate(st) if frame in s]
    if not idx: continue
    hit += 1
    i = idx[-1]  # outermost occurrence
    leaf[st[0]] += 1
    callee[st[i-1] if i > 0 else '(self)'] += 1
print(f"{total} samples; {hit} ({100*hit/total:.1f}%) under {frame}")
print("-- direct callees (share of all samples)")
for s, c in callee.most_common(n): print(f"{100*c/total:6.1f}%  {s[:150]}")
print("-- leaf functions (share of all samples)")
for s, c in leaf.most_common(n): print(f"{100*c/total:6.1f}%  {s[:150]}")
