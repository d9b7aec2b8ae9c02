import subprocess, sys, re
# For each pattern: the share of all samples whose stack has a frame containing it (each
# sample counted once), from `perf script`.
data = sys.argv[1]; pats = sys.argv[2:]
out = subprocess.run(['perf','script','-i',data,'-F','comm,tid,ip,sym'],capture_output=True,text=True).stdout
samples = []; cur = None
for line in out.splitlines():
    if not line.strip():
        if cur is not None: samples.append(cur); cur = None
        continue
    if not line.startswith((' ','\t')): cur = []; continue
    parts = line.strip().split(None, 1)
    if cur is not None: cur.append(parts[1] if len(parts) > 1 else '?')
if cur: samples.append(cur)
total = len(samples)
print(f"{total} samples")
for p in pats:
    n = sum(1 for st in samples if any(p in s for s in st))
    leaf = sum(1 for st in samples if st and p in st[0])
    print(f"{100*n/total:6.1f}% incl  {100*leaf/total:5.1f}% self  {p}")
