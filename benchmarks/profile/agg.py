import re, subprocess, sys, collections
# Sums perf's per-process duplicate rows by symbol: inclusive (children) and self shares.
data = sys.argv[1]; n = int(sys.argv[2]) if len(sys.argv) > 2 else 40
filt = sys.argv[3] if len(sys.argv) > 3 else ''
out = subprocess.run(['perf','report','-i',data,'--children','--sort','symbol','--stdio','-g','none','--percent-limit','0.3'],capture_output=True,text=True).stdout
inc = collections.Counter(); slf = collections.Counter()
for line in (l.rstrip() for l in out.splitlines()):
    m = re.match(r'\s+([\d.]+)%\s+([\d.]+)%\s+\[.\]\s+(.*)$', line)
    if not m: continue
    sym = m.group(3)
    sym = re.sub(r'::\{\{closure\}\}', '', sym)
    inc[sym] += float(m.group(1)); slf[sym] += float(m.group(2))
key = slf if 'self' in filt else inc
for sym, v in key.most_common(400):
    if filt.replace('self','') and filt.replace('self','') not in sym: continue
    print(f"{inc[sym]:6.1f}% {slf[sym]:5.1f}%  {sym[:170]}")
    n -= 1
    if n == 0: break
