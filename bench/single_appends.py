"""Single durable appends, one transaction each (SQLite WAL + synchronous=FULL): best of 3 x 1,500.

On demand, not a test: python bench/single_appends.py  (uses /tmp/pf5 as scratch)
"""
import time, sys
from pathlib import Path
from api.settings import Settings
from api.composition import init_ledger
import shutil
d=Path('/tmp/pf5'); shutil.rmtree(d, ignore_errors=True)
s=Settings(data_dir=d, database_url=f'sqlite:///{d}/l.db', key_dir=d/'keys')
L=init_ledger(s, origin='bench/x')
def recs(base,n): return [{"kind":"artifact","producer":"svc:bench","produced_at":"2025-12-30T10:00:00Z","body":{"sha256":f"{base+i:064x}","media_type":"image/png","size":i,"storage_ref":f"blob://x/{base+i}"}} for i in range(n)]
best=0
for rep in range(3):
    R=recs(rep*10000,1500)
    t=time.perf_counter()
    for r in R: L.append([r], publish=False)
    best=max(best,1500/(time.perf_counter()-t))
print('single/s best of 3', round(best))
